import pytest

from runs import engine
from runs.models import DecisionError, Run, Step

from .helpers import assert_events_consistent, linear, llm, mock_source, read_calls, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_retrying_a_failed_run_executes_only_the_failed_step_and_what_follows(acme, alice, call_log):
    document = spec(
        [llm("s1"), llm("s2"), llm("s3")], linear("s1", "s2", "s3"),
        sources={"model": mock_source(call_log=call_log, fail=[
            {"match": "Step s2", "error": "bad gateway", "retryable": False, "times": 1}])},
    )
    run = run_to_end(acme, document)
    assert run.status == Run.Status.FAILED and "bad gateway" in run.error

    run.retry(alice)
    assert run.status == Run.Status.QUEUED and run.error == ""
    engine.execute(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert read_calls(call_log) == {steps["s1"].idempotency_key: 1, steps["s2"].idempotency_key: 2,
                                    steps["s3"].idempotency_key: 1}
    assert steps["s2"].attempt == 2 and steps["s2"].status == Step.Status.SUCCEEDED
    assert steps["s1"].attempt == 1
    assert_events_consistent(run)


def test_a_succeeded_run_cannot_be_retried(acme):
    run = run_to_end(acme, spec([{"id": "a", "type": "transform", "template": "a"}], linear("a")))

    with pytest.raises(DecisionError):
        run.retry()
