import pytest

from runs import engine
from runs.models import Run, Step

from .helpers import assert_events_consistent, linear, llm, mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def document():
    return spec(
        [
            llm("outline", "Outline {{ inputs.topic }}"),
            llm("draft", "Draft from: {{ nodes.outline.output }}"),
            {"id": "final", "type": "output", "value": "# {{ inputs.topic }}\n\n{{ nodes.draft.output }}"},
        ],
        linear("outline", "draft", "final"),
        inputs={"topic": {"type": "string", "default": "tides"}},
        sources={"model": mock_source(responses=[{"match": "^Outline", "text": "1. Moon 2. Sun"},
                                                 {"match": "^Draft", "text": "The moon pulls."}])},
        outputs={"article": "{{ nodes.final.output }}"},
    )


def test_it_runs_nodes_in_order_and_passes_outputs_along(acme):
    run = run_to_end(acme, document())

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert [s.node_id for s in sorted(steps.values(), key=lambda s: s.started_at)] == [
        "start", "outline", "draft", "final"]
    for earlier, later in [("start", "outline"), ("outline", "draft"), ("draft", "final")]:
        assert steps[earlier].finished_at <= steps[later].started_at
    assert steps["outline"].output == "1. Moon 2. Sun"
    assert steps["draft"].input["prompt"] == "Draft from: 1. Moon 2. Sun"
    assert run.outputs == {"article": "# tides\n\nThe moon pulls."}
    assert all(s.status == Step.Status.SUCCEEDED and s.attempt == 1 for s in steps.values())
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.lease_owner == "" and run.lease_expires_at is None


def test_running_it_again_does_nothing(acme):
    run = run_to_end(acme, document())
    seq = run.last_seq

    assert engine.execute(run.pk) is None
    run.refresh_from_db()
    assert run.last_seq == seq
    assert_events_consistent(run)
