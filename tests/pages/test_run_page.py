"""Starting a run from its workflow's page and following it on the run page: steps,
outputs, artifacts, approvals, cancel and retry, all through the web pages."""
import pytest

from runs.models import Run, RunEvent, Step

pytestmark = pytest.mark.django_db(transaction=True)

TICKET = "I was charged twice for my March invoice. Please refund the duplicate payment."
ICONS = {"succeeded": "✓", "cancelled": "⊘", "waiting": "‖"}


def badge(status):
    """A status badge as the pages write it: an icon (hidden from screen readers) and the word."""
    return (f'<span class="badge badge-{status}"><span class="status-icon" aria-hidden="true">{ICONS[status]}</span> '
            f'{status.capitalize()}</span>')


def start(client, slug, **inputs):
    data = {f"input_{name}": value for name, value in inputs.items()}
    data.setdefault("mode", "full")
    response = client.post(f"/workflows/{slug}/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.latest("created_at")
    assert response["Location"] == f"/runs/{run.pk}/"
    return run


def test_submitting_the_form_runs_the_workflow_and_shows_its_steps_and_outputs(
        acme, bob, client_as, install_workflow, worker):
    install_workflow("learn-a-topic")
    client = client_as(bob)
    run = start(client, "learn-a-topic", topic="bees", level="advanced")

    run.refresh_from_db()
    assert (run.status, run.trigger, run.mode, run.created_by) == ("succeeded", "manual", "full", bob)
    assert run.inputs == {"topic": "bees", "level": "advanced"}
    response = client.get(f"/runs/{run.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert badge("succeeded") in html
    for step in Step.objects.filter(run=run):
        assert step.status == "succeeded"
        assert f'<span class="mono">{step.node_id}</span>' in html
        # Its node in the graph links to its panel and says its status in words.
        assert f'<a href="#step-{step.pk}" id="graph-node-{step.node_id}" class="graph-link" aria-label="{step.node_id}' in html
        assert f'id="step-{step.pk}"' in html
    assert html.count(badge("succeeded")) == 1 + Step.objects.filter(run=run).count()
    assert '<h3 class="output-name">notes</h3>' in html
    assert "<h4>Bees (advanced)</h4>" in html  # the output's Markdown, rendered under its name
    assert "Cancel run" not in html and "Retry failed steps" not in html
    assert 'data-terminal="true"' in html and f'data-last-seq="{run.last_seq}"' in html
    assert "/static/js/run.js" in html
    assert f'data-socket-path="/ws/runs/{run.pk}/"' in html and f'data-events-url="/api/v1/runs/{run.pk}/events/"' in html


def test_the_live_fragment_holds_the_steps_without_the_page(acme, bob, client_as, install_workflow, worker):
    install_workflow("learn-a-topic")
    client = client_as(bob)
    run = start(client, "learn-a-topic", topic="bees", level="beginner")
    run.refresh_from_db()
    html = client.get(f"/runs/{run.pk}/?fragment=1").content.decode()
    assert "<html" not in html and 'id="steps-title"' in html and 'data-run-status="succeeded"' in html
    assert f'data-last-seq="{run.last_seq}"' in html and '<svg class="graph"' in html and 'class="tl-rows"' in html


def test_artifacts_download_as_attachments(acme, bob, client_as, install_workflow, worker):
    install_workflow("learn-a-topic")
    client = client_as(bob)
    run = start(client, "learn-a-topic", topic="bees", level="beginner")
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/artifacts/notes.md"' in html
    assert f'href="/runs/{run.pk}/artifacts/trace.json"' in html

    response = client.get(f"/runs/{run.pk}/artifacts/notes.md")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="notes.md"'
    assert response["Content-Type"] == "text/markdown"
    assert b"".join(response.streaming_content).decode() == run.outputs["notes"]
    assert client.get(f"/runs/{run.pk}/artifacts/missing.md").status_code == 404


def test_input_html_is_escaped_on_every_page(acme, bob, client_as, install_workflow, worker):
    install_workflow("learn-a-topic")
    client = client_as(bob)
    run = start(client, "learn-a-topic", topic="<script>alert(1)</script>", level="beginner")
    run.refresh_from_db()
    assert run.status == "succeeded" and "<script>alert(1)</script>" in run.outputs["notes"]

    for path in (f"/runs/{run.pk}/", f"/runs/{run.pk}/?fragment=1"):
        html = client.get(path).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_waiting_approval_is_decided_from_the_run_page(acme, bob, client_as, install_workflow, worker):
    install_workflow("ticket-triage")
    client = client_as(bob)
    run = start(client, "ticket-triage", ticket=TICKET, customer="Dana")
    run.refresh_from_db()
    assert run.status == "waiting"

    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Waiting for a decision" in html
    assert f'action="/runs/{run.pk}/steps/approve/decide/"' in html
    approve = Step.objects.get(run=run, node_id="approve")
    assert '<pre class="prose">Send this reply to Dana?' in html  # the step's rendered prompt
    assert "Cancel run" in html

    response = client.post(f"/runs/{run.pk}/steps/approve/decide/", {"decision": "approve", "comment": "Looks right"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    run.refresh_from_db()
    approve.refresh_from_db()
    assert run.status == "succeeded"
    assert run.outputs["outcome"] == "sent"
    assert approve.output == {"decision": "approved", "comment": "Looks right", "by": "bob@acme.test"}
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Waiting for a decision" not in html and "Step “approve” approved." in html

    # Deciding again the other way is refused with a message, not an error page.
    response = client.post(f"/runs/{run.pk}/steps/approve/decide/", {"decision": "reject"}, follow=True)
    assert "Could not record the decision" in response.content.decode()


def test_a_viewer_sees_the_run_but_cannot_decide_cancel_or_retry(acme, bob, vera, client_as, install_workflow, worker):
    install_workflow("ticket-triage")
    run = start(client_as(bob), "ticket-triage", ticket=TICKET, customer="Dana")
    client = client_as(vera)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Waiting for a decision" in html
    assert 'name="decision"' not in html and "Cancel run" not in html
    assert client.post(f"/runs/{run.pk}/steps/approve/decide/", {"decision": "approve"}).status_code == 403
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert client.post(f"/runs/{run.pk}/retry/").status_code == 403
    run.refresh_from_db()
    assert run.status == "waiting"


def test_cancel_from_the_page_and_retry(acme, bob, client_as, install_workflow, worker):
    install_workflow("ticket-triage")
    client = client_as(bob)
    run = start(client, "ticket-triage", ticket=TICKET, customer="Dana")
    response = client.post(f"/runs/{run.pk}/cancel/", follow=True)
    run.refresh_from_db()
    assert run.status == "cancelled"
    html = response.content.decode()
    assert "The run is cancelled." in html and badge("cancelled") in html
    assert "Retry failed steps" in html and "Cancel run" not in html
    assert Step.objects.get(run=run, node_id="approve").status == "cancelled"

    response = client.post(f"/runs/{run.pk}/retry/", follow=True)
    run.refresh_from_db()
    assert "The run is queued again" in response.content.decode()
    assert run.status == "waiting"  # back at the approval, with the earlier steps kept
    assert Step.objects.get(run=run, node_id="classify").attempt == 1

    # Retrying a run that is not failed or cancelled is refused with a message.
    response = client.post(f"/runs/{run.pk}/retry/", follow=True)
    assert "Could not retry" in response.content.decode()


def test_a_running_step_shows_what_it_is_waiting_for(acme, bob, client_as, install_workflow):
    install_workflow("learn-a-topic")
    client = client_as(bob)
    run = start(client, "learn-a-topic", topic="bees", level="beginner")  # no worker: stays queued
    step = Step.objects.create(organization=acme, run=run, node_id="outline", node_type="llm", attempt=1,
                               status=Step.Status.RUNNING, started_at=run.created_at)
    RunEvent.objects.create(run=run, seq=2, type="log", data={"step": step.pk, "node": "outline",
                                                              "message": "waiting for queue openai (5 s)"})
    RunEvent.objects.create(run=run, seq=3, type="log", data={"step": step.pk, "node": "outline",
                                                              "message": "waiting for queue openai (15 s)"})

    html = client.get(f"/runs/{run.pk}/?fragment=1").content.decode()

    assert f'<p class="step-note" data-step-note="{step.pk}"><strong>Now:</strong> waiting for queue openai (15 s)</p>' in html
    assert "(5 s)" not in html
