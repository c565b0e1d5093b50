"""A finished run's files: listed with their sizes and hashes, downloaded as attachments."""
import hashlib
import json

import pytest

from runs.models import Artifact, Run

from tests.workflows.spec_samples import linear_spec

from .helpers import RUNS, body_of, error_of, failing_spec, make_workflow, run_url

SECRET = "sk-live-0123456789abcdefSECRET"


@pytest.fixture
def finished(api_as, alice, acme, worker, monkeypatch):
    """A succeeded run of a workflow whose source takes its key from the environment."""
    monkeypatch.setenv("ACME_LLM_API_KEY", SECRET)
    spec = linear_spec()
    spec["sources"]["writer"]["api_key_env"] = "ACME_LLM_API_KEY"
    make_workflow(acme, spec, slug="keyed")
    response = api_as(alice).post(RUNS, {"workflow": "keyed", "inputs": {"topic": "tides"}}, format="json")
    run = Run.objects.get(pk=body_of(response, 201)["id"])
    assert run.status == "succeeded"
    return run


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_lists_its_artifacts(api_as, alice, finished):
    body = body_of(api_as(alice).get(run_url(finished.pk, "artifacts/")), 200)

    listed = {item["name"]: item for item in body["results"]}
    assert set(listed) == {"text.md", "trace.json"}
    for artifact in Artifact.objects.filter(run=finished):
        item = listed[artifact.name]
        assert (item["content_type"], item["size"], item["sha256"]) == (artifact.content_type, artifact.size,
                                                                         artifact.sha256)
        assert item["url"] == run_url(finished.pk, f"artifacts/{artifact.name}/")
    assert listed["text.md"]["content_type"] == "text/markdown"
    assert listed["trace.json"]["content_type"] == "application/json"


@pytest.mark.django_db(transaction=True)
def test_an_artifact_downloads_as_an_attachment(api_as, alice, finished):
    client = api_as(alice)
    item = next(i for i in body_of(client.get(run_url(finished.pk, "artifacts/")), 200)["results"]
                if i["name"] == "text.md")

    response = client.get(item["url"])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == 'attachment; filename="text.md"'
    content = b"".join(response.streaming_content)
    assert len(content) == item["size"]
    assert hashlib.sha256(content).hexdigest() == item["sha256"]
    assert content.decode() == finished.outputs["text"]


@pytest.mark.django_db(transaction=True)
def test_the_trace_holds_every_step_and_no_secret(api_as, alice, finished):
    client = api_as(alice)

    response = client.get(run_url(finished.pk, "artifacts/trace.json/"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    raw = b"".join(response.streaming_content)
    trace = json.loads(raw)
    assert trace["run"] == str(finished.pk) and trace["workflow"] == "keyed"
    assert [step["node"] for step in trace["steps"]] == ["start", "outline", "draft", "done"]
    assert all(step["status"] == "succeeded" for step in trace["steps"])
    assert trace["steps"][1]["input"]["prompt"] == "Outline tides"
    assert SECRET.encode() not in raw
    # Nor anywhere else a user can read it.
    for artifact in Artifact.objects.filter(run=finished):
        assert SECRET.encode() not in artifact.file.open("rb").read()
    assert SECRET not in client.get(run_url(finished.pk)).content.decode()
    assert SECRET not in client.get(run_url(finished.pk, "events/")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_unknown_artifact_is_a_404(api_as, alice, finished):
    error_of(api_as(alice).get(run_url(finished.pk, "artifacts/secrets.txt/")), 404, "not_found")


def test_a_run_without_files_lists_none(api_as, alice, linear):
    response = api_as(alice).post(RUNS, {"workflow": "linear", "inputs": {"topic": "x"}}, format="json")

    body = body_of(api_as(alice).get(run_url(body_of(response, 201)["id"], "artifacts/")), 200)

    assert body == {"results": []}


def _run_with_output(api_as, alice, acme, name):
    spec = linear_spec()
    spec["outputs"] = {name: "{{ nodes.done.output }}"}
    make_workflow(acme, spec, slug="odd-names")
    response = api_as(alice).post(RUNS, {"workflow": "odd-names", "inputs": {"topic": "tides"}}, format="json")
    return Run.objects.get(pk=body_of(response, 201)["id"])


@pytest.mark.django_db(transaction=True)
def test_an_output_name_with_a_slash_still_downloads(api_as, alice, acme, worker):
    run = _run_with_output(api_as, alice, acme, "notes/today")
    client = api_as(alice)

    listed = {item["name"]: item for item in body_of(client.get(run_url(run.pk, "artifacts/")), 200)["results"]}
    response = client.get(listed["notes/today.md"]["url"])

    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode() == run.outputs["notes/today"]


@pytest.mark.django_db(transaction=True)
def test_an_output_name_that_climbs_directories_does_not_wedge_the_run(api_as, alice, acme, worker):
    run = _run_with_output(api_as, alice, acme, "../escape")

    assert run.status in Run.TERMINAL
    assert not run.lease_owner


@pytest.mark.django_db(transaction=True)
def test_a_retried_run_keeps_only_its_current_files(api_as, bob, acme, worker, tmp_path, settings):
    make_workflow(acme, failing_spec(tmp_path / "calls.log"), slug="flaky")
    client = api_as(bob)
    run_id = body_of(client.post(RUNS, {"workflow": "flaky", "inputs": {"topic": "x"}}, format="json"), 201)["id"]
    assert Run.objects.get(pk=run_id).artifacts.filter(name="trace.json").exists()

    assert body_of(client.post(run_url(run_id, "retry/")), 200)["status"] == "succeeded"

    run = Run.objects.get(pk=run_id)
    folder = settings.MEDIA_ROOT / "artifacts" / str(run.organization_id) / run_id
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == sorted(a.file.name.rsplit("/", 1)[-1] for a in run.artifacts.all())
