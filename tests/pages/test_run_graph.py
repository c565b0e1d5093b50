"""How the run page draws a workflow: layers by longest path, every edge pointing right,
parallel nodes one above the other, each node's status from its step; and the timeline,
where parallel steps overlap on one time axis."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from runs.graph import NODE_H, NODE_W, layout, timeline
from workflows.management.commands.load_catalog import catalog_entries
from workflows.spec import WorkflowSpec


def spec_of(slug):
    return WorkflowSpec.model_validate(next(e for e in catalog_entries() if e["slug"] == slug)["spec"])


def step(node_id, status, started=None, finished=None, map_index=None, pk=1):
    return SimpleNamespace(pk=pk, node_id=node_id, status=status, started_at=started, finished_at=finished,
                           map_index=map_index)


def test_it_layers_nodes_by_longest_path_left_to_right():
    graph = layout(spec_of("learn-a-topic"))
    layers = {node.id: node.layer for node in graph.nodes}
    assert layers == {"start": 0, "explain": 1, "quiz": 2, "key_terms": 2, "notes": 3, "page": 4}
    nodes = {node.id: node for node in graph.nodes}
    # Parallel branches share a column, one above the other, without overlapping.
    assert nodes["quiz"].x == nodes["key_terms"].x
    assert abs(nodes["quiz"].y - nodes["key_terms"].y) >= NODE_H
    # Every edge leaves a node's right side for a node further right.
    for edge in graph.edges:
        assert nodes[edge.source].x + NODE_W < nodes[edge.target].x
        assert edge.path.startswith(f"M{nodes[edge.source].x + NODE_W},")
    assert graph.width >= max(n.x for n in graph.nodes) + NODE_W and graph.height >= max(n.y for n in graph.nodes) + NODE_H
    assert graph.describe() == "Layer 1: start. Layer 2: explain. Layer 3: quiz, key_terms. Layer 4: notes. Layer 5: page."


def test_a_join_waits_for_its_deepest_branch():
    spec = WorkflowSpec.model_validate({
        "version": 1, "name": "Join",
        "nodes": [{"id": "start", "type": "input"}, {"id": "a", "type": "transform", "template": "a"},
                  {"id": "b", "type": "transform", "template": "b"}, {"id": "join", "type": "aggregator"}],
        "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "join"},
                  {"from": "start", "to": "join"}],
    })
    assert {node.id: node.layer for node in layout(spec).nodes} == {"start": 0, "a": 1, "b": 2, "join": 3}


def test_a_cycle_does_not_break_the_drawing():
    # Saved specs are acyclic; the page still draws one that is not rather than failing.
    spec = WorkflowSpec.model_validate({
        "version": 1, "name": "Loop",
        "nodes": [{"id": "start", "type": "input"}, {"id": "a", "type": "transform", "template": "a"},
                  {"id": "b", "type": "transform", "template": "b"}],
        "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
    })
    graph = layout(spec)
    assert len(graph.nodes) == 3 and graph.layers == 2


def test_nodes_take_their_steps_status_and_edges_show_the_path_taken():
    steps = [step("start", "succeeded", pk=1), step("classify", "succeeded", pk=2),
             step("draft_reply", "succeeded", pk=3), step("approve", "waiting", pk=4),
             step("bug_report", "skipped", pk=5), step("escalate", "skipped", pk=6)]
    graph = layout(spec_of("ticket-triage"), steps)
    status = {node.id: node.status for node in graph.nodes}
    assert status == {"start": "succeeded", "classify": "succeeded", "draft_reply": "succeeded", "approve": "waiting",
                      "bug_report": "skipped", "escalate": "skipped", "send_reply": "", "hold_reply": ""}
    edges = {(edge.source, edge.target): edge for edge in graph.edges}
    assert edges[("classify", "draft_reply")].state == "taken"
    assert edges[("classify", "bug_report")].state == "dead"
    assert edges[("approve", "send_reply")].state == "" and edges[("approve", "send_reply")].when
    assert next(node for node in graph.nodes if node.id == "approve").step is steps[3]


def test_a_map_node_counts_its_items():
    steps = [step("taglines", "running", pk=10)] + [
        step("taglines", status, map_index=index, pk=11 + index)
        for index, status in enumerate(["succeeded", "succeeded", "running", "pending"])]
    node = next(n for n in layout(spec_of("map-over-items"), steps).nodes if n.id == "taglines")
    assert (node.status, node.items_done, node.items_total) == ("running", 2, 4)


def test_the_timeline_puts_parallel_steps_side_by_side_on_one_axis():
    t0 = timezone.now() - timedelta(seconds=10)
    run = SimpleNamespace(started_at=t0, finished_at=None)
    steps = [step("start", "succeeded", t0, t0 + timedelta(seconds=1)),
             step("quiz", "succeeded", t0 + timedelta(seconds=1), t0 + timedelta(seconds=5)),
             step("key_terms", "running", t0 + timedelta(seconds=1)),
             step("notes", "pending")]
    now = t0 + timedelta(seconds=8)
    line = timeline(run, steps, now)
    assert [bar.step.node_id for bar in line.bars] == ["start", "quiz", "key_terms"]  # never started: no bar
    start, quiz, key_terms = line.bars
    assert line.span_s == pytest.approx(8)
    assert (start.left, start.width) == (0, 12.5)
    assert (quiz.left, quiz.width) == (12.5, 50)
    assert (key_terms.left, key_terms.width, key_terms.open) == (12.5, 87.5, True)  # still running: ends now
    assert [at for _, at in line.ticks] == [0, 2, 4, 6, 8]
    assert timeline(run, [step("start", "pending")], now).bars == []
