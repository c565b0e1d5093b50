import pytest

from runs.models import Run, Step

from .helpers import mock_source, read_calls, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def slow(call_log, **node):
    return spec(
        [{"id": "slow", "type": "llm", "source": "model", "prompt": "slow", "stream": False, "timeout_s": 0.3, **node},
         {"id": "after", "type": "transform", "template": "after"}],
        [("start", "slow"), ("slow", "after")],
        sources={"model": mock_source(latency_ms=2000, call_log=call_log)},
    )


def test_a_node_over_its_timeout_fails_clearly(acme, call_log):
    run = run_to_end(acme, slow(call_log))

    assert run.status == Run.Status.FAILED
    steps = steps_of(run)
    assert steps["slow"].status == Step.Status.FAILED
    assert "timed out" in steps["slow"].error and "0.3" in steps["slow"].error
    assert "timed out" in run.error
    assert steps["slow"].duration_ms < 1500
    assert "after" not in steps


def test_a_timed_out_node_is_retried_by_its_policy(acme, call_log):
    run = run_to_end(acme, slow(call_log, retry={"max_attempts": 2, "backoff_s": 0, "jitter": False}))

    assert run.status == Run.Status.FAILED
    step = steps_of(run)["slow"]
    assert step.attempt == 2 and "timed out" in step.error
    assert sum(read_calls(call_log).values()) == 2
