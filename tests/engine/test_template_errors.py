import pytest

from runs.models import Run, Step

from .helpers import mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_missing_variable_fails_the_step_naming_the_template_and_the_variable(acme, call_log):
    document = spec(
        [{"id": "write", "type": "llm", "source": "model", "prompt": "About {{ inputs.subject }}"}],
        [("start", "write")],
        inputs={"subject": {"type": "string"}},  # optional, no default: absent at run time
        sources={"model": mock_source(call_log=call_log)},
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.FAILED
    step = steps_of(run)["write"]
    assert step.status == Step.Status.FAILED
    assert "nodes.write.prompt" in step.error
    assert "subject" in step.error
    assert "nodes.write.prompt" in run.error and "subject" in run.error
    assert step.attempt == 1


def test_a_missing_key_in_an_edge_expression_fails_the_run_clearly(acme):
    document = spec(
        [{"id": "a", "type": "transform", "template": '{"x": 1}', "output_format": "json"},
         {"id": "b", "type": "transform", "template": "b"}],
        [("start", "a"), ("a", "b", "nodes.a.output.missing == 1")],
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.FAILED
    assert "edges[a->b].when" in run.error and "missing" in run.error
