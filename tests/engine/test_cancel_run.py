import random
import time

import pytest

from runs import engine
from runs.models import Run, RunEvent, Step

from .helpers import (Driver, assert_events_consistent, linear, llm, mock_source, read_calls, spec, start_run,
                      steps_of, wait_for)

pytestmark = pytest.mark.django_db(transaction=True)


def chain(call_log, latency_ms=500, count=3, **options):
    ids = [f"s{i}" for i in range(1, count + 1)]
    return spec([llm(i) for i in ids], linear(*ids),
                sources={"model": mock_source(latency_ms=latency_ms, call_log=call_log, **options)})


def running(run, node_id):
    return lambda: Step.objects.filter(run=run, node_id=node_id, status=Step.Status.RUNNING).exists()


def test_a_queued_run_is_cancelled_at_once(acme, alice, call_log):
    run = start_run(acme, chain(call_log))

    assert run.request_cancel(alice) == Run.Status.CANCELLED
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.finished_at is not None
    assert engine.execute(run.pk) is None  # its task, delivered later, does nothing
    assert not Step.objects.filter(run=run).exists()
    assert read_calls(call_log) == {}
    assert_events_consistent(run)


def test_a_running_run_stops_its_provider_call_and_starts_no_other(acme, alice, call_log):
    run = start_run(acme, chain(call_log, latency_ms=5000))
    driver = Driver(run.pk)
    driver.start()
    wait_for(lambda: sum(read_calls(call_log).values()) == 2, message="s2 to call the provider")

    assert run.request_cancel(alice) == Run.Status.RUNNING  # the worker finishes the cancel
    cancelled_at = time.monotonic()
    driver.finish()

    assert time.monotonic() - cancelled_at < 3  # the 5 s call was interrupted
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.error == "Cancelled."
    steps = steps_of(run)
    assert steps["s1"].status == Step.Status.SUCCEEDED
    assert steps["s2"].status == Step.Status.CANCELLED and steps["s2"].finished_at is not None
    assert "s3" not in steps
    assert read_calls(call_log) == {steps["s1"].idempotency_key: 1, steps["s2"].idempotency_key: 1}
    terminal = RunEvent.objects.get(run=run, type="run.cancelled")
    assert [s["node"] for s in terminal.data["steps_cancelled"]] == ["s2"]
    assert run.lease_owner == "" and run.lease_expires_at is None
    assert_events_consistent(run)


def test_no_provider_call_starts_once_a_cancel_is_recorded(acme, call_log):
    # Cancel while s1 is in flight, before the engine has noticed: s2 must not be called.
    document = chain(call_log, latency_ms=300, count=2)
    run = start_run(acme, document)
    driver = Driver(run.pk)
    driver.start()
    wait_for(running(run, "s1"), message="s1 to run")
    Run.objects.filter(pk=run.pk).update(cancel_requested_at=Run.objects.get(pk=run.pk).created_at)
    driver.finish()

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert sum(read_calls(call_log).values()) <= 1
    # s2 may have been recorded as started in the turn that saw the cancel, but never ran.
    assert all(step.status == Step.Status.CANCELLED for step in Step.objects.filter(run=run, node_id="s2"))


def test_it_stops_parallel_branches(acme, call_log):
    document = spec(
        [llm("a"), llm("b"), llm("c"), {"id": "join", "type": "aggregator"}],
        [("start", "a"), ("start", "b"), ("start", "c"), ("a", "join"), ("b", "join"), ("c", "join")],
        sources={"model": mock_source(latency_ms=5000, call_log=call_log)},
    )
    run = start_run(acme, document)
    driver = Driver(run.pk)
    driver.start()
    wait_for(lambda: sum(read_calls(call_log).values()) == 3, message="three branches to call the provider")
    started = time.monotonic()
    run.request_cancel()
    driver.finish()

    assert time.monotonic() - started < 3
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    steps = steps_of(run)
    assert {steps[n].status for n in "abc"} == {Step.Status.CANCELLED}
    assert "join" not in steps
    assert sum(read_calls(call_log).values()) == 3
    assert_events_consistent(run)


def test_it_stops_a_streamed_call(acme, call_log):
    document = spec(
        [{"id": "talk", "type": "llm", "source": "model", "prompt": "talk", "stream": True}], linear("talk"),
        sources={"model": mock_source(tokens_per_second=5, call_log=call_log,
                                      responses=[{"match": "talk", "text": "word " * 50}])},
    )
    run = start_run(acme, document)
    driver = Driver(run.pk)
    driver.start()
    wait_for(lambda: read_calls(call_log), message="the stream to start")
    time.sleep(0.3)
    started = time.monotonic()
    run.request_cancel()
    driver.finish()

    assert time.monotonic() - started < 3  # the stream had about 10 s to go
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    talk = steps_of(run)["talk"]
    assert talk.status == Step.Status.CANCELLED and talk.output is None


def test_a_waiting_run_is_cancelled_at_once(acme, alice):
    document = spec([{"id": "review", "type": "human"}, {"id": "after", "type": "transform", "template": "x"}],
                    linear("review", "after"))
    run = start_run(acme, document)
    engine.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING

    assert run.request_cancel(alice) == Run.Status.CANCELLED
    run.refresh_from_db()
    assert steps_of(run)["review"].status == Step.Status.CANCELLED
    assert engine.execute(run.pk) is None
    terminal = RunEvent.objects.get(run=run, type="run.cancelled")
    assert [s["node"] for s in terminal.data["steps_cancelled"]] == ["review"]
    assert_events_consistent(run)


def test_cancel_and_completion_racing_end_in_exactly_one_terminal_state(acme, call_log):
    # The cancel lands at a random moment of a run lasting about 40 ms, or just after it.
    document = chain(call_log, latency_ms=20, count=2)
    seen = set()
    for _ in range(20):
        run = start_run(acme, document)
        driver = Driver(run.pk)
        driver.start()
        time.sleep(random.uniform(0, 0.05))
        status = run.request_cancel()
        driver.finish()

        run.refresh_from_db()
        assert run.status in (Run.Status.SUCCEEDED, Run.Status.CANCELLED)
        assert status in (Run.Status.SUCCEEDED, Run.Status.CANCELLED, Run.Status.RUNNING)
        assert run.lease_owner == ""
        assert not Step.objects.filter(run=run, status__in=(Step.Status.RUNNING, Step.Status.PENDING)).exists()
        assert_events_consistent(run)
        seen.add(run.status)
    assert Run.Status.CANCELLED in seen
