import pytest

from runs.models import Run, Step

from .helpers import mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def mapped(max_concurrency=2, max_items=100, latency_ms=150):
    return spec(
        [{"id": "each", "type": "map", "items": "inputs.things", "max_concurrency": max_concurrency,
          "max_items": max_items,
          "node": {"type": "llm", "source": "model", "prompt": "Tagline {{ index }} for {{ item }}", "stream": False}}],
        [("start", "each")],
        inputs={"things": {"type": "array", "items": "string", "default": ["a", "b", "c", "d", "e"]}},
        sources={"model": mock_source(latency_ms=latency_ms, responses=[
            {"match": f"for {x}$", "text": f"tag {x}"} for x in "abcde"])},
    )


def test_it_keeps_the_order_of_the_items(acme):
    run = run_to_end(acme, mapped(max_concurrency=5, latency_ms=0))

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["each"].output == ["tag a", "tag b", "tag c", "tag d", "tag e"]
    items = sorted((s for s in steps.values() if s.map_index is not None), key=lambda s: s.map_index)
    assert [s.map_index for s in items] == [0, 1, 2, 3, 4]
    assert all(s.node_id == "each" and s.status == Step.Status.SUCCEEDED for s in items)
    assert items[2].input["prompt"] == "Tagline 2 for c"
    assert len({s.idempotency_key for s in items}) == 5


def test_no_more_items_run_at_once_than_max_concurrency(acme):
    run = run_to_end(acme, mapped(max_concurrency=2))

    assert run.status == Run.Status.SUCCEEDED, run.error
    items = [s for s in steps_of(run).values() if s.map_index is not None]
    moments = sorted({s.started_at for s in items})
    for moment in moments:
        running = [s for s in items if s.started_at <= moment < s.finished_at]
        assert len(running) <= 2
    # ...and it did use both slots.
    assert any(len([s for s in items if s.started_at <= m < s.finished_at]) == 2 for m in moments)


def test_too_many_items_fail_the_step_clearly(acme):
    run = run_to_end(acme, mapped(max_items=3))

    assert run.status == Run.Status.FAILED
    steps = steps_of(run)
    assert steps["each"].status == Step.Status.FAILED
    assert "5 items is more than max_items (3)" in steps["each"].error
    assert "5 items is more than max_items (3)" in run.error
    assert not [s for s in steps.values() if s.map_index is not None]
