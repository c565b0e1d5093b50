"""The catalog of example workflows, the JSON Schema, and the spec's helpers."""
import json
import re
from pathlib import Path

import pytest

from workflows import templating
from workflows.nodes import NODE_TYPES
from workflows.spec import WorkflowSpec, spec_hash, validate_spec

from .spec_samples import linear_spec

CATALOG = sorted((Path(__file__).parents[2] / "workflows" / "catalog").glob("*.json"))


def test_the_catalog_has_six_workflows():
    assert [path.stem for path in CATALOG] == [
        "document-pipeline", "intent-router", "learn-a-topic", "map-over-items", "three-reviewers",
        "ticket-triage",
    ]


@pytest.mark.parametrize("path", CATALOG, ids=lambda path: path.stem)
def test_every_catalog_workflow_validates(path):
    entry = json.loads(path.read_text())

    report = validate_spec(json.dumps(entry["spec"]))

    assert report.errors == []
    assert entry["slug"] == path.stem
    assert {"title", "description", "category", "persona"} <= set(entry)
    for source in report.spec.sources.values():
        assert source.provider == "mock"
        for response in source.options["responses"]:
            re.compile(response["match"])


def test_the_intent_router_rules_pick_the_image_branch_for_drawing_requests():
    spec = validate_spec(json.loads((CATALOG[1]).read_text())["spec"]).spec
    [image_route] = [route for route in spec.node("classify").routes if route.name == "image"]

    def wants_image(request):
        return templating.evaluate(image_route.when, {"inputs": {"request": request}})

    assert wants_image("Please DRAW a cat")
    assert wants_image("I need an illustration of a lighthouse")
    assert not wants_image("What is the capital of Peru?")


def test_the_json_schema_lists_every_node_type():
    schema = WorkflowSpec.json_schema()

    assert schema["$id"] and schema["title"]
    json.dumps(schema)
    mapping = schema["properties"]["nodes"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(NODE_TYPES)
    assert "from" in schema["$defs"]["Edge"]["properties"]
    assert schema["$defs"]["LlmNode"]["additionalProperties"] is False


def test_the_spec_helpers_walk_the_graph():
    spec = validate_spec(json.loads(CATALOG[2].read_text())["spec"]).spec  # learn-a-topic

    assert spec.start_node().id == "start"
    assert spec.successors("explain") == ["quiz", "key_terms"]
    assert spec.predecessors("notes") == ["quiz", "key_terms"]
    assert [edge.to for edge in spec.outgoing("explain")] == ["quiz", "key_terms"]
    assert spec.node("notes").mode == "template"
    with pytest.raises(KeyError):
        spec.node("missing")


def test_to_json_round_trips_with_json_field_names():
    spec = validate_spec(linear_spec()).spec

    data = spec.to_json()

    assert data["edges"][0] == {"from": "start", "to": "outline"}
    assert "retry" not in data["nodes"][1]
    assert validate_spec(data).spec == spec
    assert spec_hash(data) == spec_hash(spec)


def test_the_hash_ignores_key_order_and_whitespace():
    spec = linear_spec()
    reordered = json.loads(json.dumps(spec, sort_keys=True, indent=4))

    assert spec_hash(spec) == spec_hash(reordered)
    assert len(spec_hash(spec)) == 64
    reordered["name"] = "Other"
    assert spec_hash(spec) != spec_hash(reordered)
