from datetime import timedelta

import pytest
from django.db.models import F

from runs import engine
from runs.models import DecisionError, Run, RunEvent, Step

from .helpers import (Driver, assert_events_consistent, event_types, llm, mock_source, read_calls, spec, start_run,
                      steps_of, wait_for)

pytestmark = pytest.mark.django_db(transaction=True)


def approval():
    return spec(
        [{"id": "review", "type": "human", "prompt": "Publish {{ inputs.title }}?"},
         {"id": "publish", "type": "transform", "template": "published {{ nodes.review.output.comment }}"},
         {"id": "archive", "type": "transform", "template": "archived"}],
        [("start", "review"),
         ("review", "publish", 'nodes.review.output.decision == "approved"'),
         ("review", "archive", 'nodes.review.output.decision == "rejected"')],
        inputs={"title": {"type": "string", "default": "Q3 report"}},
    )


def test_the_run_waits_for_a_decision_with_its_lease_released(acme):
    run = start_run(acme, approval())

    assert engine.execute(run.pk) == Run.Status.WAITING
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert run.lease_owner == "" and run.lease_expires_at is None
    review = steps_of(run)["review"]
    assert review.status == Step.Status.WAITING
    assert review.input["prompt"] == "Publish Q3 report?"
    waiting = RunEvent.objects.get(run=run, type="step.waiting")
    assert waiting.data["prompt"] == "Publish Q3 report?"
    assert event_types(run)[-1] == "run.waiting"
    # Nobody decided: another delivery of the task changes nothing.
    assert engine.execute(run.pk) is None
    assert_events_consistent(run)


def test_approving_resumes_the_run_and_edges_see_the_decision(acme, alice):
    run = start_run(acme, approval())
    engine.execute(run.pk)

    step = run.decide("review", True, "ok", alice)
    assert step.status == Step.Status.SUCCEEDED
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["review"].output == {"decision": "approved", "comment": "ok", "by": str(alice)}
    assert steps["publish"].output == "published ok"
    assert steps["archive"].status == Step.Status.SKIPPED
    assert steps["review"].attempt == 1  # the human step was not executed again
    assert_events_consistent(run)


def test_rejecting_takes_the_other_edge(acme, bob):
    run = start_run(acme, approval())
    engine.execute(run.pk)
    run.decide("review", False, "not now", bob)
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["archive"].output == "archived"
    assert steps["publish"].status == Step.Status.SKIPPED


def test_approving_twice_is_harmless_but_changing_the_decision_is_refused(acme, alice):
    run = start_run(acme, approval())
    engine.execute(run.pk)

    first = run.decide("review", True, "ok", alice)
    second = run.decide("review", True, "ok again", alice)
    assert second.pk == first.pk and second.output["comment"] == "ok"
    assert RunEvent.objects.filter(run=run, type="step.succeeded", data__node="review").count() == 1
    with pytest.raises(DecisionError):
        run.decide("review", False, "changed my mind", alice)
    engine.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert_events_consistent(run)


def parallel_approval(call_log):
    return spec(
        [{"id": "review", "type": "human"},
         {"id": "after_review", "type": "transform", "template": "after review"},
         llm("work"),
         {"id": "after_work", "type": "transform", "template": "after {{ nodes.work.output }}"}],
        [("start", "review"), ("review", "after_review"), ("start", "work"), ("work", "after_work")],
        sources={"model": mock_source(latency_ms=300, call_log=call_log, responses=[{"match": "work", "text": "work"}])},
    )


def test_a_human_step_pauses_only_its_own_branch(acme, alice, call_log):
    run = start_run(acme, parallel_approval(call_log))
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    steps = steps_of(run)
    assert steps["work"].status == Step.Status.SUCCEEDED
    assert steps["after_work"].output == "after work"
    assert steps["review"].status == Step.Status.WAITING
    assert "after_review" not in steps

    run.decide("review", True, "", alice)
    engine.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["after_review"].status == Step.Status.SUCCEEDED
    assert read_calls(call_log) == {steps["work"].idempotency_key: 1}  # not executed again
    assert_events_consistent(run)


def test_a_decision_taken_while_the_other_branch_runs_is_picked_up_at_once(acme, alice, call_log):
    run = start_run(acme, parallel_approval(call_log))
    driver = Driver(run.pk)
    driver.start()
    wait_for(lambda: Step.objects.filter(run=run, node_id="review", status=Step.Status.WAITING).exists(),
             message="the human step to wait")
    run.decide("review", True, "", alice)

    driver.finish()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert "run.waiting" not in event_types(run)
    assert_events_consistent(run)


def test_time_spent_waiting_for_a_person_does_not_count_against_the_run_timeout(acme, alice):
    document = approval()
    document["settings"] = {"timeout_s": 5}
    run = start_run(acme, document)
    assert engine.execute(run.pk) == Run.Status.WAITING
    # The approver answers an hour later.
    Run.objects.filter(pk=run.pk).update(started_at=F("started_at") - timedelta(hours=1))
    run.refresh_from_db()
    run.decide("review", True, "go", actor=alice)

    assert engine.execute(run.pk) == Run.Status.SUCCEEDED
    run.refresh_from_db()
    assert steps_of(run)["publish"].output == "published go"
    assert 0 < run.active_s < 5


def test_a_human_step_with_a_timeout_fails_when_nobody_decides_in_time(acme, alice, monkeypatch):
    from runs import tasks

    wakes = []
    monkeypatch.setattr(tasks, "wake_run_at", lambda run_id, seconds: wakes.append((str(run_id), seconds)))
    document = approval()
    document["nodes"][1]["timeout_s"] = 60
    run = start_run(acme, document)

    assert engine.execute(run.pk) == Run.Status.WAITING
    # The worker asked to be woken at the deadline, and holds nothing meanwhile.
    assert len(wakes) == 1 and wakes[0][0] == str(run.pk) and 55 < wakes[0][1] <= 60
    assert Run.wake_if_due(run.pk) is False  # not yet due: stays waiting
    Step.objects.filter(run=run, node_id="review").update(started_at=F("started_at") - timedelta(seconds=61))

    assert Run.wake_if_due(run.pk) is True
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    review = steps_of(run)["review"]
    assert review.status == Step.Status.FAILED and review.error == "no decision within 60 s"
    assert "no decision within 60 s" in run.error
    with pytest.raises(DecisionError):
        run.decide("review", True, "too late", alice)
    assert_events_consistent(run)


def test_a_decision_in_time_beats_the_timeout(acme, alice, monkeypatch):
    from runs import tasks

    monkeypatch.setattr(tasks, "wake_run_at", lambda run_id, seconds: None)
    document = approval()
    document["nodes"][1]["timeout_s"] = 60
    run = start_run(acme, document)
    engine.execute(run.pk)

    run.decide("review", True, "in time", alice)
    Step.objects.filter(run=run, node_id="review").update(started_at=F("started_at") - timedelta(seconds=61))
    assert Run.wake_if_due(run.pk) is False  # decided: nothing to wake
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["publish"].output == "published in time"
