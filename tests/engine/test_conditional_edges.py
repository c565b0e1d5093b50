import pytest

from runs.models import Run, RunEvent, Step

from .helpers import assert_events_consistent, mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def transform(node_id, template):
    return {"id": node_id, "type": "transform", "template": template}


def branching(flag):
    return spec(
        [transform("yes", "took yes"), transform("no", "took no"), transform("after_no", "after no"),
         {"id": "join", "type": "aggregator", "mode": "dict"}],
        [("start", "yes", "inputs.flag"), ("start", "no", "not inputs.flag"), ("no", "after_no"),
         ("yes", "join"), ("after_no", "join")],
        inputs={"flag": {"type": "boolean", "default": flag}},
    )


def test_dead_branches_are_skipped_and_the_join_still_runs(acme):
    run = run_to_end(acme, branching(True))

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["yes"].status == Step.Status.SUCCEEDED
    assert steps["no"].status == Step.Status.SKIPPED
    assert steps["after_no"].status == Step.Status.SKIPPED  # dead-path elimination goes on downstream
    assert steps["join"].status == Step.Status.SUCCEEDED
    assert steps["join"].output == {"yes": "took yes"}
    skipped = RunEvent.objects.filter(run=run, type="step.skipped").values_list("data__node", flat=True)
    assert sorted(skipped) == ["after_no", "no"]
    assert_events_consistent(run)


def test_the_other_branch_when_the_flag_is_off(acme):
    run = run_to_end(acme, branching(False))

    steps = steps_of(run)
    assert steps["yes"].status == Step.Status.SKIPPED
    assert steps["after_no"].status == Step.Status.SUCCEEDED
    assert steps["join"].output == {"after_no": "after no"}


def test_a_join_waits_for_every_live_edge(acme):
    document = spec(
        [{"id": "fast", "type": "transform", "template": "fast"},
         {"id": "slow", "type": "llm", "source": "model", "prompt": "slow", "stream": False},
         {"id": "join", "type": "aggregator", "mode": "list", "inputs_from": ["fast", "slow"]}],
        [("start", "fast"), ("start", "slow"), ("fast", "join"), ("slow", "join")],
        sources={"model": mock_source(latency_ms=300, responses=[{"match": "slow", "text": "slow"}])},
    )
    run = run_to_end(acme, document)

    steps = steps_of(run)
    assert steps["join"].started_at >= steps["slow"].finished_at
    assert steps["join"].output == ["fast", "slow"]


def test_a_node_whose_every_edge_is_dead_is_skipped_not_run(acme):
    document = spec(
        [transform("a", "a"), transform("b", "b"), {"id": "join", "type": "aggregator"}],
        [("start", "a", "false"), ("start", "b", "false"), ("a", "join"), ("b", "join")],
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert {n: s.status for n, s in steps_of(run).items()} == {
        "start": "succeeded", "a": "skipped", "b": "skipped", "join": "skipped"}
