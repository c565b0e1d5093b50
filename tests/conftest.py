"""Named actors shared by the tests: Alice owns Acme, Bob edits there, Vera only views,
and Charlie owns Globex, another organization that must never see Acme's data."""
import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Organization, Role, User

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup):
    """On PostgreSQL every process keeps a pool of connections: close it before the test
    database is dropped, or the drop finds it still in use."""
    yield
    from django.db import connections

    for connection in connections.all():
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice@acme.test", PASSWORD)


@pytest.fixture
def acme(alice):
    return Organization.create_with_owner("Acme", alice, slug="acme")


@pytest.fixture
def bob(acme):
    user = User.objects.create_user("bob@acme.test", PASSWORD)
    Membership.objects.create(organization=acme, user=user, role=Role.EDITOR)
    return user


@pytest.fixture
def vera(acme):
    user = User.objects.create_user("vera@acme.test", PASSWORD)
    Membership.objects.create(organization=acme, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def charlie(db):
    return User.objects.create_user("charlie@globex.test", PASSWORD)


@pytest.fixture
def globex(charlie):
    return Organization.create_with_owner("Globex", charlie, slug="globex")


def _api_client_for(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def api_as():
    """api_as(user) -> an APIClient signed in as that user (session auth)."""
    return _api_client_for


@pytest.fixture
def key_client(acme):
    """key_client(scopes, role=editor, org=acme) -> an APIClient using a Bearer API key."""

    def make(scopes=("read", "write", "execute"), role=Role.EDITOR, org=None):
        _, raw = ApiKey.issue(org or acme, "test key", list(scopes), role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make
