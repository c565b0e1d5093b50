import pytest

from runs.models import Run, Step

from .helpers import mock_source, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)


def routed(router):
    return spec(
        [router,
         {"id": "refund", "type": "transform", "template": "refund desk"},
         {"id": "bug", "type": "transform", "template": "engineering"},
         {"id": "other", "type": "transform", "template": "front desk"}],
        [("start", "route"),
         ("route", "refund", 'nodes.route.output.route == "billing"'),
         ("route", "bug", 'nodes.route.output.route == "bug"'),
         ("route", "other", 'nodes.route.output.route == "other"')],
        inputs={"message": {"type": "string", "default": "I want my money back"}},
        sources={"model": mock_source(responses=[
            {"match": "money back", "text": "billing"},
            {"match": "crash", "text": "This sounds like a bug report."},
            {"match": "hello", "text": "no idea"}])},
    )


def rules_router():
    return {"id": "route", "type": "router", "mode": "rules", "default": "other", "routes": [
        {"name": "billing", "when": '"money" in inputs.message'},
        {"name": "bug", "when": '"crash" in inputs.message'},
        {"name": "other"}]}


def llm_router():
    return {"id": "route", "type": "router", "mode": "llm", "source": "model", "default": "other",
            "prompt": "Classify: {{ inputs.message }}",
            "routes": [{"name": "billing", "description": "payments and refunds"},
                       {"name": "bug", "description": "something is broken"},
                       {"name": "other"}]}


def statuses(run):
    return {node: step.status for node, step in steps_of(run).items() if node in ("refund", "bug", "other")}


@pytest.mark.parametrize("message, chosen", [
    ("I want my money back", "refund"), ("the app crashes", "bug"), ("hello there", "other")])
def test_rules_pick_the_first_matching_route_or_the_default(acme, message, chosen):
    run = run_to_end(acme, routed(rules_router()), {"message": message})

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert {n: s for n, s in statuses(run).items() if s == Step.Status.SUCCEEDED} == {chosen: "succeeded"}
    assert sorted(n for n, s in statuses(run).items() if s == Step.Status.SKIPPED) == sorted(
        {"refund", "bug", "other"} - {chosen})


@pytest.mark.parametrize("message, route, chosen", [
    ("I want my money back", "billing", "refund"), ("the app crash again", "bug", "bug"),
    ("hello", "other", "other")])
def test_in_llm_mode_the_model_chooses_the_route(acme, message, route, chosen):
    run = run_to_end(acme, routed(llm_router()), {"message": message})

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    assert steps["route"].output == {"route": route}
    assert steps["route"].provider == "mock" and steps["route"].input_tokens > 0
    assert steps[chosen].status == Step.Status.SUCCEEDED
    assert [n for n, s in statuses(run).items() if s == Step.Status.SUCCEEDED] == [chosen]
