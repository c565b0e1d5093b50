import pytest

from runs.models import Run

from .helpers import llm, mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_branches_run_at_the_same_time(acme):
    document = spec(
        [llm("a"), llm("b"), llm("c"),
         {"id": "join", "type": "aggregator", "mode": "dict"}],
        [("start", "a"), ("start", "b"), ("start", "c"), ("a", "join"), ("b", "join"), ("c", "join")],
        sources={"model": mock_source(latency_ms=300)},
        settings={"parallelism": 4},
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    branches = [steps[n] for n in "abc"]
    # Every branch started before any other finished: they overlapped in time.
    assert max(s.started_at for s in branches) < min(s.finished_at for s in branches)
    assert all(s.duration_ms >= 290 for s in branches)
    assert (max(s.finished_at for s in branches) - min(s.started_at for s in branches)).total_seconds() < 0.9
    assert steps["join"].started_at >= max(s.finished_at for s in branches)
    assert set(steps["join"].output) == {"a", "b", "c"}


def test_parallelism_bounds_the_branches_running_at_once(acme):
    document = spec(
        [llm("a"), llm("b"), llm("c")],
        [("start", "a"), ("start", "b"), ("start", "c")],
        sources={"model": mock_source(latency_ms=200)},
        settings={"parallelism": 1},
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.SUCCEEDED, run.error
    ordered = sorted((s for s in steps_of(run).values() if s.node_id != "start"), key=lambda s: s.started_at)
    for earlier, later in zip(ordered, ordered[1:]):
        assert earlier.finished_at <= later.started_at
