"""Who may see and change a workflow: only its organization, and only with the right role
and API key scope. Another organization's workflow answers 404, as if it did not exist."""
import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from workflows.models import Workflow

from .helpers import IMPORT, LIST, counts, detail, error_of, make_workflow, revised_spec
from .spec_samples import linear_spec


@pytest.fixture
def secret(acme, alice):
    """Acme's workflow with a published v1 and a draft v2."""
    workflow = make_workflow(acme, author=alice, name="Acme secret plan", slug="secret", publish=True)
    workflow.save_draft(revised_spec())
    return workflow


def _every_request_on(slug):
    """(method, url, body) for every surface of one workflow."""
    return [
        ("get", detail(slug), None),
        ("patch", detail(slug), {"name": "Taken over"}),
        ("put", detail(slug), {"name": "Taken over"}),
        ("get", detail(slug, "versions/"), None),
        ("post", detail(slug, "versions/"), {"spec": linear_spec()}),
        ("get", detail(slug, "versions/1/"), None),
        ("post", detail(slug, "versions/2/publish/"), {}),
        ("post", detail(slug, "publish/"), {}),
        ("get", detail(slug, "diff/") + "?from=1&to=2", None),
        ("get", detail(slug, "export/"), None),
        ("get", detail(slug, "export/") + "?version=1", None),
        ("post", detail(slug, "archive/"), {}),
    ]


def _unchanged(workflow):
    workflow.refresh_from_db()
    assert (workflow.name, workflow.status) == ("Acme secret plan", "active")
    assert dict(workflow.versions.values_list("number", "state")) == {1: "published", 2: "draft"}


@pytest.mark.parametrize("as_key", [False, True], ids=["charlie", "globex key"])
def test_another_organization_gets_404_on_every_surface(api_as, charlie, globex, key_client, secret, as_key):
    client = key_client(org=globex, role=Role.OWNER) if as_key else api_as(charlie)

    for method, url, body in _every_request_on("secret"):
        response = getattr(client, method)(url, body, format="json")
        error_of(response, 404, "not_found")
        assert b"secret plan" not in response.content

    _unchanged(secret)


@pytest.mark.parametrize("as_key", [False, True], ids=["charlie", "globex key"])
def test_another_organization_does_not_list_the_workflow(api_as, charlie, globex, key_client, secret, as_key):
    make_workflow(globex, name="Globex plan")
    client = key_client(org=globex) if as_key else api_as(charlie)

    response = client.get(LIST, {"search": "plan"})

    assert response.status_code == 200
    assert [w["name"] for w in response.json()["results"]] == ["Globex plan"]


def test_a_slug_means_each_organizations_own_workflow(api_as, charlie, globex, secret):
    make_workflow(globex, name="Globex secret", slug="secret")

    response = api_as(charlie).get(detail("secret"))

    assert response.json()["name"] == "Globex secret"


@pytest.mark.parametrize("as_key", [False, True], ids=["vera", "viewer key"])
def test_a_viewer_reads_but_never_writes(api_as, vera, key_client, secret, as_key):
    client = key_client(["read", "write", "execute"], role=Role.VIEWER) if as_key else api_as(vera)
    before = counts()

    for method, url, body in _every_request_on("secret"):
        response = getattr(client, method)(url, body, format="json")
        if method == "get":
            assert response.status_code == 200, url
        else:
            error_of(response, 403, "permission_denied")
    error_of(client.post(LIST, {"spec": linear_spec()}, format="json"), 403, "permission_denied")
    error_of(client.post(IMPORT, linear_spec(), format="json"), 403, "permission_denied")
    assert client.get(LIST).status_code == 200

    assert counts() == before
    _unchanged(secret)


def test_a_key_without_the_write_scope_cannot_post(key_client, secret):
    client = key_client(["read", "execute"], role=Role.OWNER)
    before = counts()

    for method, url, body in _every_request_on("secret"):
        if method != "get":
            error = error_of(getattr(client, method)(url, body, format="json"), 403, "permission_denied")
            assert "write" in error["message"]
    error_of(client.post(LIST, {"spec": linear_spec()}, format="json"), 403, "permission_denied")
    error_of(client.post(IMPORT, linear_spec(), format="json"), 403, "permission_denied")
    assert client.get(detail("secret")).status_code == 200

    assert counts() == before
    _unchanged(secret)


def test_an_editor_key_writes(key_client, secret, acme):
    response = key_client(["read", "write"]).post(LIST, {"spec": linear_spec()}, format="json")

    assert response.status_code == 201
    assert Workflow.objects.get(slug="linear").organization == acme


def test_without_credentials_nothing_is_readable(secret):
    client = APIClient()

    for method, url, body in _every_request_on("secret") + [("get", LIST, None), ("post", IMPORT, {})]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code in (401, 403), url
        assert response.json()["error"]["code"] == "not_authenticated"
        assert b"secret" not in response.content


def test_a_wrong_api_key_is_refused(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer af_not_a_real_key")

    error_of(client.get(LIST), 401, "authentication_failed")


def test_a_body_cannot_choose_the_organization(api_as, alice, charlie, globex, secret):
    client = api_as(alice)

    created = client.post(LIST, {"spec": linear_spec(), "organization": globex.pk}, format="json")
    patched = client.patch(detail("secret"), {"organization": globex.pk, "name": "Moved"}, format="json")
    imported = client.post(IMPORT + f"?organization={globex.pk}", linear_spec(), format="json")

    error = error_of(created, 400)
    assert ("$.organization", "unknown_field") in {(d["path"], d["code"]) for d in error["details"]}
    assert ("$.organization", "unknown_field") in {(d["path"], d["code"]) for d in error_of(patched, 400)["details"]}
    assert imported.status_code == 201  # query parameters it does not know are ignored
    assert not Workflow.objects.filter(organization=globex).exists()
    assert set(Workflow.objects.values_list("organization__slug", flat=True)) == {"acme"}
    _unchanged(secret)
