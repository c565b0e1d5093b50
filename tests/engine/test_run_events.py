import pytest

from runs.models import RunEvent

from .helpers import assert_events_consistent, event_types, linear, llm, mock_source, run_to_end, spec

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_state_change_is_an_event_in_order(acme):
    document = spec(
        [llm("a"), {"id": "b", "type": "transform", "template": "b"},
         {"id": "c", "type": "transform", "template": "c"}],
        [*linear("a", "b"), ("a", "c", "false")],
        sources={"model": mock_source()},
    )
    run = run_to_end(acme, document)

    assert event_types(run) == [
        "run.queued", "run.started",
        "step.started", "step.succeeded",  # start
        "step.started", "step.succeeded",  # a
        "step.started", "step.succeeded", "step.skipped",  # b (computed at once), then c is skipped
        "log",  # artifacts saved
        "run.succeeded",
    ]
    events = assert_events_consistent(run)
    started = [e for e in events if e.type == "step.started"]
    assert [e.data["node"] for e in started] == ["start", "a", "b"]
    a_done = RunEvent.objects.get(run=run, type="step.succeeded", data__node="a")
    assert a_done.data["output"].startswith("[mock mock-1]")
    assert a_done.data["input_tokens"] > 0
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)


def test_a_large_output_travels_in_the_event_as_a_preview(acme):
    document = spec([{"id": "big", "type": "transform", "template": "{{ 'x' * 40000 }}"}], linear("big"))
    run = run_to_end(acme, document)

    event = RunEvent.objects.get(run=run, type="step.succeeded", data__node="big")
    assert event.data["truncated"] is True and len(event.data["output_preview"]) < 40000
    assert len(run.steps.get(node_id="big").output) == 40000
