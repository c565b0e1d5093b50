import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Organization, Role, User
from tests.conftest import PASSWORD


def _run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_create_org_makes_an_existing_user_its_owner(alice):
    output = _run("create_org", "initech", "--owner", "ALICE@acme.test", "--name", "Initech Inc")

    org = Organization.objects.get(slug="initech")
    assert org.name == "Initech Inc"
    assert Membership.objects.get(organization=org).user == alice
    assert Membership.objects.get(organization=org).role == Role.OWNER
    assert "Created organization initech owned by alice@acme.test" in output


def test_create_org_creates_the_owner_when_given_a_password(db):
    _run("create_org", "hooli", "--owner", "gavin@hooli.test", "--password", PASSWORD)

    user = User.objects.get(email="gavin@hooli.test")
    assert user.check_password(PASSWORD)
    assert Organization.objects.get(slug="hooli").name == "Hooli"


def test_create_org_refuses_a_taken_slug_or_an_unknown_owner(acme):
    with pytest.raises(CommandError, match="already exists"):
        _run("create_org", "acme", "--owner", "alice@acme.test")
    with pytest.raises(CommandError, match="No user"):
        _run("create_org", "other", "--owner", "nobody@nowhere.test")
    assert Organization.objects.count() == 1


def test_create_api_key_prints_a_working_key_on_its_last_line(acme):
    output = _run("create_api_key", "--org", "acme", "--name", "cron", "--scopes", "read,execute", "--role", "viewer")

    raw = output.strip().splitlines()[-1]
    key = ApiKey.objects.get(organization=acme, name="cron")
    assert key.key_hash == ApiKey.hash(raw)
    assert (key.role, key.scopes) == (Role.VIEWER, ["execute", "read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = client.get("/api/v1/me/").json()
    assert me["organization"]["slug"] == "acme"
    assert me["api_key"]["prefix"] == key.prefix
    assert me["scopes"] == ["execute", "read"]


def test_create_api_key_refuses_unknown_scopes_and_organizations(acme):
    with pytest.raises(CommandError, match="Unknown scopes"):
        _run("create_api_key", "--org", "acme", "--name", "x", "--scopes", "read,admin")
    with pytest.raises(CommandError, match="No organization"):
        _run("create_api_key", "--org", "nope", "--name", "x")
    assert not ApiKey.objects.exists()
