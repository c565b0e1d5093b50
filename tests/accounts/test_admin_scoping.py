import pytest
from django.contrib.auth.models import Permission

from accounts.models import ApiKey, Membership, Role, User
from tests.conftest import PASSWORD

CHANGELIST = "/admin/accounts/apikey/"


@pytest.fixture
def dora(acme):
    """Staff, not superuser, admin of Acme, allowed to view and change API keys in the admin."""
    user = User.objects.create_user("dora@acme.test", PASSWORD, is_staff=True)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="accounts", codename__in=["view_apikey", "change_apikey"])
    )
    return user


@pytest.fixture
def keys(acme, globex):
    ours, _ = ApiKey.issue(acme, "acme deploy key", ["read"])
    theirs, _ = ApiKey.issue(globex, "globex secret key", ["read"])
    return ours, theirs


def test_a_staff_admin_sees_only_their_organizations_keys(client, dora, keys):
    ours, theirs = keys
    client.force_login(dora)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "acme deploy key" in html
    assert "globex secret key" not in html
    assert client.get(f"{CHANGELIST}{theirs.pk}/change/").status_code == 302  # "does not exist" redirect


def test_a_staff_member_with_a_lower_role_sees_no_keys(client, acme, bob, keys):
    bob.is_staff = True
    bob.save()
    bob.user_permissions.set(Permission.objects.filter(codename="view_apikey"))
    client.force_login(bob)

    html = client.get(CHANGELIST).content.decode()

    assert "acme deploy key" not in html and "globex secret key" not in html


def test_the_revoke_action_revokes_selected_keys_of_their_organization_only(client, dora, keys):
    ours, theirs = keys
    client.force_login(dora)

    response = client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [ours.pk, theirs.pk], "index": 0}, follow=True
    )

    assert response.status_code == 200
    assert "Revoked 1 key(s)." in response.content.decode()
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert ours.revoked_at is not None
    assert theirs.revoked_at is None


def test_a_superuser_sees_every_organizations_keys(client, keys, db):
    root = User.objects.create_superuser("root@agentflow.test", PASSWORD)
    client.force_login(root)

    html = client.get(CHANGELIST).content.decode()

    assert "acme deploy key" in html and "globex secret key" in html
