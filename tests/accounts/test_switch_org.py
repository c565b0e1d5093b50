import pytest
from django.urls import reverse

from accounts.models import Membership, Role

SWITCH = reverse("accounts:switch")


@pytest.fixture
def alice_in_globex(alice, globex):
    return Membership.objects.create(organization=globex, user=alice, role=Role.VIEWER)


def test_a_member_of_several_organizations_switches_between_them(client, api_as, alice, acme, globex, alice_in_globex):
    client.force_login(alice)
    assert 'name="organization"' in client.get(reverse("accounts:members")).content.decode()

    response = client.post(SWITCH, {"organization": globex.pk})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["organization_id"] == globex.pk
    page = client.get(reverse("accounts:members")).content.decode()
    assert "Members of Globex" in page and "charlie@globex.test" in page
    # The API shares the session and its organization.
    me = client.get("/api/v1/me/").json()
    assert me["organization"] == {"slug": "globex", "name": "Globex"}
    assert me["role"] == "viewer"


def test_switching_follows_a_safe_next_only(client, alice, acme, globex, alice_in_globex):
    client.force_login(alice)

    inside = client.post(SWITCH, {"organization": globex.pk, "next": "/accounts/members/"})
    outside = client.post(SWITCH, {"organization": acme.pk, "next": "https://evil.test/"})

    assert inside["Location"] == "/accounts/members/"
    assert outside["Location"] == "/"


def test_switching_to_an_organization_you_are_not_in_is_not_found(client, alice, acme, globex):
    client.force_login(alice)
    client.post(SWITCH, {"organization": acme.pk})

    assert client.post(SWITCH, {"organization": globex.pk}).status_code == 404
    assert client.post(SWITCH, {"organization": "nope"}).status_code == 404
    assert client.session["organization_id"] == acme.pk
    assert "Members of Acme" in client.get(reverse("accounts:members")).content.decode()


def test_switching_needs_a_post(client, alice, acme):
    client.force_login(alice)

    assert client.get(SWITCH, {"organization": acme.pk}).status_code == 405


def test_a_member_of_one_organization_sees_no_switcher(client, alice, acme):
    client.force_login(alice)

    html = client.get(reverse("accounts:members")).content.decode()

    assert 'name="organization"' not in html
    assert "Acme" in html


def test_losing_the_membership_falls_back_to_another_organization(client, alice, acme, globex, alice_in_globex):
    client.force_login(alice)
    client.post(SWITCH, {"organization": globex.pk})
    alice_in_globex.delete()

    assert "Members of Acme" in client.get(reverse("accounts:members")).content.decode()
