from django.urls import reverse

from accounts.models import AuditEvent, Membership, Organization, Role, User
from tests.conftest import PASSWORD


def _signup(client, **overrides):
    data = {"email": "dana@initech.test", "password": PASSWORD, "organization": "Initech"} | overrides
    return client.post(reverse("accounts:signup"), data)


def test_the_signup_page_has_a_labelled_field_for_each_input(client, db):
    response = client.get(reverse("accounts:signup"))

    assert response.status_code == 200
    html = response.content.decode()
    for field in ("email", "password", "organization"):
        assert f'<label for="id_{field}"' in html
    assert "csrfmiddlewaretoken" in html


def test_it_creates_the_user_and_an_organization_they_own_and_logs_them_in(client, db):
    response = _signup(client, email="Dana@Initech.test")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(email="dana@initech.test")
    assert user.check_password(PASSWORD)
    org = Organization.objects.get(name="Initech")
    assert org.slug == "initech"
    assert Membership.objects.get(user=user).organization == org
    assert Membership.objects.get(user=user).role == Role.OWNER
    assert AuditEvent.objects.filter(organization=org, action="organization.created", actor=user).exists()
    assert int(client.session["_auth_user_id"]) == user.pk
    assert client.session["organization_id"] == org.pk


def test_it_refuses_a_weak_password(client, db):
    response = _signup(client, password="12345")

    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()
    assert not User.objects.filter(email="dana@initech.test").exists()
    assert not Organization.objects.exists()


def test_it_refuses_an_email_that_already_has_an_account(client, alice):
    response = _signup(client, email="ALICE@acme.test")

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact="alice@acme.test").count() == 1
    assert not Organization.objects.filter(name="Initech").exists()


def test_it_requires_an_organization_name(client, db):
    response = _signup(client, organization="   ")

    assert response.status_code == 200
    assert not User.objects.exists()


def test_login_takes_the_email_in_any_case_and_goes_to_the_dashboard(client, alice):
    response = client.post(reverse("accounts:login"), {"username": "Alice@ACME.test", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert int(client.session["_auth_user_id"]) == alice.pk


def test_login_with_a_wrong_password_shows_an_error(client, alice):
    response = client.post(reverse("accounts:login"), {"username": alice.email, "password": "nope"})

    assert response.status_code == 200
    assert "enter a correct email address and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_returns_to_the_page_asked_for(client, alice):
    members = reverse("accounts:members")
    page = client.get(members)
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("accounts:login"))

    response = client.post(
        f"{reverse('accounts:login')}?next={members}", {"username": alice.email, "password": PASSWORD, "next": members}
    )

    assert response["Location"] == members


def test_logout_needs_a_post(client, alice):
    client.force_login(alice)

    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session


def test_the_layout_shows_the_product_navigation_and_the_user(client, alice, acme):
    client.force_login(alice)

    html = client.get(reverse("accounts:members")).content.decode()

    assert "AgentFlow" in html
    for link in ('href="/"', 'href="/workflows/"', 'href="/runs/"', reverse("accounts:api_keys")):
        assert link in html
    assert "alice@acme.test" in html
    assert f'action="{reverse("accounts:logout")}"' in html
    assert "<main" in html and "<header" in html and "<nav" in html
