"""The runs admin: read only, scoped to the staff user's organizations, with cancel and retry
actions that go through the run's own methods."""
import pytest
from django.contrib.auth.models import Permission

from accounts.models import Membership, Role, User
from runs.models import Run, RunEvent, Step
from tests.conftest import PASSWORD

from .helpers import calls_in, failing_spec, make_workflow

RUNS = "/admin/runs/run/"


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root@agentflow.test", PASSWORD)


def _staff(acme, email, codenames):
    user = User.objects.create_user(email, PASSWORD, is_staff=True)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="runs", codename__in=codenames))
    return user


@pytest.fixture
def dora(acme):
    """Staff, admin of Acme, who may view and operate runs."""
    return _staff(acme, "dora@acme.test", ["view_run", "change_run", "view_step", "view_runevent",
                                           "view_artifact"])


@pytest.fixture
def otto(acme):
    """Staff, admin of Acme, who may only look at runs."""
    return _staff(acme, "otto@acme.test", ["view_run"])


@pytest.fixture
def runs(acme, globex, linear):
    theirs_flow = make_workflow(globex, slug="takeover", name="Globex takeover")
    ours = Run.start(linear, linear.latest_published(), {"topic": "tides"})
    theirs = Run.start(theirs_flow, theirs_flow.latest_published(), {"topic": "coups"})
    return ours, theirs


def _action(client, action, runs):
    return client.post(RUNS, {"action": action, "_selected_action": [str(r.pk) for r in runs]}, follow=True)


def test_a_superuser_sees_every_run(client, root, runs):
    client.force_login(root)

    response = client.get(RUNS)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 2


@pytest.mark.parametrize("path", [RUNS, "/admin/runs/step/", "/admin/runs/runevent/", "/admin/runs/artifact/"])
def test_staff_see_only_their_organizations_rows(client, dora, runs, path):
    ours, theirs = runs
    Step.objects.create(organization=ours.organization, run=ours, node_id="start", node_type="input")
    Step.objects.create(organization=theirs.organization, run=theirs, node_id="start", node_type="input")
    client.force_login(dora)

    response = client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Globex" not in html and "takeover" not in html
    rows = response.context["cl"].result_list
    assert all(getattr(row, "run", row).organization_id == ours.organization_id for row in rows)
    if path == "/admin/runs/runevent/":
        assert set(rows) == set(RunEvent.objects.filter(run=ours))


def test_runs_are_searched_by_id_and_workflow_slug(client, root, runs):
    ours, theirs = runs
    client.force_login(root)

    by_slug = client.get(RUNS, {"q": "takeover"}).context["cl"].result_list
    by_id = client.get(RUNS, {"q": str(ours.pk)[:8]}).context["cl"].result_list
    filtered = client.get(RUNS, {"status": "queued", "mode": "full", "trigger": "api"}).context["cl"]

    assert list(by_slug) == [theirs]
    assert list(by_id) == [ours]
    assert filtered.result_count == 2


def test_runs_are_read_only_in_the_admin(client, dora, runs):
    ours, _ = runs
    client.force_login(dora)

    page = client.get(f"{RUNS}{ours.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"{RUNS}{ours.pk}/change/", {"status": "succeeded"}).status_code == 403
    assert client.get(f"{RUNS}add/").status_code == 403
    assert client.get(f"{RUNS}{ours.pk}/delete/").status_code == 403
    ours.refresh_from_db()
    assert ours.status == "queued"


def test_another_organizations_run_is_not_found(client, dora, runs):
    _, theirs = runs
    client.force_login(dora)

    response = client.get(f"{RUNS}{theirs.pk}/change/", follow=True)

    assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"


def test_the_cancel_action_cancels_queued_runs(client, dora, runs):
    ours, _ = runs
    client.force_login(dora)

    response = _action(client, "cancel", [ours])

    assert response.status_code == 200
    assert "Asked 1 run(s) to cancel." in response.content.decode()
    ours.refresh_from_db()
    assert ours.status == "cancelled" and ours.cancel_requested_at is not None
    assert ours.events.filter(type="run.cancelled").count() == 1


def test_actions_never_touch_another_organizations_runs(client, dora, runs):
    ours, theirs = runs
    client.force_login(dora)

    _action(client, "cancel", [ours, theirs])

    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.status, theirs.status) == ("cancelled", "queued")


def test_staff_without_the_change_permission_cannot_act(client, otto, runs):
    ours, _ = runs
    client.force_login(otto)

    changelist = client.get(RUNS)
    _action(client, "cancel", [ours])

    assert changelist.status_code == 200
    assert changelist.context["action_form"] is None  # neither cancel nor retry is offered
    ours.refresh_from_db()
    assert ours.status == "queued"


@pytest.mark.django_db(transaction=True)
def test_the_retry_action_retries_failed_runs_only(client, dora, acme, linear, worker, tmp_path):
    call_log = tmp_path / "calls.log"
    flaky = make_workflow(acme, failing_spec(call_log), slug="flaky")
    failed = Run.start(flaky, flaky.latest_published(), {"topic": "tides"})
    succeeded = Run.start(linear, linear.latest_published(), {"topic": "tides"})
    assert (Run.objects.get(pk=failed.pk).status, Run.objects.get(pk=succeeded.pk).status) == ("failed", "succeeded")
    client.force_login(dora)

    response = _action(client, "retry", [failed, succeeded])

    html = response.content.decode()
    assert "Retried 1 run(s)." in html
    assert "only failed or cancelled runs can be retried" in html
    failed.refresh_from_db()
    assert failed.status == "succeeded"
    outline = failed.steps.get(node_id="outline")
    assert calls_in(call_log)[outline.idempotency_key] == 1
    assert Run.objects.get(pk=succeeded.pk).events.filter(type="run.queued").count() == 1
