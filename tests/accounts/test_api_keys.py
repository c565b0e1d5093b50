from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEvent, Membership, Role, User
from tests.conftest import PASSWORD

PAGE = reverse("accounts:api_keys")
ME = "/api/v1/me/"
KEYS = "/api/v1/api-keys/"


@pytest.fixture
def ada(acme):
    """An admin of Acme."""
    user = User.objects.create_user("ada@acme.test", PASSWORD)
    Membership.objects.create(organization=acme, user=user, role=Role.ADMIN)
    return user


def _bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _create_on_page(client, **overrides):
    data = {"name": "CI", "scopes": ["read", "execute"], "role": Role.EDITOR, "expires_on": ""} | overrides
    return client.post(PAGE, data)


def test_the_page_shows_the_new_key_once_and_stores_only_its_hash(client, acme, alice):
    client.force_login(alice)

    response = _create_on_page(client)

    assert response.status_code == 200
    raw = response.context["raw_key"]
    assert raw.startswith("af_") and raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(organization=acme)
    assert key.key_hash == ApiKey.hash(raw)
    assert key.prefix == raw[:10]
    assert key.scopes == ["execute", "read"]
    assert key.created_by == alice
    # The raw key is in no column of the table.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        assert not any(raw in str(value) for row in cursor.fetchall() for value in row)
    listing = client.get(PAGE).content.decode()
    assert raw not in listing
    assert f"{key.prefix}…" in listing
    assert "Active" in listing


def test_the_page_sets_an_expiry_at_the_start_of_the_chosen_day(client, acme, alice):
    client.force_login(alice)
    day = timezone.localdate() + timedelta(days=30)

    _create_on_page(client, expires_on=day.isoformat())

    expires_at = ApiKey.objects.get().expires_at
    assert timezone.localtime(expires_at).date() == day


def test_the_page_refuses_an_expiry_in_the_past(client, acme, alice):
    client.force_login(alice)

    response = _create_on_page(client, expires_on=timezone.localdate().isoformat())

    assert "Choose a day after today." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_key_cannot_have_a_role_above_its_creator(client, acme, ada):
    client.force_login(ada)

    response = _create_on_page(client, role=Role.OWNER)

    assert "Select a valid choice" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_key_needs_at_least_one_scope(client, acme, alice):
    client.force_login(alice)

    response = _create_on_page(client, scopes=[])

    assert "This field is required." in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("actor", ["bob", "vera"])
def test_editors_and_viewers_cannot_see_or_create_keys(client, request, acme, actor):
    client.force_login(request.getfixturevalue(actor))

    assert client.get(PAGE).status_code == 403
    assert _create_on_page(client).status_code == 403
    assert not ApiKey.objects.exists()


def test_the_page_revokes_a_key(client, acme, alice):
    key, raw = ApiKey.issue(acme, "old", ["read"])
    client.force_login(alice)

    response = client.post(reverse("accounts:api_key_revoke", args=[key.pk]), follow=True)

    assert "is revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None and key.status == "revoked"
    assert AuditEvent.objects.filter(organization=acme, action="api_key.revoked", actor=alice).exists()
    assert _bearer(raw).get(ME).status_code == 401


def test_another_organizations_key_is_not_found_on_the_page(client, acme, alice, globex):
    theirs, _ = ApiKey.issue(globex, "globex key", ["read"])
    client.force_login(alice)

    assert client.post(reverse("accounts:api_key_revoke", args=[theirs.pk])).status_code == 404
    assert "globex key" not in client.get(PAGE).content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_a_bearer_key_acts_in_its_organization_and_records_its_use(key_client, acme):
    response = key_client(("read",))

    response = response.get(ME)

    assert response.status_code == 200
    body = response.json()
    key = ApiKey.objects.get()
    assert body["organization"] == {"slug": "acme", "name": "Acme"}
    assert body["api_key"]["prefix"] == key.prefix
    assert body["user"] is None
    assert body["role"] == "editor" and body["scopes"] == ["read"]
    assert key.last_used_at is not None


def test_me_shows_the_signed_in_person(api_as, alice, acme):
    body = api_as(alice).get(ME).json()

    assert body["user"] == {"email": "alice@acme.test"}
    assert body["api_key"] is None
    assert body["role"] == "owner"
    assert body["scopes"] == ["execute", "read", "write"]


def test_revoked_expired_and_unknown_keys_are_refused(acme, db):
    revoked, revoked_raw = ApiKey.issue(acme, "revoked", ["read"])
    revoked.revoke()
    _, expired_raw = ApiKey.issue(acme, "expired", ["read"], expires_at=timezone.now() - timedelta(seconds=1))

    for raw in (revoked_raw, expired_raw, "af_not-a-real-key"):
        response = _bearer(raw).get(ME)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
        assert response["WWW-Authenticate"] == "Bearer"
    assert ApiKey.objects.get(pk=revoked.pk).last_used_at is None


def test_a_request_without_credentials_is_refused(db):
    response = APIClient().get(ME)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_read_only_key_cannot_write(key_client, acme):
    client = key_client(("read",), role=Role.ADMIN)

    response = client.post(KEYS, {"name": "sneaky", "scopes": ["read"]}, format="json")

    assert response.status_code == 403
    assert "write" in response.json()["error"]["message"]
    assert ApiKey.objects.count() == 1


def test_a_viewer_role_key_cannot_write(key_client, acme, bob):
    client = key_client(("read", "write"), role=Role.VIEWER)

    create = client.post(KEYS, {"name": "sneaky", "scopes": ["read"]}, format="json")
    change = client.patch(f"/api/v1/members/{bob.membership_in(acme).pk}/", {"role": "admin"}, format="json")

    assert create.status_code == change.status_code == 403
    assert ApiKey.objects.count() == 1
    assert bob.membership_in(acme).role == Role.EDITOR


def test_the_api_returns_the_key_once_on_create(api_as, acme, alice):
    client = api_as(alice)

    response = client.post(KEYS, {"name": "deploys", "scopes": ["read", "write"], "role": "admin"}, format="json")

    assert response.status_code == 201
    body = response.json()
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == ApiKey.hash(body["key"])
    assert body["prefix"] == key.prefix and body["status"] == "active" and body["created_by"] == "alice@acme.test"
    assert (key.organization, key.role, key.scopes) == (acme, Role.ADMIN, ["read", "write"])
    listing = client.get(KEYS).json()["results"]
    assert [row["prefix"] for row in listing] == [key.prefix]
    assert "key" not in listing[0]
    assert _bearer(body["key"]).get(ME).json()["role"] == "admin"


def test_the_api_refuses_an_organization_field(api_as, acme, alice, globex):
    response = api_as(alice).post(KEYS, {"name": "x", "scopes": ["read"], "organization": globex.pk}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"path": "$.organization", "code": "unknown_field", "message": "This field is not allowed."}
    ]
    assert not ApiKey.objects.exists()


def test_the_api_refuses_a_role_above_the_creator_and_scopes_the_key_lacks(key_client, acme):
    client = key_client(("read", "write"), role=Role.ADMIN)

    too_high = client.post(KEYS, {"name": "x", "scopes": ["read"], "role": "owner"}, format="json")
    wider = client.post(KEYS, {"name": "x", "scopes": ["read", "execute"]}, format="json")

    assert too_high.status_code == wider.status_code == 400
    assert too_high.json()["error"]["details"][0]["path"] == "$.role"
    assert wider.json()["error"]["details"][0]["path"] == "$.scopes"
    assert ApiKey.objects.count() == 1


def test_the_api_revokes_a_key_of_its_organization_only(api_as, acme, alice, globex):
    ours, raw = ApiKey.issue(acme, "ours", ["read"])
    theirs, _ = ApiKey.issue(globex, "theirs", ["read"])
    client = api_as(alice)

    response = client.post(f"{KEYS}{ours.pk}/revoke/")
    other = client.post(f"{KEYS}{theirs.pk}/revoke/")

    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert other.status_code == 404
    assert ApiKey.objects.get(pk=ours.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None
    assert _bearer(raw).get(ME).status_code == 401
    assert [row["name"] for row in client.get(KEYS).json()["results"]] == ["ours"]


def test_an_editor_cannot_list_keys_through_the_api(api_as, acme, bob):
    response = api_as(bob).get(KEYS)

    assert response.status_code == 403
