import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Membership, Role, User
from tests.conftest import PASSWORD

MEMBERS = reverse("accounts:members")


@pytest.fixture
def ada(acme):
    """An admin of Acme (admins manage members but not owners)."""
    user = User.objects.create_user("ada@acme.test", PASSWORD)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    return user


def _role_url(membership):
    return reverse("accounts:member_role", args=[membership.pk])


def _remove_url(membership):
    return reverse("accounts:member_remove", args=[membership.pk])


def test_a_viewer_sees_the_members_and_their_roles_read_only(client, acme, alice, bob, vera):
    client.force_login(vera)

    response = client.get(MEMBERS)

    assert response.status_code == 200
    html = response.content.decode()
    for email, role in (("alice@acme.test", "Owner"), ("bob@acme.test", "Editor"), ("vera@acme.test", "Viewer")):
        assert email in html
        assert role in html
    assert "Add member" not in html
    assert "Remove" not in html


def test_the_owner_adds_an_existing_user_with_a_role(client, acme, alice, charlie):
    client.force_login(alice)

    response = client.post(MEMBERS, {"email": "Charlie@Globex.test", "role": Role.VIEWER}, follow=True)

    assert response.status_code == 200
    assert "charlie@globex.test joined as viewer" in response.content.decode()
    membership = Membership.objects.get(organization=acme, user=charlie)
    assert membership.role == Role.VIEWER
    event = AuditEvent.objects.get(organization=acme, action="member.invited")
    assert event.actor == alice
    assert event.data == {"user": "charlie@globex.test", "role": "viewer"}


def test_inviting_an_unknown_email_explains_they_need_an_account(client, acme, alice):
    client.force_login(alice)

    response = client.post(MEMBERS, {"email": "nobody@nowhere.test", "role": Role.EDITOR})

    assert response.status_code == 200
    assert "No AgentFlow account uses this email address" in response.content.decode()
    assert Membership.objects.filter(organization=acme).count() == 1
    assert not AuditEvent.objects.filter(action="member.invited").exists()


def test_inviting_a_member_again_says_they_are_already_in(client, acme, alice, bob):
    client.force_login(alice)

    response = client.post(MEMBERS, {"email": bob.email, "role": Role.ADMIN})

    assert "already a member" in response.content.decode()
    assert Membership.objects.get(organization=acme, user=bob).role == Role.EDITOR


def test_an_admin_cannot_invite_someone_as_owner(client, acme, ada, charlie):
    client.force_login(ada)

    response = client.post(MEMBERS, {"email": charlie.email, "role": Role.OWNER})

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Membership.objects.filter(organization=acme, user=charlie).exists()


def test_the_owner_changes_a_role(client, acme, alice, bob):
    client.force_login(alice)
    membership = bob.membership_in(acme)

    response = client.post(_role_url(membership), {"role": Role.ADMIN}, follow=True)

    assert "bob@acme.test is now admin" in response.content.decode()
    assert bob.membership_in(acme).role == Role.ADMIN
    assert AuditEvent.objects.filter(organization=acme, action="member.role_changed", actor=alice).exists()


def test_the_last_owner_cannot_be_demoted(client, acme, alice):
    client.force_login(alice)

    response = client.post(_role_url(alice.membership_in(acme)), {"role": Role.ADMIN}, follow=True)

    assert "An organization needs at least one owner." in response.content.decode()
    assert alice.membership_in(acme).role == Role.OWNER
    assert not AuditEvent.objects.filter(action="member.role_changed").exists()


def test_the_last_owner_cannot_be_removed(client, acme, alice):
    client.force_login(alice)

    response = client.post(_remove_url(alice.membership_in(acme)), follow=True)

    assert "The last owner cannot be removed." in response.content.decode()
    assert alice.membership_in(acme) is not None


def test_an_owner_can_step_down_once_there_is_another_owner(client, acme, alice, bob):
    client.force_login(alice)
    client.post(_role_url(bob.membership_in(acme)), {"role": Role.OWNER})

    client.post(_role_url(alice.membership_in(acme)), {"role": Role.EDITOR})

    assert bob.membership_in(acme).role == Role.OWNER
    assert alice.membership_in(acme).role == Role.EDITOR


def test_an_admin_removes_an_editor(client, acme, ada, bob):
    client.force_login(ada)

    response = client.post(_remove_url(bob.membership_in(acme)))

    assert response.status_code == 302
    assert bob.membership_in(acme) is None
    event = AuditEvent.objects.get(organization=acme, action="member.removed")
    assert event.actor == ada and event.data == {"user": "bob@acme.test"}


def test_an_admin_cannot_touch_the_owner_role(client, acme, alice, ada, bob):
    client.force_login(ada)

    assert client.post(_role_url(bob.membership_in(acme)), {"role": Role.OWNER}).status_code == 403
    assert client.post(_role_url(alice.membership_in(acme)), {"role": Role.VIEWER}).status_code == 403
    assert client.post(_remove_url(alice.membership_in(acme))).status_code == 403

    assert bob.membership_in(acme).role == Role.EDITOR
    assert alice.membership_in(acme).role == Role.OWNER


@pytest.mark.parametrize("actor", ["bob", "vera"])
def test_editors_and_viewers_cannot_manage_members(client, request, acme, alice, charlie, actor):
    client.force_login(request.getfixturevalue(actor))
    target = alice.membership_in(acme)

    assert client.post(MEMBERS, {"email": charlie.email, "role": Role.VIEWER}).status_code == 403
    assert client.post(_role_url(target), {"role": Role.VIEWER}).status_code == 403
    assert client.post(_remove_url(target)).status_code == 403

    assert not Membership.objects.filter(user=charlie, organization=acme).exists()
    assert alice.membership_in(acme).role == Role.OWNER


def test_another_organizations_membership_is_not_found(client, acme, alice, globex, charlie):
    client.force_login(alice)
    theirs = charlie.membership_in(globex)

    assert client.post(_role_url(theirs), {"role": Role.VIEWER}).status_code == 404
    assert client.post(_remove_url(theirs)).status_code == 404

    assert charlie.membership_in(globex).role == Role.OWNER
    assert "charlie@globex.test" not in client.get(MEMBERS).content.decode()


# The same rules through the API.


def _members_api(pk=None):
    return f"/api/v1/members/{pk}/" if pk else "/api/v1/members/"


def test_api_lists_the_members_for_a_viewer(api_as, acme, alice, bob, vera, globex):
    response = api_as(vera).get(_members_api())

    assert response.status_code == 200
    emails = {row["email"]: row["role"] for row in response.json()["results"]}
    assert emails == {"alice@acme.test": "owner", "bob@acme.test": "editor", "vera@acme.test": "viewer"}


def test_api_changes_a_role_for_an_admin(api_as, acme, ada, bob):
    response = api_as(ada).patch(_members_api(bob.membership_in(acme).pk), {"role": "viewer"}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert bob.membership_in(acme).role == Role.VIEWER


def test_api_refuses_role_changes_from_an_editor(api_as, acme, bob, vera):
    response = api_as(bob).patch(_members_api(vera.membership_in(acme).pk), {"role": "admin"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert vera.membership_in(acme).role == Role.VIEWER


def test_api_keeps_the_last_owner(api_as, acme, alice):
    client = api_as(alice)
    pk = alice.membership_in(acme).pk

    demote = client.patch(_members_api(pk), {"role": "admin"}, format="json")
    remove = client.delete(_members_api(pk))

    assert demote.status_code == remove.status_code == 409
    assert demote.json()["error"]["code"] == "last_owner"
    assert alice.membership_in(acme).role == Role.OWNER


def test_api_removes_a_member(api_as, acme, alice, bob):
    response = api_as(alice).delete(_members_api(bob.membership_in(acme).pk))

    assert response.status_code == 204
    assert bob.membership_in(acme) is None


def test_api_refuses_unknown_fields(api_as, acme, alice, bob, globex):
    response = api_as(alice).patch(
        _members_api(bob.membership_in(acme).pk), {"role": "admin", "organization": globex.pk}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0] == {
        "path": "$.organization", "code": "unknown_field", "message": "This field is not allowed."
    }
    assert bob.membership_in(acme).role == Role.EDITOR


def test_api_another_organizations_member_is_not_found(api_as, acme, alice, globex, charlie):
    pk = charlie.membership_in(globex).pk

    assert api_as(alice).get(_members_api(pk)).status_code == 404
    assert api_as(alice).delete(_members_api(pk)).status_code == 404
    assert charlie.membership_in(globex) is not None
