"""validate_spec: structure, graph rules, references and inline secrets, all reported at once."""
import json

from workflows.spec import Report, WorkflowSpec, validate_spec

from .spec_samples import codes_at, linear_spec, node_index


def test_it_accepts_a_valid_spec():
    report = validate_spec(json.dumps(linear_spec()).encode())

    assert report.valid
    assert report.errors == []
    assert isinstance(report.spec, WorkflowSpec)
    assert report.spec.node("draft").prompt == "Draft from {{ nodes.outline.output }}"
    assert report.as_dict() == {"valid": True, "errors": []}


def test_it_reports_every_error_at_once():
    spec = linear_spec()
    spec["nodes"][1]["temprature"] = 0.2  # typo: unknown field
    spec["nodes"][2]["source"] = "ghost"  # unknown source
    spec["nodes"].append({"id": "draft", "type": "output", "value": "x"})  # duplicate id
    spec["edges"].append({"from": "done", "to": "nowhere"})  # edge to a missing node
    spec["edges"].append({"from": "draft", "to": "outline"})  # closes a cycle
    spec["outputs"]["broken"] = "{{ nodes.done.output "  # template syntax
    spec["settings"] = {"parallelism": "4"}  # a string, not an int

    report = validate_spec(spec)

    assert not report.valid and report.spec is None
    found = codes_at(report)
    assert ("$.nodes[1].temprature", "schema.extra_forbidden") in found
    assert ("$.nodes[2].source", "reference.unknown_source") in found
    assert ("$.nodes[4].id", "graph.duplicate_id") in found
    assert ("$.edges[3].to", "graph.unknown_node") in found
    assert ("$.outputs.broken", "template.syntax") in found
    assert ("$.settings.parallelism", "schema.int_type") in found
    assert "graph.cycle" in {code for _, code in found}
    for error in report.errors:
        assert set(error.as_dict()) == {"path", "code", "message"}


def test_it_rejects_unknown_fields():
    spec = linear_spec()
    spec["colour"] = "blue"
    spec["sources"]["writer"]["modle"] = "x"
    spec["edges"][0]["if"] = "true"

    found = codes_at(validate_spec(spec))

    assert found == {
        ("$.colour", "schema.extra_forbidden"),
        ("$.sources.writer.modle", "schema.extra_forbidden"),
        ("$.edges[0].if", "schema.extra_forbidden"),
    }


def test_it_reports_missing_fields_without_the_union_tag_in_the_path():
    spec = linear_spec()
    del spec["nodes"][1]["prompt"]

    report = validate_spec(spec)

    assert codes_at(report) == {("$.nodes[1].prompt", "schema.missing")}


def test_it_does_not_coerce_types():
    spec = linear_spec()
    spec["version"] = "1"
    spec["nodes"][1]["stream"] = "yes"
    spec["nodes"][1]["max_tokens"] = 10.5

    found = codes_at(validate_spec(spec))

    assert ("$.version", "schema.literal_error") in found
    assert ("$.nodes[1].stream", "schema.bool_type") in found
    assert ("$.nodes[1].max_tokens", "schema.int_type") in found


def test_it_rejects_unknown_node_type():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "webhook", "url": "x"}

    report = validate_spec(spec)

    [error] = report.errors
    assert (error.path, error.code) == ("$.nodes[2].type", "node.unknown_type")
    assert "'webhook'" in error.message and "llm" in error.message and "map" in error.message


def test_it_reports_a_node_without_type():
    spec = linear_spec()
    del spec["nodes"][2]["type"]

    assert codes_at(validate_spec(spec)) == {("$.nodes[2].type", "schema.missing")}


def test_it_checks_map_inline_nodes_with_their_own_types():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "map", "items": "inputs.topic.split()",
                        "node": {"type": "human"}}

    [error] = validate_spec(spec).errors

    assert (error.path, error.code) == ("$.nodes[2].node.type", "node.unknown_type")
    assert "condition, llm, router, transform" in error.message


def test_it_accepts_a_map_inline_node_without_id():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "map", "items": "inputs.topic.split()", "max_concurrency": 2,
                        "node": {"type": "llm", "source": "writer", "prompt": "{{ index }}: {{ item }}"}}

    report = validate_spec(spec)

    assert report.valid, report.errors
    assert report.spec.node("draft").node.id is None


def test_it_finds_cycles():
    spec = linear_spec()
    spec["nodes"].insert(3, {"id": "review", "type": "llm", "source": "writer", "prompt": "Review"})
    spec["edges"] += [{"from": "draft", "to": "review"}, {"from": "review", "to": "outline"}]

    report = validate_spec(spec)

    [error] = [e for e in report.errors if e.code == "graph.cycle"]
    assert error.path == "$.nodes[1]"
    assert "outline → draft → review → outline" in error.message


def test_it_finds_unreachable_nodes():
    spec = linear_spec()
    spec["nodes"].append({"id": "orphan", "type": "transform", "template": "hi"})

    assert codes_at(validate_spec(spec)) == {("$.nodes[4]", "graph.unreachable")}


def test_it_requires_exactly_one_start():
    two_starts = linear_spec()
    two_starts["nodes"].append({"id": "again", "type": "input"})
    two_starts["edges"].append({"from": "again", "to": "draft"})
    no_start = linear_spec()
    no_start["nodes"][0] = {"id": "start", "type": "transform", "template": "hi"}

    assert codes_at(validate_spec(two_starts)) == {("$.nodes[4].type", "graph.start")}
    assert ("$.nodes", "graph.start") in codes_at(validate_spec(no_start))


def test_it_refuses_edges_into_the_start():
    spec = linear_spec()
    spec["edges"].append({"from": "draft", "to": "start"})

    found = codes_at(validate_spec(spec))

    assert ("$.edges[3].to", "graph.start") in found


def test_it_reports_self_loops_and_duplicate_edges():
    spec = linear_spec()
    spec["edges"] += [{"from": "draft", "to": "draft"}, {"from": "outline", "to": "draft", "when": "true"}]

    assert codes_at(validate_spec(spec)) == {
        ("$.edges[3]", "graph.self_loop"),
        ("$.edges[4]", "graph.duplicate_edge"),
    }


def test_it_checks_the_graph_even_when_nodes_are_malformed():
    spec = linear_spec()
    spec["nodes"][1]["prompt"] = 42
    spec["nodes"].append({"id": "outline", "type": "nonsense"})
    spec["edges"].append({"from": "draft", "to": "ghost"})

    found = codes_at(validate_spec(spec))

    assert ("$.nodes[1].prompt", "schema.string_type") in found
    assert ("$.nodes[4].type", "node.unknown_type") in found
    assert ("$.nodes[4].id", "graph.duplicate_id") in found
    assert ("$.edges[3].to", "graph.unknown_node") in found


def test_it_checks_names_of_inputs_and_sources():
    spec = linear_spec()
    spec["inputs"]["Topic Name"] = {"type": "string"}
    spec["sources"]["Writer!"] = spec["sources"]["writer"]

    assert codes_at(validate_spec(spec)) == {
        ('$.inputs["Topic Name"]', "name.invalid"),
        ('$.sources["Writer!"]', "name.invalid"),
    }


def test_it_checks_input_defaults():
    spec = linear_spec()
    spec["inputs"] = {
        "topic": {"type": "string", "default": 3},
        "count": {"type": "integer", "default": True},
        "level": {"type": "string", "enum": ["a", "b"], "default": "c"},
        "size": {"type": "number", "min": 1, "max": 5, "default": 9},
        "tags": {"type": "array", "items": "string", "default": ["x", 1]},
        "name": {"type": "string", "items": "string"},
        "ok": {"type": "number", "default": 2},
    }

    assert codes_at(validate_spec(spec)) == {
        ("$.inputs.topic.default", "input.default_type"),
        ("$.inputs.count.default", "input.default_type"),
        ("$.inputs.level.default", "input.default_enum"),
        ("$.inputs.size.default", "input.default_range"),
        ("$.inputs.tags.default", "input.default_type"),
        ("$.inputs.name.items", "input.items"),
    }


def test_it_checks_router_rules():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "router", "mode": "llm",
                        "routes": [{"name": "a"}, {"name": "b"}], "default": "c"}
    report = validate_spec(spec)
    assert codes_at(report) == {("$.nodes[2].default", "reference.unknown_route")}

    spec["nodes"][2]["default"] = "a"
    assert codes_at(validate_spec(spec)) == {("$.nodes[2].source", "router.source_required")}

    spec["nodes"][2]["source"] = "writer"
    assert validate_spec(spec).valid


def test_it_names_unknown_providers_and_missing_models():
    spec = linear_spec()
    spec["sources"]["other"] = {"kind": "llm", "provider": "acme-ai", "model": "x"}
    spec["sources"]["claude"] = {"kind": "llm", "provider": "anthropic"}

    report = validate_spec(spec)

    assert codes_at(report) == {("$.sources.other.provider", "reference.unknown_provider"),
                                ("$.sources.claude.model", "source.model_required")}


def test_it_checks_source_queue_lane_and_credential_references():
    spec = linear_spec()
    spec["queues"] = {"openai": {"max_requests_per_minute": 60, "sub_queues": {"batch": {"weight": 1}}}}
    spec["sources"]["writer"].update(credential="prod-openai", queue="openai", lane="interactive",
                                     fallbacks=["backup", "writer"])
    spec["sources"]["pics"] = {"kind": "image", "provider": "openai", "model": "gpt-image-1",
                               "api_key_env": "OPENAI_KEY"}
    spec["nodes"][1]["queue"] = "anthropic"
    spec["nodes"][2]["source"] = "pics"

    report = validate_spec(spec, credential_names={"staging-openai"})

    assert codes_at(report) == {
        ("$.sources.writer.fallbacks[0]", "reference.unknown_source"),
        ("$.sources.writer.fallbacks[1]", "reference.fallback_self"),
        ("$.sources.writer.lane", "reference.unknown_lane"),
        ("$.sources.writer.credential", "reference.unknown_credential"),
        ("$.nodes[1].queue", "reference.unknown_queue"),
        ("$.nodes[2].source", "reference.source_kind"),
    }


def test_it_checks_credentials_only_when_names_are_given():
    spec = linear_spec()
    spec["sources"]["writer"]["credential"] = "prod-openai"

    assert validate_spec(spec).valid
    assert validate_spec(spec, credential_names={"prod-openai"}).valid


def test_it_refuses_credential_and_api_key_env_together():
    spec = linear_spec()
    spec["sources"]["writer"].update(credential="prod", api_key_env="OPENAI_API_KEY")

    assert codes_at(validate_spec(spec)) == {("$.sources.writer.credential", "source.credential_conflict")}


def test_it_checks_aggregator_inputs_are_upstream():
    spec = linear_spec()
    spec["nodes"].insert(3, {"id": "merge", "type": "aggregator",
                             "inputs_from": ["outline", "done", "ghost"]})
    spec["edges"][2] = {"from": "draft", "to": "merge"}
    spec["edges"].append({"from": "merge", "to": "done"})

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[3].inputs_from[1]", "reference.not_upstream"),
        ("$.nodes[3].inputs_from[2]", "graph.unknown_node"),
    }


SECRETS = {
    "openai": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "anthropic": "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack": "xoxb-123456789012-abcdefABCDEF",
    "google": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...",
}


def test_it_refuses_inline_secrets_without_echoing_them():
    spec = linear_spec()
    spec["description"] = SECRETS["openai"]
    spec["sources"]["writer"]["options"]["api_key"] = "hunter2-not-a-known-shape"
    spec["sources"]["writer"]["options"]["headers"] = {"Authorization": "Bearer abc"}
    spec["nodes"][1]["system"] = f"Use key {SECRETS['anthropic']} for calls"
    for i, secret in enumerate(SECRETS.values()):
        spec["inputs"][f"field{i}"] = {"type": "string", "default": secret}

    report = validate_spec(spec)

    found = codes_at(report)
    assert ("$.description", "secret.inline") in found
    assert ("$.sources.writer.options.api_key", "secret.inline") in found
    assert ("$.sources.writer.options.headers.Authorization", "secret.inline") in found
    assert ("$.nodes[1].system", "secret.inline") in found
    for i in range(len(SECRETS)):
        assert (f"$.inputs.field{i}.default", "secret.inline") in found
    text = json.dumps(report.as_dict())
    for secret in [*SECRETS.values(), "hunter2", "Bearer abc"]:
        assert secret.split("\n")[0] not in text or secret.startswith("-----")
    assert "MIIEow" not in text
    assert "looks like an OpenAI API key" in text and "credential" in text


def test_it_does_not_mistake_ordinary_text_for_secrets():
    spec = linear_spec()
    spec["description"] = "Ask-me-anything task-runner for risk-assessment-of-supply-chains"
    spec["sources"]["writer"]["options"].update(max_tokens=300, token_budget=5, secret_sauce=None)

    assert validate_spec(spec).valid


def test_it_never_raises_on_odd_documents():
    odd = [None, [], 5, "x", b"", "", {"nodes": None}, {"nodes": [None, 5, "x", []]},
           {"version": 1, "name": "x", "nodes": [{"id": 5, "type": ["input"]}], "edges": [5, {"from": []}]},
           {"version": 1, "name": "x", "nodes": [{"id": "a", "type": "input"}], "outputs": {"x": 5}},
           {"inputs": [], "sources": "x", "queues": {"q": None}, "edges": {"a": 1}}]

    for data in odd:
        report = validate_spec(data)
        assert isinstance(report, Report)
        assert not report.valid and report.errors
        assert all(e.code != "internal.error" for e in report.errors), (data, report.errors)


def test_it_checks_node_rules_and_inline_node_references():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "map", "items": "[inputs.topic]", "node": {
        "type": "llm", "source": "ghost", "prompt": "{{ item }}", "queue": "slow", "lane": "bulk"}}
    spec["nodes"].insert(3, {"id": "merge", "type": "aggregator", "mode": "template"})
    spec["nodes"].insert(4, {"id": "pick", "type": "router", "routes": [{"name": "a"}, {"name": "a"}]})
    spec["edges"][2:] = [{"from": "draft", "to": "merge"}, {"from": "merge", "to": "pick"},
                         {"from": "pick", "to": "done"}]

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[2].node.source", "reference.unknown_source"),
        ("$.nodes[2].node.queue", "reference.unknown_queue"),
        ("$.nodes[3].template", "aggregator.template_required"),
        ("$.nodes[4].routes[1].name", "router.duplicate_route"),
    }
