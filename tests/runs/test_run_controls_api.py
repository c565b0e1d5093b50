"""Cancelling, approving, rejecting and retrying runs through the API."""
import pytest
from huey.contrib.djhuey import HUEY

from runs import engine
from runs.models import Run, Step

from .helpers import RUNS, body_of, calls_in, error_of, failing_spec, make_workflow, run_url


def start(client, workflow, inputs):
    return body_of(client.post(RUNS, {"workflow": workflow, "inputs": inputs}, format="json"), 201)["id"]


def test_cancelling_a_queued_run_cancels_it_before_any_step(api_as, bob, linear, enqueued,
                                                            django_capture_on_commit_callbacks):
    client = api_as(bob)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(client, "linear", {"topic": "tides"})
    assert enqueued == [run_id]  # enqueued, but no worker has picked it up

    response = client.post(run_url(run_id, "cancel/"))

    body = body_of(response, 200)
    assert (body["status"], body["error"], body["steps"]) == ("cancelled", "Cancelled.", [])
    run = Run.objects.get(pk=run_id)
    assert run.status == "cancelled" and run.cancel_requested_at and run.finished_at
    assert not run.steps.exists()
    assert list(run.events.values_list("type", flat=True)) == ["run.queued", "log", "run.cancelled"]
    # The task delivered late finds nothing to do.
    assert engine.execute(run_id) is None
    assert not run.steps.exists()


def test_cancelling_twice_is_harmless(api_as, bob, linear):
    client = api_as(bob)
    run_id = start(client, "linear", {"topic": "tides"})

    first = client.post(run_url(run_id, "cancel/"))
    second = client.post(run_url(run_id, "cancel/"))

    assert body_of(first, 200)["status"] == body_of(second, 200)["status"] == "cancelled"
    assert Run.objects.get(pk=run_id).events.filter(type="run.cancelled").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_cannot_be_cancelled(api_as, bob, linear, worker):
    client = api_as(bob)
    run_id = start(client, "linear", {"topic": "tides"})

    error_of(client.post(run_url(run_id, "cancel/")), 409, "run_finished")

    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded" and run.cancel_requested_at is None


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_waiting_run_cancels_its_human_step(api_as, bob, triage, worker):
    client = api_as(bob)
    run_id = start(client, "ticket-triage", {})
    assert Run.objects.get(pk=run_id).status == "waiting"

    body = body_of(client.post(run_url(run_id, "cancel/")), 200)

    assert body["status"] == "cancelled"
    run = Run.objects.get(pk=run_id)
    assert run.status == "cancelled"
    assert run.steps.get(node_id="approve").status == "cancelled"
    error_of(client.post(run_url(run_id, "approve/"), {"node": "approve"}, format="json"), 409, "decision_conflict")


@pytest.mark.django_db(transaction=True)
def test_approving_twice_records_one_decision(api_as, alice, bob, triage, worker):
    run_id = start(api_as(bob), "ticket-triage", {})

    first = api_as(bob).post(run_url(run_id, "approve/"), {"node": "approve"}, format="json")
    second = api_as(alice).post(run_url(run_id, "approve/"), {"node": "approve", "comment": "me too"},
                                format="json")

    assert body_of(first, 200)["status"] == "succeeded"
    assert body_of(second, 200)["status"] == "succeeded"
    run = Run.objects.get(pk=run_id)
    step = run.steps.get(node_id="approve")
    assert step.output == {"decision": "approved", "comment": "", "by": str(bob)}
    decided = [e for e in run.events.filter(type="step.succeeded") if e.data["node"] == "approve"]
    assert len(decided) == 1
    assert run.outputs["outcome"] == "sent"


@pytest.mark.django_db(transaction=True)
def test_approving_after_a_rejection_is_a_conflict(api_as, bob, triage, worker):
    client = api_as(bob)
    run_id = start(client, "ticket-triage", {})
    body_of(client.post(run_url(run_id, "reject/"), {"node": "approve"}, format="json"), 200)

    error = error_of(client.post(run_url(run_id, "approve/"), {"node": "approve"}, format="json"), 409,
                     "decision_conflict")

    assert "rejected" in error["message"]
    run = Run.objects.get(pk=run_id)
    assert run.steps.get(node_id="approve").output["decision"] == "rejected"
    assert run.outputs["outcome"] == "held"


@pytest.mark.django_db(transaction=True)
def test_deciding_a_step_that_is_not_a_waiting_human_step_is_a_conflict(api_as, bob, triage, worker):
    client = api_as(bob)
    run_id = start(client, "ticket-triage", {})

    for node in ["classify", "nope"]:
        error_of(client.post(run_url(run_id, "approve/"), {"node": node}, format="json"), 409, "decision_conflict")

    assert Run.objects.get(pk=run_id).status == "waiting"


def test_a_decision_needs_a_node(api_as, bob, linear):
    run_id = start(api_as(bob), "linear", {"topic": "tides"})

    error = error_of(api_as(bob).post(run_url(run_id, "approve/"), {"comment": "ok", "extra": 1}, format="json"),
                     400, "invalid")

    assert {d["path"] for d in error["details"]} == {"$.extra"}
    error = error_of(api_as(bob).post(run_url(run_id, "approve/"), {"comment": "ok"}, format="json"), 400)
    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.node", "required")]


@pytest.mark.django_db(transaction=True)
def test_a_human_step_for_admins_refuses_an_editor(api_as, alice, bob, acme, worker):
    spec = {
        "version": 1, "name": "Sign-off",
        "nodes": [{"id": "start", "type": "input"},
                  {"id": "sign", "type": "human", "approver_role": "admin", "prompt": "Sign?"},
                  {"id": "done", "type": "output", "value": "{{ nodes.sign.output.decision }}"}],
        "edges": [{"from": "start", "to": "sign"}, {"from": "sign", "to": "done"}],
    }
    make_workflow(acme, spec, slug="sign-off")
    run_id = start(api_as(bob), "sign-off", {})

    error_of(api_as(bob).post(run_url(run_id, "approve/"), {"node": "sign"}, format="json"), 403)
    assert Run.objects.get(pk=run_id).steps.get(node_id="sign").status == "waiting"

    body = body_of(api_as(alice).post(run_url(run_id, "approve/"), {"node": "sign"}, format="json"), 200)
    assert body["status"] == "succeeded"
    assert Run.objects.get(pk=run_id).outputs == {"done": "approved"}


# Retry -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retrying_a_failed_run_redoes_only_what_failed(api_as, bob, acme, worker, tmp_path):
    call_log = tmp_path / "calls.log"
    make_workflow(acme, failing_spec(call_log), slug="flaky")
    client = api_as(bob)
    run_id = start(client, "flaky", {"topic": "tides"})
    run = Run.objects.get(pk=run_id)
    assert run.status == "failed" and "boom" in run.error
    outline, draft = run.steps.get(node_id="outline"), run.steps.get(node_id="draft")
    assert (outline.status, draft.status) == ("succeeded", "failed") and draft.error.endswith("boom")
    assert calls_in(call_log) == {outline.idempotency_key: 1, draft.idempotency_key: 1}

    response = client.post(run_url(run_id, "retry/"))

    body = body_of(response, 200)
    assert body["status"] == "succeeded"
    assert body["outputs"]["text"].startswith("[mock mock-1]")
    run.refresh_from_db()
    assert (run.status, run.error) == ("succeeded", "")
    assert calls_in(call_log) == {outline.idempotency_key: 1, draft.idempotency_key: 2}
    steps = {step.node_id: step for step in run.steps.all()}
    assert steps["outline"].attempt == 1 and steps["outline"].output == outline.output
    assert (steps["draft"].status, steps["draft"].attempt, steps["draft"].error) == ("succeeded", 2, "")
    assert worker == [run_id, run_id]
    assert [e.type for e in run.events.filter(type__startswith="run.")] == [
        "run.queued", "run.started", "run.failed", "run.queued", "run.started", "run.succeeded"]


@pytest.mark.django_db(transaction=True)
def test_retrying_a_cancelled_run_runs_it(api_as, bob, linear, enqueued):
    client = api_as(bob)
    run_id = start(client, "linear", {"topic": "tides"})
    body_of(client.post(run_url(run_id, "cancel/")), 200)

    HUEY.immediate = True  # a worker comes up only now
    try:
        body = body_of(client.post(run_url(run_id, "retry/")), 200)
    finally:
        HUEY.immediate = False
    assert body["status"] == "succeeded"
    assert Run.objects.get(pk=run_id).steps.filter(status="succeeded").count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_run_that_did_not_fail_cannot_be_retried(api_as, bob, linear, triage, worker):
    client = api_as(bob)
    succeeded = start(client, "linear", {"topic": "tides"})
    waiting = start(client, "ticket-triage", {})

    for run_id in (succeeded, waiting):
        error_of(client.post(run_url(run_id, "retry/")), 409, "not_retryable")

    assert Run.objects.get(pk=succeeded).status == "succeeded"
    assert Run.objects.get(pk=waiting).status == "waiting"
    assert worker == [succeeded, waiting]
    assert Step.objects.filter(run_id=succeeded, attempt__gt=1).count() == 0
