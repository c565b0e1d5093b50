"""Starting runs through the API, reading them back with their steps, and their events."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from runs.models import Run, RunEvent, Step
from workflows.models import Workflow

from tests.workflows.spec_samples import linear_spec

from .helpers import RUNS, body_of, catalog, error_of, install_catalog, make_workflow, run_url

CATALOG_WITHOUT_PEOPLE = ["document-pipeline", "intent-router", "learn-a-topic", "map-over-items", "three-reviewers"]


def start(client, **body):
    return client.post(RUNS, body, format="json")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("slug", CATALOG_WITHOUT_PEOPLE)
def test_each_catalog_workflow_runs_to_success(api_as, alice, acme, worker, slug):
    install_catalog(acme, slug, author=alice)

    response = start(api_as(alice), workflow=slug, inputs={})

    body = body_of(response, 201)
    assert body["workflow"] == slug and body["version"] == 1
    assert body["mode"] == "full" and body["trigger"] == "api"
    assert body["urls"]["self"] == run_url(body["id"]) == response["Location"]
    assert body["urls"]["page"] == f"/runs/{body['id']}/"
    assert worker == [body["id"]]
    run = Run.objects.get(pk=body["id"])
    assert (run.status, run.error) == ("succeeded", "")
    assert run.created_by == alice and run.trigger == "api"
    assert run.outputs
    assert set(run.steps.values_list("status", flat=True)) <= {"succeeded", "skipped"}

    detail = body_of(api_as(alice).get(run_url(run.pk)), 200)
    assert detail["status"] == "succeeded"
    assert detail["outputs"] == run.outputs
    assert detail["tokens"]["total"] == run.total_tokens > 0
    assert detail["timings"]["duration_ms"] is not None
    node_ids = {node["id"] for node in catalog(slug)["spec"]["nodes"]}
    assert {step["node_id"] for step in detail["steps"]} <= node_ids
    assert len(detail["steps"]) == run.steps.count()
    llm_steps = [step for step in detail["steps"] if step["node_type"] == "llm" and step["status"] == "succeeded"]
    assert llm_steps or slug == "map-over-items"
    for step in llm_steps:
        assert step["provider"] == "mock" and step["tokens"]["total"] > 0 and step["attempt"] == 1
        assert step["timings"]["started_at"] and step["duration_ms"] is not None


@pytest.mark.django_db(transaction=True)
def test_a_ticket_waits_for_approval_then_sends_the_reply(api_as, bob, triage, worker):
    client = api_as(bob)

    run_id = body_of(start(client, workflow="ticket-triage", inputs={}), 201)["id"]

    waiting = body_of(client.get(run_url(run_id)), 200)
    assert waiting["status"] == "waiting"
    approve_step = next(step for step in waiting["steps"] if step["node_id"] == "approve")
    assert approve_step["status"] == "waiting"
    assert "Send this reply to Dana?" in approve_step["input"]["prompt"]

    response = client.post(run_url(run_id, "approve/"), {"node": "approve", "comment": "Good"}, format="json")

    body = body_of(response, 200)
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"category": "billing", "outcome": "sent"}
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded"
    step = run.steps.get(node_id="approve")
    assert step.output == {"decision": "approved", "comment": "Good", "by": str(bob)}
    assert run.steps.get(node_id="send_reply").status == "succeeded"
    assert run.steps.get(node_id="hold_reply").status == "skipped"


@pytest.mark.django_db(transaction=True)
def test_a_rejected_reply_is_held(api_as, alice, triage, worker):
    client = api_as(alice)
    run_id = body_of(start(client, workflow="ticket-triage", inputs={"customer": "Dana"}), 201)["id"]

    response = client.post(run_url(run_id, "reject/"), {"node": "approve", "comment": "Too casual"}, format="json")

    assert body_of(response, 200)["outputs"] == {"category": "billing", "outcome": "held"}
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded"
    assert run.steps.get(node_id="send_reply").status == "skipped"
    hold = run.steps.get(node_id="hold_reply")
    assert hold.status == "succeeded"
    assert hold.output == f"Reply not sent. {alice} said: Too casual"


@pytest.mark.django_db(transaction=True)
def test_a_bug_ticket_is_escalated_without_waiting(api_as, alice, triage, worker):
    inputs = {"ticket": "The export button fails with an error every time."}

    run_id = body_of(start(api_as(alice), workflow="ticket-triage", inputs=inputs), 201)["id"]

    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded"
    assert run.outputs == {"category": "bug", "outcome": "escalated"}
    assert not run.steps.filter(node_id="approve").exists() or run.steps.get(node_id="approve").status == "skipped"


def test_starting_answers_at_once_with_a_queued_run(api_as, bob, linear, enqueued,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(api_as(bob), workflow="linear", inputs={"topic": "tides"})

    body = body_of(response, 201)
    assert body["status"] == "queued"
    assert set(body["urls"]) >= {"self", "events", "page", "cancel", "approve", "reject", "retry", "artifacts"}
    run = Run.objects.get(pk=body["id"])
    assert (run.status, run.organization, run.version.number, run.inputs) == ("queued", linear.organization, 1,
                                                                              {"topic": "tides"})
    assert run.created_by == bob
    assert enqueued == [body["id"]]  # handed to a worker once, after commit
    assert not run.steps.exists()
    assert list(run.events.values_list("seq", "type")) == [(1, "run.queued")]


def test_the_start_answer_is_the_runs_list_entry(api_as, bob, linear, enqueued):
    # The start answer is built by hand for speed; it must say what the list says.
    body = body_of(start(api_as(bob), workflow="linear", inputs={"topic": "tides"}), 201)
    listed = body_of(api_as(bob).get(RUNS), 200)["results"]
    assert [body] == listed
    assert body["created_by"] == bob.email and body["workflow"] == "linear" and body["version"] == 1


def test_a_key_starts_runs_as_its_creator(alice, acme, linear, enqueued):
    _, raw = ApiKey.issue(acme, "ci", ["read", "execute"], created_by=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = body_of(start(client, workflow="linear", inputs={"topic": "x"}), 201)
    run = Run.objects.get(pk=body["id"])
    assert run.created_by == alice and body["created_by"] == alice.email


def test_every_input_problem_is_listed(api_as, alice, acme):
    install_catalog(acme, "document-pipeline")

    response = start(api_as(alice), workflow="document-pipeline",
                     inputs={"topic": "x" * 300, "words": 5, "colour": "blue"})

    error = error_of(response, 400, "invalid_inputs")
    problems = {(d["path"], d["code"]) for d in error["details"]}
    assert problems == {
        ("$.inputs.colour", "inputs.unknown"),
        ("$.inputs.topic", "inputs.invalid"),
        ("$.inputs.words", "inputs.invalid"),
    }
    assert all(d["message"] for d in error["details"])
    assert not Run.objects.exists()


def test_a_missing_required_input_is_refused(api_as, alice, linear):
    error = error_of(start(api_as(alice), workflow="linear", inputs={}), 400, "invalid_inputs")

    assert error["details"] == [{"path": "$.inputs.topic", "code": "inputs.required", "message": "'topic' is required"}]
    assert not Run.objects.exists()


def test_inputs_that_are_not_an_object_are_refused(api_as, alice, linear):
    error = error_of(start(api_as(alice), workflow="linear", inputs=["tides"]), 400, "invalid_inputs")

    assert [d["path"] for d in error["details"]] == ["$.inputs"]


def test_defaults_fill_missing_inputs(api_as, alice, acme):
    install_catalog(acme, "learn-a-topic")

    body = body_of(start(api_as(alice), workflow="learn-a-topic", inputs={"topic": "tides"}), 201)

    assert Run.objects.get(pk=body["id"]).inputs == {"topic": "tides", "level": "beginner"}


def test_an_unknown_workflow_is_a_400_at_its_path(api_as, alice, acme):
    error = error_of(start(api_as(alice), workflow="nope", inputs={}), 400, "invalid")

    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.workflow", "not_found")]


def test_unknown_fields_are_refused(api_as, alice, linear):
    error = error_of(start(api_as(alice), workflow="linear", inputs={"topic": "x"}, priority=1), 400, "invalid")

    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.priority", "unknown_field")]
    assert not Run.objects.exists()


def test_an_unknown_mode_is_refused(api_as, alice, linear):
    error = error_of(start(api_as(alice), workflow="linear", inputs={"topic": "x"}, mode="fast"), 400, "invalid")

    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.mode", "invalid_choice")]
    assert not Run.objects.exists()


@pytest.mark.parametrize("status", [Workflow.Status.ARCHIVED, Workflow.Status.PAUSED])
def test_an_archived_or_paused_workflow_does_not_start(api_as, alice, linear, status):
    linear.status = status
    linear.save()

    error_of(start(api_as(alice), workflow="linear", inputs={"topic": "x"}), 409, "workflow_inactive")

    assert not Run.objects.exists()


def test_a_workflow_never_published_does_not_start_in_full_mode(api_as, alice, acme):
    make_workflow(acme, slug="draft-only", publish=False)

    error_of(start(api_as(alice), workflow="draft-only", inputs={"topic": "x"}), 409, "not_published")

    assert not Run.objects.exists()


def test_the_default_version_is_the_latest_published_one(api_as, alice, linear):
    spec = linear_spec()
    spec["name"] = "Linear, second draft"
    linear.save_draft(spec)  # v2, a draft

    body = body_of(start(api_as(alice), workflow="linear", inputs={"topic": "x"}), 201)

    assert body["version"] == 1
    assert Run.objects.get(pk=body["id"]).version.number == 1


def test_a_draft_version_runs_in_test_mode_only(api_as, alice, linear):
    spec = linear_spec()
    spec["name"] = "Linear, second draft"
    linear.save_draft(spec)
    client = api_as(alice)

    refused = start(client, workflow="linear", version=2, inputs={"topic": "x"})
    accepted = start(client, workflow="linear", version=2, mode="test", inputs={"topic": "x"})

    error = error_of(refused, 400)
    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.version", "draft")]
    body = body_of(accepted, 201)
    assert (body["version"], body["mode"]) == (2, "test")
    run = Run.objects.get()
    assert (run.version.number, run.version.state, run.mode) == (2, "draft", "test")


def test_an_unknown_version_is_a_400(api_as, alice, linear):
    error = error_of(start(api_as(alice), workflow="linear", version=7, inputs={"topic": "x"}), 400)

    assert [(d["path"], d["code"]) for d in error["details"]] == [("$.version", "not_found")]


@pytest.mark.django_db(transaction=True)
def test_a_draft_runs_to_success_in_test_mode(api_as, alice, acme, worker):
    make_workflow(acme, slug="linear", publish=False)

    body = body_of(start(api_as(alice), workflow="linear", version=1, mode="test", inputs={"topic": "x"}), 201)

    run = Run.objects.get(pk=body["id"])
    assert (run.status, run.mode) == ("succeeded", "test")
    assert run.steps.filter(status="succeeded").count() == 4


def test_validate_mode_returns_a_report_and_runs_nothing(api_as, alice, acme, enqueued,
                                                         django_capture_on_commit_callbacks):
    install_catalog(acme, "three-reviewers")

    with django_capture_on_commit_callbacks(execute=True):
        response = start(api_as(alice), workflow="three-reviewers", mode="validate", inputs={})

    body = body_of(response, 201)
    assert body["mode"] == "validate"
    assert enqueued == []
    run = Run.objects.get(pk=body["id"])
    assert run.status == "succeeded"
    report = run.outputs["report"]
    assert report["valid"] is True and report["errors"] == []
    assert {node["id"] for node in report["nodes"]} == {"start", "skeptic", "editor", "newcomer", "reviews",
                                                        "summary", "report"}
    assert not Step.objects.filter(run=run).exists()
    detail = body_of(api_as(alice).get(run_url(run.pk)), 200)
    assert detail["steps"] == [] and detail["outputs"]["report"]["valid"] is True
    assert detail["step_count"] == 0


def test_validate_mode_checks_that_each_source_has_its_key(api_as, alice, acme, monkeypatch):
    monkeypatch.delenv("ACME_WRITER_API_KEY", raising=False)
    spec = linear_spec()
    spec["sources"]["writer"]["api_key_env"] = "ACME_WRITER_API_KEY"
    make_workflow(acme, spec, slug="keyed")

    run_id = body_of(start(api_as(alice), workflow="keyed", mode="validate", inputs={"topic": "x"}), 201)["id"]

    run = Run.objects.get(pk=run_id)
    report = run.outputs["report"]
    assert run.status == "failed" and report["valid"] is False
    assert report["errors"] == [{"path": "$.sources.writer", "code": "source.key",
                                 "message": "the environment variable ACME_WRITER_API_KEY is not set"}]

    monkeypatch.setenv("ACME_WRITER_API_KEY", "sk-test-value-1234")
    run_id = body_of(start(api_as(alice), workflow="keyed", mode="validate", inputs={"topic": "x"}), 201)["id"]
    assert Run.objects.get(pk=run_id).outputs["report"]["valid"] is True


# Reading -----------------------------------------------------------------------------------


def _runs(workflow, *specs):
    """Runs of `workflow` with the given (status, mode, trigger, age in hours)."""
    now = timezone.now()
    made = []
    for status, mode, trigger, hours in specs:
        made.append(Run.objects.create(organization=workflow.organization, workflow=workflow,
                                       version=workflow.latest_published(), status=status, mode=mode,
                                       trigger=trigger, created_at=now - timedelta(hours=hours)))
    return made


def test_the_list_is_newest_first_and_paginated_by_cursor(api_as, alice, linear):
    runs = _runs(linear, *[("succeeded", "full", "api", hours) for hours in range(5)])
    client = api_as(alice)

    first = body_of(client.get(RUNS, {"page_size": 2}), 200)
    second = body_of(client.get(first["next"]), 200)

    assert [r["id"] for r in first["results"]] == [str(r.pk) for r in runs[:2]]
    assert [r["id"] for r in second["results"]] == [str(r.pk) for r in runs[2:4]]
    assert first["results"][0]["workflow"] == "linear"
    assert "steps" not in first["results"][0]


def test_the_list_filters(api_as, alice, acme, linear):
    other = make_workflow(acme, slug="other")
    failed, test_run, cli_run, old = _runs(linear, ("failed", "full", "api", 0), ("succeeded", "test", "api", 1),
                                           ("succeeded", "full", "cli", 2), ("succeeded", "full", "api", 48))
    (elsewhere,) = _runs(other, ("succeeded", "full", "api", 0))
    client = api_as(alice)

    def ids(**params):
        return {r["id"] for r in body_of(client.get(RUNS, params), 200)["results"]}

    assert ids(workflow="other") == {str(elsewhere.pk)}
    assert ids(status="failed") == {str(failed.pk)}
    assert ids(mode="test") == {str(test_run.pk)}
    assert ids(trigger="cli") == {str(cli_run.pk)}
    day_ago = (timezone.now() - timedelta(hours=24)).isoformat()
    assert ids(created_before=day_ago) == {str(old.pk)}
    assert str(old.pk) not in ids(created_after=day_ago)
    assert len(ids(created_after=day_ago)) == 4


@pytest.mark.parametrize("params", [{"created_after": "yesterday"}, {"created_before": "2024-13-01"},
                                    {"status": "sleeping"}])
def test_bad_filters_are_a_400(api_as, alice, linear, params):
    error = error_of(api_as(alice).get(RUNS, params), 400, "invalid")

    assert error["details"][0]["path"] == f"$.{next(iter(params))}"


def test_a_malformed_or_unknown_id_is_a_404(api_as, alice, linear):
    client = api_as(alice)

    for path in [run_url("not-a-uuid"), run_url("12345"), run_url("not-a-uuid", "events/"),
                 run_url("00000000-0000-0000-0000-000000000000")]:
        error_of(client.get(path), 404, "not_found")
    error_of(client.post(run_url("not-a-uuid", "cancel/")), 404, "not_found")


# Events ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_events_come_in_seq_order_without_gaps(api_as, alice, acme, worker):
    install_catalog(acme, "three-reviewers")
    client = api_as(alice)
    run_id = body_of(start(client, workflow="three-reviewers", inputs={}), 201)["id"]

    everything = body_of(client.get(run_url(run_id, "events/")), 200)

    seqs = [event["seq"] for event in everything["results"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert everything["last_seq"] == seqs[-1] == Run.objects.get(pk=run_id).last_seq
    assert everything["more"] is False
    types = [event["type"] for event in everything["results"]]
    assert types[0] == "run.queued" and types[1] == "run.started" and types[-1] == "run.succeeded"
    assert types.count("step.started") == types.count("step.succeeded") == 7
    assert all(event["run"] == run_id for event in everything["results"])

    later = body_of(client.get(run_url(run_id, "events/"), {"after": 5}), 200)
    assert [event["seq"] for event in later["results"]] == seqs[5:]
    assert later["results"] == everything["results"][5:]

    window = body_of(client.get(run_url(run_id, "events/"), {"after": 2, "limit": 3}), 200)
    assert [event["seq"] for event in window["results"]] == [3, 4, 5]
    assert (window["last_seq"], window["more"]) == (5, True)

    done = body_of(client.get(run_url(run_id, "events/"), {"after": seqs[-1]}), 200)
    assert (done["results"], done["last_seq"], done["more"]) == ([], seqs[-1], False)


def test_at_most_a_thousand_events_come_per_call(api_as, alice, linear):
    (run,) = _runs(linear, ("running", "full", "api", 0))
    RunEvent.objects.bulk_create(RunEvent(run=run, seq=n, type="log", data={"n": n}) for n in range(1, 1206))

    body = body_of(api_as(alice).get(run_url(run.pk, "events/")), 200)

    assert len(body["results"]) == 1000
    assert (body["last_seq"], body["more"]) == (1000, True)


@pytest.mark.parametrize("params", [{"after": "abc"}, {"after": -1}, {"limit": 1001}, {"limit": 0}])
def test_bad_event_parameters_are_a_400(api_as, alice, linear, params):
    (run,) = _runs(linear, ("running", "full", "api", 0))

    error = error_of(api_as(alice).get(run_url(run.pk, "events/"), params), 400, "invalid")

    assert error["details"][0]["path"] == f"$.{next(iter(params))}"
