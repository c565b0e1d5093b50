"""Small specs for the engine tests, a way to start and drive a run, and checks on events."""
import threading
import time
from pathlib import Path

from runs import engine
from runs.models import Run, RunEvent, Step
from workflows.models import Workflow

EVENT_TYPES = {
    "run.queued", "run.started", "run.waiting", "run.succeeded", "run.failed", "run.cancelled",
    "step.started", "step.succeeded", "step.failed", "step.skipped", "step.waiting", "step.retrying", "log",
}
TERMINAL_EVENTS = {"run.succeeded", "run.failed", "run.cancelled"}


def mock_source(**options):
    return {"kind": "llm", "provider": "mock", "model": "mock-1", "options": options}


def spec(nodes, edges=(), *, sources=None, inputs=None, outputs=None, settings=None):
    """A version-1 spec whose first node is the input node `start`; edges are
    (from, to) or (from, to, when) tuples."""
    document = {
        "version": 1,
        "name": "Engine test",
        "inputs": inputs or {},
        "sources": sources or {},
        "nodes": [{"id": "start", "type": "input"}, *nodes],
        "edges": [dict(zip(("from", "to", "when"), edge)) for edge in edges],
    }
    if outputs is not None:
        document["outputs"] = outputs
    if settings is not None:
        document["settings"] = settings
    return document


def linear(*node_ids):
    """Edges start -> a -> b -> ..."""
    chain = ["start", *node_ids]
    return [(a, b) for a, b in zip(chain, chain[1:])]


def llm(node_id, prompt=None, source="model", **fields):
    return {"id": node_id, "type": "llm", "source": source, "prompt": prompt or f"Step {node_id}",
            "stream": False, **fields}


def start_run(org, document, inputs=None, *, mode=Run.Mode.FULL):
    workflow = Workflow.create_with_spec(org, document)
    version = workflow.publish()
    clean, problems = version.typed_spec().check_inputs(inputs or {})
    assert not problems, problems
    return Run.start(workflow, version, clean, mode=mode)


def run_to_end(org, document, inputs=None, **kwargs):
    run = start_run(org, document, inputs, **kwargs)
    engine.execute(run.pk)
    run.refresh_from_db()
    return run


def steps_of(run):
    return {(s.node_id, s.map_index) if s.map_index is not None else s.node_id: s
            for s in Step.objects.filter(run=run)}


def event_types(run):
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))


def assert_events_consistent(run):
    """seq runs 1, 2, 3... without gaps, every type is known, and a finished run has
    exactly one terminal event, its last, matching its status. Returns the events."""
    run.refresh_from_db()
    events = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert run.last_seq == len(events)
    assert {e.type for e in events} <= EVENT_TYPES, {e.type for e in events} - EVENT_TYPES
    # A retried run is queued again: each attempt ends with at most one terminal event, its last.
    attempts = []
    for event in events:
        if event.type == "run.queued":
            attempts.append([])
        attempts[-1].append(event)
    for attempt in attempts[:-1]:
        assert attempt[-1].type in TERMINAL_EVENTS
    terminal = [e for e in attempts[-1] if e.type in TERMINAL_EVENTS]
    if run.is_terminal:
        assert [e.type for e in terminal] == [f"run.{run.status}"]
        assert attempts[-1][-1].type == f"run.{run.status}"
    else:
        assert terminal == []
    return events


def read_calls(path):
    """{idempotency key: number of provider calls} from a mock call_log file."""
    counts = {}
    path = Path(path)
    if path.exists():
        for line in path.read_text().split():
            counts[line] = counts.get(line, 0) + 1
    return counts


def wait_for(predicate, timeout=30, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


class Driver(threading.Thread):
    """Drives a run with engine.execute in a thread, so the test can act while it runs."""

    def __init__(self, run_id):
        super().__init__(daemon=True)
        self.run_id = run_id
        self.result = self.error = None

    def run(self):
        from django.db import connection

        try:
            self.result = engine.execute(self.run_id)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            connection.close()

    def finish(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), f"the engine did not stop within {timeout} s"
        if self.error:
            raise self.error
        return self.result
