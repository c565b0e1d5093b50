from decimal import Decimal

import pytest

from runs.models import Run, RunEvent, Step

from .helpers import assert_events_consistent, linear, llm, mock_source, read_calls, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def chain(count, call_log, settings=None, **options):
    ids = [f"s{i}" for i in range(1, count + 1)]
    return spec([llm(i, max_tokens=2) for i in ids], linear(*ids),
                sources={"model": mock_source(call_log=call_log, **options)}, settings=settings)


def test_a_run_over_its_timeout_fails_and_stops_its_step(acme, call_log):
    document = chain(3, call_log, {"timeout_s": 0.5}, latency_ms=400)
    run = run_to_end(acme, document)

    assert run.status == Run.Status.FAILED
    assert "timed out after 0.5 s" in run.error
    steps = steps_of(run)
    assert steps["s1"].status == Step.Status.SUCCEEDED
    assert steps["s2"].status == Step.Status.CANCELLED
    terminal = RunEvent.objects.get(run=run, type="run.failed")
    assert [s["node"] for s in terminal.data["steps_cancelled"]] == ["s2"]
    assert "s3" not in steps
    assert (run.finished_at - run.started_at).total_seconds() < 2
    assert_events_consistent(run)


def test_max_steps_stops_the_run_before_the_next_step(acme, call_log):
    run = run_to_end(acme, chain(5, call_log, {"max_steps": 3}))

    assert run.status == Run.Status.FAILED
    assert "limit of 3 steps" in run.error and "s3" in run.error
    assert sorted(steps_of(run)) == ["s1", "s2", "start"]
    assert sum(read_calls(call_log).values()) == 2


def test_max_cost_stops_the_run_before_the_call_that_would_exceed_it(acme, call_log):
    # $1 a token. A call costs its prompt ("Step sN", 1 token) and its answer ("okay", 1 token):
    # $2. Before calling, the engine estimates the prompt at 2 tokens and the answer at
    # max_tokens (2): $4. So s1 (0 + 4) and s2 (2 + 4) fit under $7, and s3 (4 + 4) does not.
    document = chain(4, call_log, {"max_cost_usd": 7}, pricing={"input": 1_000_000, "output": 1_000_000},
                     responses=[{"match": "Step", "text": "okay"}])
    run = run_to_end(acme, document)

    assert run.status == Run.Status.FAILED
    steps = steps_of(run)
    assert steps["s1"].cost_usd == Decimal(2) and steps["s2"].cost_usd == Decimal(2)
    assert run.cost_usd == Decimal(4)
    assert steps["s3"].status == Step.Status.FAILED
    assert "cost limit of $7" in steps["s3"].error and "cost limit" in run.error
    # The step that would have gone over never reached the provider.
    calls = read_calls(call_log)
    assert steps["s3"].idempotency_key not in calls
    assert sum(calls.values()) == 2
    assert "s4" not in steps


def test_max_cost_holds_for_branches_running_in_parallel(acme, call_log):
    document = spec(
        [llm("a", max_tokens=2), llm("b", max_tokens=2), llm("c", max_tokens=2)],
        [("start", "a"), ("start", "b"), ("start", "c")],
        sources={"model": mock_source(call_log=call_log, latency_ms=200, responses=[{"match": "Step", "text": "okay"}],
                                      pricing={"input": 1_000_000, "output": 1_000_000})},
        settings={"max_cost_usd": 9},
    )
    run = run_to_end(acme, document)

    # Each call is estimated at $4 while in flight: two fit under $9 together, a third does
    # not, and never reaches the provider. Its failure then stops the other two, which may
    # or may not have reached the provider yet.
    assert run.status == Run.Status.FAILED
    assert "cost limit of $9" in run.error
    assert run.cost_usd <= Decimal(9)
    assert sum(read_calls(call_log).values()) <= 2


def test_test_mode_caps_the_tokens_of_a_run(acme, call_log, settings):
    settings.TEST_MODE_MAX_TOKENS = 10
    document = chain(5, call_log, responses=[{"match": "Step", "text": "a fairly long answer here"}])
    run = run_to_end(acme, document, mode=Run.Mode.TEST)

    assert run.status == Run.Status.FAILED
    assert "token limit (10)" in run.error
    assert run.mode == Run.Mode.TEST
    assert 0 < sum(read_calls(call_log).values()) < 5


def test_test_mode_caps_the_time_of_a_run(acme, call_log, settings):
    settings.TEST_MODE_MAX_SECONDS = 0.5
    run = run_to_end(acme, chain(3, call_log, latency_ms=400), mode=Run.Mode.TEST)

    assert run.status == Run.Status.FAILED
    assert "timed out" in run.error


def test_full_mode_is_not_capped_by_test_limits(acme, call_log, settings):
    settings.TEST_MODE_MAX_TOKENS = 10
    document = chain(3, call_log, responses=[{"match": "Step", "text": "a fairly long answer here"}])
    run = run_to_end(acme, document)

    assert run.status == Run.Status.SUCCEEDED, run.error
