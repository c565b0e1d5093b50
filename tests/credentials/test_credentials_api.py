import json

import pytest

from accounts.models import AuditEvent, Role
from providers.models import Credential
from tests.workflows.helpers import error_of

from .conftest import MASK, SECRET

LIST = "/api/v1/credentials/"


def detail(credential, rest=""):
    return f"{LIST}{credential.pk}/{rest}"


def _new(**overrides):
    return {"name": "prod-openai", "provider": "mock", "secret": SECRET} | overrides


def test_an_admin_creates_a_credential_and_sees_only_its_mask(api_as, acme, ada):
    response = api_as(ada).post(LIST, _new(base_url="https://llm.example.com/v1"), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret_mask"] == MASK
    assert "secret" not in body
    assert SECRET not in response.content.decode()
    assert body["created_by"] == "ada@acme.test"
    credential = Credential.objects.get(organization=acme, name="prod-openai")
    assert credential.secret == SECRET
    assert credential.base_url == "https://llm.example.com/v1"
    assert credential.created_by == ada


def test_list_and_detail_show_masks_never_secrets(api_as, alice, credential):
    client = api_as(alice)

    listing = client.get(LIST)
    one = client.get(detail(credential))

    assert listing.status_code == 200 and one.status_code == 200
    assert [c["secret_mask"] for c in listing.json()["results"]] == [MASK]
    assert one.json()["secret_mask"] == MASK
    assert "secret" not in listing.json()["results"][0] and "secret" not in one.json()
    assert SECRET not in listing.content.decode() + one.content.decode()


@pytest.mark.parametrize("who", ["vera", "bob"])
def test_viewers_and_editors_cannot_read_or_change_credentials(request, api_as, credential, who):
    client = api_as(request.getfixturevalue(who))

    responses = [
        client.get(LIST),
        client.get(detail(credential)),
        client.post(LIST, _new(), format="json"),
        client.patch(detail(credential), {"secret": "sk-other-0000000000000000"}, format="json"),
        client.post(detail(credential, "test/")),
        client.delete(detail(credential)),
    ]

    assert [r.status_code for r in responses] == [403] * 6
    assert error_of(responses[0], 403, "permission_denied")
    assert Credential.objects.get().secret == SECRET
    assert Credential.objects.count() == 1


def test_another_organizations_credential_is_not_found(api_as, charlie, globex, credential):
    client = api_as(charlie)

    assert client.get(LIST).json()["results"] == []
    assert client.get(detail(credential)).status_code == 404
    assert client.patch(detail(credential), {"name": "mine"}, format="json").status_code == 404
    assert client.post(detail(credential, "test/")).status_code == 404
    assert client.delete(detail(credential)).status_code == 404
    assert Credential.objects.get().name == "prod-mock"


def test_api_keys_need_an_admin_role_and_the_right_scope(key_client, credential):
    admin_reader = key_client(["read"], role=Role.ADMIN)
    admin_writer = key_client(["read", "write"], role=Role.ADMIN)
    editor = key_client(["read", "write", "execute"], role=Role.EDITOR)

    assert admin_reader.get(LIST).status_code == 200
    assert admin_reader.post(LIST, _new(), format="json").status_code == 403
    assert editor.get(LIST).status_code == 403
    assert admin_writer.post(LIST, _new(), format="json").status_code == 201
    assert Credential.objects.count() == 2


def test_bad_input_lists_every_problem(api_as, alice, credential):
    response = api_as(alice).post(
        LIST,
        {"name": "prod-mock", "provider": "no-such-vendor", "base_url": "ftp://files.example.com", "secret": "a b"},
        format="json",
    )

    error = error_of(response, 400, "invalid")
    paths = {(d["path"], d["code"]) for d in error["details"]}
    assert ("$.name", "unique") in paths
    assert ("$.provider", "unknown_provider") in paths
    assert "$.base_url" in {p for p, _ in paths}
    assert "$.secret" in {p for p, _ in paths}
    assert Credential.objects.count() == 1


def test_the_organization_and_other_unknown_fields_are_refused(api_as, acme, alice, globex):
    response = api_as(alice).post(LIST, _new(organization=globex.pk, created_by=1), format="json")

    paths = {(d["path"], d["code"]) for d in error_of(response, 400)["details"]}
    assert paths == {("$.organization", "unknown_field"), ("$.created_by", "unknown_field")}
    assert not Credential.objects.exists()


def test_a_secret_is_required_to_create_and_optional_to_update(api_as, alice, credential):
    client = api_as(alice)

    missing = client.post(LIST, _new(secret=None) | {"name": "other"}, format="json")
    renamed = client.patch(detail(credential), {"base_url": "https://proxy.example.com"}, format="json")

    assert {d["path"] for d in error_of(missing, 400)["details"]} == {"$.secret"}
    assert renamed.status_code == 200
    credential.refresh_from_db()
    assert credential.secret == SECRET
    assert credential.base_url == "https://proxy.example.com"


def test_a_new_secret_replaces_the_old_and_clears_the_last_test(api_as, alice, credential):
    credential.test_connection()
    new_secret = "sk-ant-api03-NEWNEWNEWNEW9876"

    response = api_as(alice).patch(detail(credential), {"secret": new_secret}, format="json")

    assert response.status_code == 200
    assert response.json()["secret_mask"] == "sk-…9876"
    assert new_secret not in response.content.decode()
    credential.refresh_from_db()
    assert credential.secret == new_secret
    assert credential.last_tested_at is None and credential.last_test_ok is None


def test_changes_are_audited_without_the_secret(api_as, acme, alice):
    client = api_as(alice)
    created = client.post(LIST, _new(), format="json").json()
    client.patch(f"{LIST}{created['id']}/", {"secret": "sk-second-secret-00001111"}, format="json")
    client.post(f"{LIST}{created['id']}/test/")
    client.delete(f"{LIST}{created['id']}/")

    events = AuditEvent.objects.for_org(acme).filter(action__startswith="credential.").order_by("created_at", "pk")

    assert [e.action for e in events] == [
        "credential.created", "credential.updated", "credential.tested", "credential.deleted",
    ]
    assert events[1].data == {"changed": ["secret"]}
    assert all(e.actor == alice for e in events)
    dumped = json.dumps([e.data for e in events]) + "".join(e.target for e in events)
    assert SECRET not in dumped and "sk-second-secret-00001111" not in dumped


def test_delete_is_refused_while_a_published_version_names_the_credential(api_as, alice, credential, workflow_using):
    workflow = workflow_using("prod-mock")

    response = api_as(alice).delete(detail(credential))

    error = error_of(response, 409, "credential_in_use")
    assert "Support triage" in error["message"] and "version 1" in error["message"]
    assert [d["code"] for d in error["details"]] == ["credential_in_use"]
    assert Credential.objects.filter(pk=credential.pk).exists()
    workflow.archive(actor=alice)
    assert api_as(alice).delete(detail(credential)).status_code == 204
    assert not Credential.objects.filter(pk=credential.pk).exists()


def test_a_draft_that_names_the_credential_does_not_keep_it(api_as, alice, credential, workflow_using):
    workflow_using("prod-mock", publish=False)

    assert api_as(alice).delete(detail(credential)).status_code == 204
    assert not Credential.objects.exists()


def test_a_credential_in_use_keeps_its_name_and_provider_but_takes_a_new_secret(
    api_as, alice, credential, workflow_using
):
    workflow_using("prod-mock")
    client = api_as(alice)

    renamed = client.patch(detail(credential), {"name": "renamed"}, format="json")
    rotated = client.patch(detail(credential), {"secret": "sk-rotated-key-00001234"}, format="json")

    assert "Support triage" in error_of(renamed, 409, "credential_in_use")["message"]
    assert rotated.status_code == 200
    credential.refresh_from_db()
    assert credential.name == "prod-mock"
    assert credential.secret == "sk-rotated-key-00001234"


def test_names_are_unique_per_organization_only(api_as, charlie, globex, credential):
    response = api_as(charlie).post(LIST, _new(name="prod-mock"), format="json")

    assert response.status_code == 201
    assert Credential.objects.filter(name="prod-mock").count() == 2
