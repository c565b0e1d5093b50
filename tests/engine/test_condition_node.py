import pytest

from runs.models import Run, Step

from .helpers import run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def document():
    return spec(
        [{"id": "big", "type": "condition", "expression": "inputs.amount > 100"},
         {"id": "approve", "type": "transform", "template": "needs approval"},
         {"id": "auto", "type": "transform", "template": "auto"}],
        [("start", "big"), ("big", "approve", "nodes.big.output"), ("big", "auto", "not nodes.big.output")],
        inputs={"amount": {"type": "integer", "default": 10}},
    )


@pytest.mark.parametrize("amount, result, taken, skipped", [(500, True, "approve", "auto"),
                                                             (5, False, "auto", "approve")])
def test_its_boolean_output_steers_the_edges(acme, amount, result, taken, skipped):
    run = run_to_end(acme, document(), {"amount": amount})

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["big"].output is result
    assert steps[taken].status == Step.Status.SUCCEEDED
    assert steps[skipped].status == Step.Status.SKIPPED
