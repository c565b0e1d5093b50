"""The workflow admin: staff see their own organizations' workflows, and actions call the model."""
import pytest
from django.contrib.auth.models import Permission

from accounts.models import Membership, Role, User
from tests.conftest import PASSWORD
from workflows.models import Workflow

from .helpers import make_workflow, revised_spec

CHANGELIST = "/admin/workflows/workflow/"
VERSIONS = "/admin/workflows/workflowversion/"


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root@agentflow.test", PASSWORD)


@pytest.fixture
def dora(acme):
    """Staff, not superuser, admin of Acme, allowed to view and change workflows in the admin."""
    user = User.objects.create_user("dora@acme.test", PASSWORD, is_staff=True)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="workflows",
        codename__in=["view_workflow", "change_workflow", "view_workflowversion"],
    ))
    return user


@pytest.fixture
def flows(acme, globex):
    ours = make_workflow(acme, name="Acme onboarding", slug="onboarding")
    theirs = make_workflow(globex, name="Globex takeover", slug="takeover")
    return ours, theirs


def test_a_superuser_sees_every_workflow(client, root, flows):
    client.force_login(root)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme onboarding" in html and "Globex takeover" in html


def test_a_staff_admin_sees_only_their_organizations_workflows(client, dora, flows):
    ours, theirs = flows
    client.force_login(dora)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme onboarding" in html
    assert "Globex" not in html  # neither the workflow nor the organization filter
    assert response.context["cl"].result_count == 1


def test_a_staff_admin_cannot_open_another_organizations_workflow(client, dora, flows):
    ours, theirs = flows
    client.force_login(dora)

    theirs_page = client.get(f"{CHANGELIST}{theirs.pk}/change/")
    their_version = client.get(f"{VERSIONS}{theirs.latest_version().pk}/change/")
    ours_page = client.get(f"{CHANGELIST}{ours.pk}/change/")

    assert theirs_page.status_code == 302  # the admin's "does not exist" redirect
    assert their_version.status_code == 302
    assert b"Globex takeover" not in theirs_page.content
    assert ours_page.status_code == 200
    assert b"Acme onboarding" in ours_page.content


def test_a_staff_admin_cannot_change_another_organizations_workflow(client, dora, flows):
    ours, theirs = flows
    client.force_login(dora)

    response = client.post(f"{CHANGELIST}{theirs.pk}/change/", {"name": "Pwned", "slug": "pwned"})

    assert response.status_code == 302
    theirs.refresh_from_db()
    assert (theirs.name, theirs.slug) == ("Globex takeover", "takeover")


def test_the_archive_action_archives_only_their_organizations_workflows(client, dora, flows):
    ours, theirs = flows
    client.force_login(dora)

    response = client.post(
        CHANGELIST, {"action": "archive", "_selected_action": [ours.pk, theirs.pk], "index": 0}, follow=True
    )

    assert response.status_code == 200
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.status, theirs.status) == ("archived", "active")
    assert ours.organization.audit_events.filter(action="workflow.archived").count() == 1


def test_the_publish_action_publishes_the_latest_draft(client, root, flows):
    ours, theirs = flows
    ours.save_draft(revised_spec())
    client.force_login(root)

    response = client.post(
        CHANGELIST, {"action": "publish_latest_draft", "_selected_action": [ours.pk, theirs.pk], "index": 0},
        follow=True,
    )

    assert response.status_code == 200
    assert "published v2" in response.content.decode()
    assert dict(ours.versions.values_list("number", "state")) == {1: "draft", 2: "published"}
    assert ours.versions.get(number=2).published_by == root
    assert theirs.latest_published().number == 1


def test_the_version_page_shows_the_spec_read_only(client, root, flows):
    ours, _ = flows
    version = ours.latest_version()
    client.force_login(root)

    response = client.get(f"{VERSIONS}{version.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<pre>" in html and "Outline {{ inputs.topic }}" in html
    assert 'name="spec"' not in html and 'name="spec_hash"' not in html and 'name="message"' not in html
    assert "<textarea" not in html


def test_a_version_cannot_be_changed_by_posting_to_the_admin(client, root, flows):
    ours, _ = flows
    version = ours.latest_version()
    client.force_login(root)

    response = client.post(f"{VERSIONS}{version.pk}/change/", {"message": "Rewritten", "state": "published"})

    assert response.status_code == 403
    version.refresh_from_db()
    assert (version.message, version.state) == ("Created", "draft")


def test_a_workflow_saved_in_the_admin_keeps_its_organization(client, root, flows, globex):
    ours, _ = flows
    client.force_login(root)

    response = client.post(f"{CHANGELIST}{ours.pk}/change/", {
        "name": "Acme onboarding v2", "slug": "onboarding", "description": "", "category": "",
        "status": "active", "organization": globex.pk,
        "versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1",
        "versions-MIN_NUM_FORMS": "0", "versions-MAX_NUM_FORMS": "1000",
        "versions-0-id": ours.latest_version().pk, "versions-0-workflow": ours.pk,
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    ours.refresh_from_db()
    assert (ours.name, ours.organization.slug) == ("Acme onboarding v2", "acme")
    assert Workflow.objects.filter(organization=globex).count() == 1
