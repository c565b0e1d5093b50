"""Runs belong to their organization: another organization's run is a 404 on every action,
viewers only read, and API keys need the execute scope to start or control runs."""
import pytest
from django.core.files.base import ContentFile

from accounts.models import Role
from runs.models import Artifact, Run

from .helpers import RUNS, body_of, error_of, make_workflow, run_url

CONTROLS = ["cancel/", "approve/", "reject/", "retry/"]


@pytest.fixture
def acme_run(linear, alice):
    return Run.start(linear, linear.latest_published(), {"topic": "tides"}, user=alice)


@pytest.fixture
def acme_artifact(acme_run):
    artifact = Artifact(organization=acme_run.organization, run=acme_run, name="notes.md",
                        content_type="text/markdown", size=5, sha256="0" * 64)
    artifact.file.save("notes.md", ContentFile(b"hello"), save=True)
    return artifact


def test_another_organizations_run_is_a_404_everywhere(api_as, charlie, globex, acme_run, acme_artifact):
    client = api_as(charlie)
    make_workflow(globex, slug="linear")

    for path in ["", "events/", "artifacts/", "artifacts/notes.md/"]:
        error_of(client.get(run_url(acme_run.pk, path)), 404, "not_found")
    for path in CONTROLS:
        error_of(client.post(run_url(acme_run.pk, path), {"node": "start"}, format="json"), 404, "not_found")
    assert body_of(client.get(RUNS), 200)["results"] == []
    acme_run.refresh_from_db()
    assert (acme_run.status, acme_run.cancel_requested_at) == ("queued", None)


def test_a_run_cannot_start_another_organizations_workflow(api_as, charlie, globex, linear):
    error = error_of(api_as(charlie).post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"),
                     400)

    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.workflow", "not_found")]
    assert not Run.objects.exists()


def test_a_key_of_another_organization_sees_nothing(key_client, globex, acme_run):
    client = key_client(org=globex)

    error_of(client.get(run_url(acme_run.pk)), 404)
    error_of(client.post(run_url(acme_run.pk, "cancel/")), 404)
    assert body_of(client.get(RUNS), 200)["results"] == []


def test_a_viewer_reads_runs(api_as, vera, acme_run):
    client = api_as(vera)

    assert body_of(client.get(RUNS), 200)["results"][0]["id"] == str(acme_run.pk)
    assert body_of(client.get(run_url(acme_run.pk)), 200)["status"] == "queued"
    assert body_of(client.get(run_url(acme_run.pk, "events/")), 200)["last_seq"] == 1
    assert body_of(client.get(run_url(acme_run.pk, "artifacts/")), 200) == {"results": []}


def test_a_viewer_cannot_start_or_control_runs(api_as, vera, linear, acme_run):
    client = api_as(vera)

    error_of(client.post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"), 403)
    for path in CONTROLS:
        error_of(client.post(run_url(acme_run.pk, path), {"node": "start"}, format="json"), 403)

    assert Run.objects.count() == 1
    acme_run.refresh_from_db()
    assert (acme_run.status, acme_run.cancel_requested_at) == ("queued", None)


def test_an_editor_starts_and_cancels_runs(api_as, bob, linear):
    client = api_as(bob)

    run_id = body_of(client.post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"), 201)["id"]
    body_of(client.post(run_url(run_id, "cancel/")), 200)

    assert Run.objects.get(pk=run_id).status == "cancelled"


@pytest.mark.parametrize("scopes", [("read",), ("read", "write")])
def test_a_key_without_the_execute_scope_only_reads(key_client, linear, acme_run, scopes):
    client = key_client(scopes)

    assert body_of(client.get(run_url(acme_run.pk)), 200)["id"] == str(acme_run.pk)
    error = error_of(client.post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"), 403)
    assert "execute" in error["message"]
    for path in CONTROLS:
        error_of(client.post(run_url(acme_run.pk, path), {"node": "start"}, format="json"), 403)
    assert Run.objects.count() == 1


def test_a_key_with_the_execute_scope_starts_runs(key_client, alice, linear):
    client = key_client(("execute",))

    body = body_of(client.post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"), 201)

    run = Run.objects.get(pk=body["id"])
    assert (run.trigger, run.organization) == ("api", linear.organization)
    error_of(client.get(RUNS), 403)  # reading needs the read scope


def test_a_viewer_key_cannot_start_runs_even_with_the_execute_scope(key_client, linear):
    client = key_client(("read", "execute"), role=Role.VIEWER)

    error_of(client.post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json"), 403)

    assert not Run.objects.exists()


def test_anonymous_requests_are_refused(client, acme_run):
    error_of(client.get(RUNS), 401)
    error_of(client.get(run_url(acme_run.pk)), 401)
    error_of(client.post(RUNS, {"workflow": "linear"}, content_type="application/json"), 401)
    assert Run.objects.count() == 1
