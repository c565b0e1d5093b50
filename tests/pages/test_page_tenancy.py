"""Another organization's workflows, runs and artifacts are 404 on every page, GET or POST;
signed-out visitors are sent to the login page."""
import pytest

from runs.models import Run


@pytest.fixture
def acme_run(acme, alice, install_workflow):
    workflow = install_workflow("learn-a-topic")
    version = workflow.latest_published()
    clean, _ = version.typed_spec().check_inputs({"topic": "bees"})
    return Run.start(workflow, version, clean, trigger="manual", user=alice)  # no worker: it stays queued


def test_charlie_gets_404_for_acme_pages(acme_run, globex, charlie, client_as):
    client = client_as(charlie)
    run = acme_run
    for path in ("/workflows/learn-a-topic/", f"/runs/{run.pk}/", f"/runs/{run.pk}/?fragment=1",
                 f"/runs/{run.pk}/artifacts/trace.json"):
        assert client.get(path).status_code == 404, path
    for path in (f"/runs/{run.pk}/cancel/", f"/runs/{run.pk}/retry/", f"/runs/{run.pk}/steps/approve/decide/"):
        assert client.post(path, {"decision": "approve"}).status_code == 404, path
    run.refresh_from_db()
    assert run.status == "queued"


def test_charlie_gets_404_for_an_acme_artifact(acme_run, globex, charlie, client_as, alice):
    from django.core.files.base import ContentFile

    from runs.models import Artifact

    artifact = Artifact(organization=acme_run.organization, run=acme_run, name="notes.md", content_type="text/markdown",
                        size=5, sha256="0" * 64)
    artifact.file.save("notes.md", ContentFile(b"notes"), save=True)
    assert client_as(alice).get(f"/runs/{acme_run.pk}/artifacts/notes.md").status_code == 200
    assert client_as(charlie).get(f"/runs/{acme_run.pk}/artifacts/notes.md").status_code == 404


def test_charlie_sees_none_of_acme_in_lists(acme_run, globex, charlie, client_as):
    client = client_as(charlie)
    for path in ("/", "/workflows/", "/runs/"):
        html = client.get(path).content.decode()
        assert "Learn a topic" not in html and str(acme_run.pk)[:8] not in html, path


def test_signed_out_visitors_go_to_login(acme_run, client):
    for path in ("/", "/workflows/", "/workflows/learn-a-topic/", "/runs/", f"/runs/{acme_run.pk}/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path
