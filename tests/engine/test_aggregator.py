import pytest

from runs.models import Run

from .helpers import run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def combined(**aggregator):
    return spec(
        [{"id": "a", "type": "transform", "template": "alpha"},
         {"id": "b", "type": "transform", "template": '{"n": 2}', "output_format": "json"},
         {"id": "c", "type": "transform", "template": "gamma"},
         {"id": "all", "type": "aggregator", **aggregator}],
        [("start", "a"), ("start", "b"), ("start", "c", "false"), ("a", "all"), ("b", "all"), ("c", "all")],
    )


@pytest.mark.parametrize("config, expected", [
    ({"mode": "dict"}, {"a": "alpha", "b": {"n": 2}}),
    ({"mode": "list", "inputs_from": ["b", "a"]}, [{"n": 2}, "alpha"]),
    ({"mode": "join", "separator": " | "}, 'alpha | {"n": 2}'),
    ({"mode": "template", "template": "{{ nodes.a.output }}-{{ nodes.b.output.n }}"}, "alpha-2"),
])
def test_it_combines_the_outputs_of_the_nodes_that_ran(acme, config, expected):
    run = run_to_end(acme, combined(**config))

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert steps_of(run)["all"].output == expected
