import pytest
from django.contrib.auth.models import Permission

from accounts.models import AuditEvent, Membership, Role, User
from providers.models import Credential
from tests.conftest import PASSWORD

from .conftest import MASK, SECRET

CHANGELIST = "/admin/providers/credential/"


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root@agentflow.test", PASSWORD)


@pytest.fixture
def dora(acme):
    """Staff, not superuser, admin of Acme, with the admin permissions on credentials."""
    user = User.objects.create_user("dora@acme.test", PASSWORD, is_staff=True)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="providers",
                                                        codename__endswith="_credential"))
    return user


def test_the_admin_list_and_change_form_show_only_the_mask(client, root, credential):
    client.force_login(root)

    listing = client.get(CHANGELIST)
    change = client.get(f"{CHANGELIST}{credential.pk}/change/")

    assert listing.status_code == 200 and change.status_code == 200
    for response in (listing, change):
        html = response.content.decode()
        assert MASK in html
        assert SECRET not in html
    assert 'name="new_secret"' in change.content.decode()
    assert 'name="secret"' not in change.content.decode()


def test_the_admin_replaces_the_secret_only_when_one_is_typed(client, root, acme, credential):
    client.force_login(root)
    url = f"{CHANGELIST}{credential.pk}/change/"
    form = {"name": "prod-mock", "provider": "mock", "base_url": "", "new_secret": ""}

    kept = client.post(url, form)
    credential.refresh_from_db()
    secret_after_blank = credential.secret
    replaced = client.post(url, form | {"new_secret": "sk-admin-typed-00005678"})

    assert kept.status_code == 302 and replaced.status_code == 302
    assert secret_after_blank == SECRET
    credential.refresh_from_db()
    assert credential.secret == "sk-admin-typed-00005678"
    assert AuditEvent.objects.filter(action="credential.updated", actor=root).count() == 1


def test_the_admin_adds_a_credential_with_its_audit_event(client, root, acme):
    client.force_login(root)

    response = client.post(f"{CHANGELIST}add/", {"organization": acme.pk, "name": "from-admin", "provider": "mock",
                                                 "base_url": "", "new_secret": SECRET})

    assert response.status_code == 302
    credential = Credential.objects.get(name="from-admin")
    assert credential.secret == SECRET and credential.created_by == root
    assert AuditEvent.objects.filter(action="credential.created", actor=root).exists()


def test_the_admin_does_not_delete_a_credential_in_use(client, root, credential, workflow_using):
    workflow_using("prod-mock")
    client.force_login(root)

    response = client.post(f"{CHANGELIST}{credential.pk}/delete/", {"post": "yes"}, follow=True)

    assert "cannot be deleted" in response.content.decode()
    assert Credential.objects.filter(pk=credential.pk).exists()


def test_a_staff_admin_sees_only_their_organizations_credentials(client, dora, credential, globex):
    theirs = Credential.add(globex, name="globex-key", provider="mock", secret="sk-globex-000011112222")
    client.force_login(dora)

    html = client.get(CHANGELIST).content.decode()

    assert "prod-mock" in html and "globex-key" not in html
    assert client.get(f"{CHANGELIST}{theirs.pk}/change/").status_code == 302  # "does not exist" redirect
