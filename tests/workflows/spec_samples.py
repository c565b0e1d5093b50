"""Small workflow documents the spec tests start from and then break on purpose."""
import copy

MOCK_SOURCE = {"kind": "llm", "provider": "mock", "model": "mock-1", "options": {"latency_ms": 0}}


def linear_spec() -> dict:
    """start → outline → draft → done, one input, one mock source; valid as is."""
    return copy.deepcopy({
        "version": 1,
        "name": "Linear",
        "inputs": {"topic": {"type": "string", "required": True}},
        "sources": {"writer": MOCK_SOURCE},
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "outline", "type": "llm", "source": "writer", "prompt": "Outline {{ inputs.topic }}"},
            {"id": "draft", "type": "llm", "source": "writer",
             "prompt": "Draft from {{ nodes.outline.output }}"},
            {"id": "done", "type": "output", "value": "{{ nodes.draft.output }}"},
        ],
        "edges": [
            {"from": "start", "to": "outline"},
            {"from": "outline", "to": "draft"},
            {"from": "draft", "to": "done"},
        ],
        "outputs": {"text": "{{ nodes.done.output }}"},
    })


def node_index(spec: dict, node_id: str) -> int:
    return next(i for i, node in enumerate(spec["nodes"]) if node["id"] == node_id)


def codes_at(report) -> set[tuple[str, str]]:
    """{(path, code)} of a report's errors."""
    return {(error.path, error.code) for error in report.errors}
