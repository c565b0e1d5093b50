import pytest

from runs.models import Run, RunEvent, Step

from .helpers import assert_events_consistent, mock_source, read_calls, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)

RETRY = {"max_attempts": 3, "backoff_s": 0, "jitter": False}


def flaky(call_log, retryable, retry=RETRY):
    node = {"id": "call", "type": "llm", "source": "model", "prompt": "flaky call", "stream": False}
    if retry:
        node["retry"] = retry
    return spec(
        [node], [("start", "call")],
        # No retries inside the call: these tests are about the node's own retry policy.
        sources={"model": mock_source(call_log=call_log, max_retries=0, responses=[{"match": "flaky", "text": "finally"}],
                                      fail=[{"match": "flaky", "error": "overloaded", "retryable": retryable, "times": 2}])},
    )


def test_a_retryable_failure_is_tried_again_until_it_succeeds(acme, call_log):
    run = run_to_end(acme, flaky(call_log, retryable=True))

    assert run.status == Run.Status.SUCCEEDED, run.error
    step = steps_of(run)["call"]
    assert step.status == Step.Status.SUCCEEDED
    assert step.attempt == 3
    assert step.output == "finally"
    assert read_calls(call_log) == {step.idempotency_key: 3}
    retrying = RunEvent.objects.filter(run=run, type="step.retrying").order_by("seq")
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert all("overloaded" in e.data["error"] for e in retrying)
    assert_events_consistent(run)


def test_a_permanent_failure_is_not_retried(acme, call_log):
    run = run_to_end(acme, flaky(call_log, retryable=False))

    assert run.status == Run.Status.FAILED
    step = steps_of(run)["call"]
    assert step.status == Step.Status.FAILED and step.attempt == 1
    assert "overloaded" in step.error and "overloaded" in run.error
    assert sum(read_calls(call_log).values()) == 1
    assert not RunEvent.objects.filter(run=run, type="step.retrying").exists()


def test_without_a_retry_policy_one_failure_fails_the_step(acme, call_log):
    run = run_to_end(acme, flaky(call_log, retryable=True, retry=None))

    assert run.status == Run.Status.FAILED
    assert sum(read_calls(call_log).values()) == 1


def test_it_gives_up_after_max_attempts(acme, call_log):
    run = run_to_end(acme, flaky(call_log, retryable=True, retry={**RETRY, "max_attempts": 2}))

    assert run.status == Run.Status.FAILED
    step = steps_of(run)["call"]
    assert step.attempt == 2 and "overloaded" in step.error
    assert sum(read_calls(call_log).values()) == 2
