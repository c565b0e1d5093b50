"""Templates and expressions: the sandbox, what they may reference, and how the spec checks them."""
import pytest

from workflows import templating
from workflows.spec import validate_spec
from workflows.templating import TemplateError

from .spec_samples import codes_at, linear_spec


def test_it_finds_the_names_a_template_reads():
    src = (
        "{{ nodes.outline.output }} {{ nodes['draft'].output }} {{ inputs.topic }} {{ inputs['level'] }}"
        "{% for line in nodes.outline.output.splitlines() %}{{ line }}{{ loop.index }}{% endfor %}"
        "{% set total = 3 %}{{ total }} {{ run.id }} {{ item }} {{ range(2) | list }} {{ mystery }}"
    )

    assert templating.references(src) == {
        ("nodes", "outline"), ("nodes", "draft"), ("inputs", "topic"), ("inputs", "level"),
        ("run",), ("item",), ("mystery",),
    }


def test_it_marks_computed_keys_as_dynamic():
    assert templating.references("{{ nodes[inputs.which].output }}") == {("nodes",), ("inputs", "which")}
    assert templating.references("nodes.r.output.route == 'a'", expression=True) == {("nodes", "r")}


def test_it_renders_and_evaluates_in_a_sandbox():
    context = {"inputs": {"topic": "owls"}, "nodes": {"r": {"output": {"route": "image"}}}}

    assert templating.render("About {{ inputs.topic | upper }}", context) == "About OWLS"
    assert templating.evaluate("nodes.r.output.route == 'image'", context) is True
    assert templating.evaluate("[1, 2, 3] | sum", {}) == 6
    with pytest.raises(TemplateError):
        templating.render("{{ ''.__class__.__mro__ }}", {})
    with pytest.raises(TemplateError):
        templating.render("{% set x = [] %}{{ x.append(1) }}", {})
    with pytest.raises(TemplateError, match="too long"):
        templating.render("{{ 'x' * 100000000 }}", {})


def test_a_render_error_names_the_template_and_the_missing_variable():
    with pytest.raises(TemplateError) as caught:
        templating.render("Write about {{ inputs.topik }}", {"inputs": {"topic": "owls"}},
                          label="nodes[2].prompt")

    assert str(caught.value).startswith("nodes[2].prompt: ")
    assert "topik" in str(caught.value)
    assert caught.value.label == "nodes[2].prompt"

    with pytest.raises(TemplateError, match=r"^edges\[0\]\.when: .*'nodes' is undefined"):
        templating.evaluate("nodes.a.output", {}, label="edges[0].when")


def test_an_expression_with_trailing_text_does_not_parse():
    with pytest.raises(TemplateError, match="after the expression"):
        templating.parse_expression("inputs.a }}{{ inputs.b")


def test_it_reports_template_syntax_errors_with_their_line():
    spec = linear_spec()
    spec["nodes"][2]["prompt"] = "line one\nline two\n{% if nodes.outline.output %}unclosed"
    spec["edges"][1]["when"] = "nodes.outline.output =="
    spec["outputs"]["broken"] = "{{ nodes.done.output }"

    report = validate_spec(spec)

    assert codes_at(report) == {
        ("$.nodes[2].prompt", "template.syntax"),
        ("$.edges[1].when", "expression.syntax"),
        ("$.outputs.broken", "template.syntax"),
    }
    prompt_error = next(e for e in report.errors if e.path == "$.nodes[2].prompt")
    assert "line 3" in prompt_error.message and "endif" in prompt_error.message


def test_it_checks_every_expression_field():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "router", "routes": [{"name": "a", "when": "inputs.topic =="}]}
    spec["nodes"].insert(3, {"id": "check", "type": "condition", "expression": "{{ inputs.topic }}"})
    spec["nodes"].insert(4, {"id": "each", "type": "map", "items": "inputs.topic.split(", "node": {
        "type": "transform", "template": "{{ item"}})
    spec["edges"][2:] = [{"from": "draft", "to": "check"}, {"from": "check", "to": "each"},
                         {"from": "each", "to": "done"}]
    spec["nodes"][-1]["value"] = "{{ nodes.each.output }}"

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[2].routes[0].when", "expression.syntax"),
        ("$.nodes[3].expression", "expression.syntax"),
        ("$.nodes[4].items", "expression.syntax"),
        ("$.nodes[4].node.template", "template.syntax"),
    }


def test_it_reports_a_template_naming_an_unknown_node():
    spec = linear_spec()
    spec["nodes"][2]["prompt"] = "{{ nodes.outlin.output }}"

    report = validate_spec(spec)

    [error] = report.errors
    assert (error.path, error.code) == ("$.nodes[2].prompt", "template.unknown_node")
    assert "outlin" in error.message


def test_it_reports_a_template_reading_a_node_that_runs_later():
    spec = linear_spec()
    spec["nodes"][1]["prompt"] = "Outline {{ inputs.topic }} in the style of {{ nodes['done'].output }}"
    spec["edges"][0]["when"] = "nodes.draft.output | length > 0"

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[1].prompt", "template.not_upstream"),
        ("$.edges[0].when", "template.not_upstream"),
    }


def test_an_edge_condition_may_read_its_source_and_outputs_may_read_any_node():
    spec = linear_spec()
    spec["edges"][1]["when"] = "nodes.outline.output and inputs.topic"
    spec["outputs"]["all"] = "{{ nodes.outline.output }}{{ nodes.draft.output }}"

    assert validate_spec(spec).valid


def test_it_reports_unknown_inputs_and_names():
    spec = linear_spec()
    spec["nodes"][1]["prompt"] = "{{ inputs.topik }} {{ input.topic }} {{ item }}"

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[1].prompt", "template.unknown_input"),
        ("$.nodes[1].prompt", "template.unknown_name"),
    }
    messages = " ".join(e.message for e in validate_spec(spec).errors)
    assert "topik" in messages and "'input'" in messages and "'item'" in messages


def test_item_and_index_are_only_defined_inside_a_map():
    spec = linear_spec()
    spec["nodes"][2] = {"id": "draft", "type": "map", "items": "item", "node": {
        "type": "llm", "source": "writer",
        "prompt": "{{ index }}. {{ item }} from {{ nodes.outline.output }}",
        "system": "{{ nodes.done.output }}"}}

    assert codes_at(validate_spec(spec)) == {
        ("$.nodes[2].items", "template.unknown_name"),
        ("$.nodes[2].node.system", "template.not_upstream"),
    }


def test_loop_and_set_variables_are_not_unknown_names():
    spec = linear_spec()
    spec["nodes"][2]["prompt"] = (
        "{% set parts = nodes.outline.output.split('\\n') %}"
        "{% for part in parts %}{{ loop.index }} {{ part }}{% endfor %}"
        "{% for key, value in inputs.items() %}{{ key }}={{ value }}{% endfor %}{{ range(3) | join(',') }}"
    )

    assert validate_spec(spec).valid


def test_dot_access_reads_keys_before_dict_methods():
    context = {"inputs": {"items": ["a", "b"], "topic": "owls"}}

    assert templating.render("{{ inputs.items | join(',') }}", context) == "a,b"
    assert templating.render("{% for k, v in {'x': 1}.items() %}{{ k }}{{ v }}{% endfor %}", {}) == "x1"
    assert templating.references("{{ inputs.items }}") == {("inputs", "items")}
