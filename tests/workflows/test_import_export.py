"""Exporting a version's spec as a file and importing a spec as a new workflow."""
import json

from django.core.files.uploadedfile import SimpleUploadedFile

from workflows import spec as specs
from workflows.models import Workflow

from .helpers import IMPORT, catalog_spec, counts, detail, error_of, make_workflow, revised_spec
from .spec_samples import linear_spec


def test_export_downloads_the_published_spec(api_as, vera, acme):
    workflow = make_workflow(acme, catalog_spec("intent-router"), slug="router", publish=True)
    workflow.save_draft(revised_spec())

    response = api_as(vera).get(detail("router", "export/"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="router-v1.json"'
    assert json.loads(response.content) == workflow.versions.get(number=1).spec


def test_export_of_a_chosen_version(api_as, vera, acme):
    workflow = make_workflow(acme, slug="flow")
    workflow.save_draft(revised_spec())
    client = api_as(vera)

    v1 = client.get(detail("flow", "export/"), {"version": 1})
    latest = client.get(detail("flow", "export/"))

    assert v1["Content-Disposition"] == 'attachment; filename="flow-v1.json"'
    assert json.loads(v1.content)["name"] == "Linear"
    # No version is published yet: the latest draft is exported.
    assert latest["Content-Disposition"] == 'attachment; filename="flow-v2.json"'
    assert json.loads(latest.content)["name"] == "Linear, revised"


def test_export_refuses_what_is_not_a_version(api_as, vera, acme):
    make_workflow(acme, slug="flow")
    client = api_as(vera)

    error_of(client.get(detail("flow", "export/"), {"version": 9}), 404, "not_found")
    for bad in ("one", "²", "-1", "9" * 5000):
        error_of(client.get(detail("flow", "export/"), {"version": bad}), 400, "invalid")


def test_import_of_a_json_body_creates_a_draft(api_as, bob, acme):
    response = api_as(bob).post(IMPORT + "?category=routing", catalog_spec("intent-router"), format="json")

    assert response.status_code == 201
    assert (response.json()["slug"], response.json()["category"]) == ("intent-router", "routing")
    workflow = Workflow.objects.get(organization=acme, slug="intent-router")
    version = workflow.versions.get()
    assert (version.state, version.message, version.author) == ("draft", "Imported", bob)
    # The stored spec is the typed document: defaults filled in, then hashed.
    assert version.spec_hash == specs.spec_hash(specs.WorkflowSpec.model_validate(catalog_spec("intent-router")))


def test_import_of_an_uploaded_file_can_publish(api_as, bob, acme):
    upload = SimpleUploadedFile("triage.json", json.dumps(catalog_spec("ticket-triage")).encode(),
                                content_type="application/json")

    response = api_as(bob).post(IMPORT + "?publish=true&slug=triage", {"file": upload}, format="multipart")

    assert response.status_code == 201
    assert response.json()["published_version"] == 1
    version = Workflow.objects.get(organization=acme, slug="triage").versions.get()
    assert version.state == "published"
    assert version.published_by == bob


def test_import_into_a_taken_slug_is_a_conflict(api_as, bob, acme):
    make_workflow(acme, slug="flow")
    before = counts()

    response = api_as(bob).post(IMPORT + "?slug=flow", linear_spec(), format="json")

    error_of(response, 409, "conflict")
    assert counts() == before


def test_import_checks_its_query_parameters(api_as, bob, acme):
    client = api_as(bob)

    for query in ("slug=Not%20a%20slug!", "slug=%00", "slug=" + "s" * 81, "category=" + "c" * 61, "publish=maybe"):
        error = error_of(client.post(f"{IMPORT}?{query}", linear_spec(), format="json"), 400, "invalid")
        assert error["details"][0]["path"] == "$." + query.split("=")[0]
    assert counts() == (0, 0)


def test_an_invalid_import_saves_nothing(api_as, bob, acme):
    spec = linear_spec()
    spec["nodes"][1]["source"] = "ghost"

    response = api_as(bob).post(IMPORT + "?publish=true", spec, format="json")

    error = error_of(response, 400, "invalid_spec")
    assert ("$.nodes[1].source", "reference.unknown_source") in {(d["path"], d["code"]) for d in error["details"]}
    assert counts() == (0, 0)


def test_an_uploaded_file_over_the_spec_limit_is_refused(api_as, bob, acme, settings):
    settings.AGENTFLOW_SPEC_LIMITS = {**settings.AGENTFLOW_SPEC_LIMITS, "body_bytes": 1000}
    upload = SimpleUploadedFile("big.json", b" " * 1001 + json.dumps(linear_spec()).encode())

    response = api_as(bob).post(IMPORT, {"file": upload}, format="multipart")

    error_of(response, 413, "body_too_large")
    assert counts() == (0, 0)


def test_an_uploaded_file_that_is_not_json_is_refused(api_as, bob, acme):
    upload = SimpleUploadedFile("spec.json", b"\xff\xfe{ not json")

    response = api_as(bob).post(IMPORT, {"file": upload}, format="multipart")

    assert error_of(response, 400, "invalid_spec")["details"][0]["code"] == "json.encoding"
    assert counts() == (0, 0)


def test_export_then_import_keeps_the_spec_hash(api_as, alice, acme):
    original = make_workflow(acme, catalog_spec("three-reviewers"), slug="reviewers", publish=True)
    client = api_as(alice)

    exported = client.get(detail("reviewers", "export/"))
    upload = SimpleUploadedFile("reviewers-v1.json", exported.content)
    imported = client.post(IMPORT + "?slug=reviewers-copy", {"file": upload}, format="multipart")

    assert imported.status_code == 201
    copy = Workflow.objects.get(organization=acme, slug="reviewers-copy")
    assert copy.latest_version().spec_hash == original.latest_published().spec_hash
    assert imported.json()["latest_version"]["spec_hash"] == original.latest_published().spec_hash
