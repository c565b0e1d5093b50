"""Runs whose sources are real vendors: the openai and anthropic SDKs against the loopback
fake server, with credentials, streaming, costs, queues and fallbacks."""
import pytest

from providers import breaker
from providers.fake_server import FakeLLMServer
from providers.models import Credential
from runs import events
from runs.models import Run, RunEvent, Step

from .helpers import assert_events_consistent, llm, run_to_end, spec, steps_of

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI_KEY = "sk-proj-openai-test-0000000000000001"
ANTHROPIC_KEY = "sk-ant-api03-anthropic-test-000000002"


@pytest.fixture
def fake():
    breaker.reset()
    with FakeLLMServer(keys=[OPENAI_KEY, ANTHROPIC_KEY]) as server:
        yield server
    breaker.reset()


@pytest.fixture
def vendors(acme, fake):
    Credential.add(acme, name="openai-prod", provider="openai", secret=OPENAI_KEY, base_url=fake.openai_base_url)
    Credential.add(acme, name="anthropic-prod", provider="anthropic", secret=ANTHROPIC_KEY,
                   base_url=fake.anthropic_base_url)


@pytest.fixture
def deltas(monkeypatch):
    seen = []
    monkeypatch.setattr(events, "publish_delta", lambda run_id, step_id, node_id, text: seen.append((node_id, text)))
    return seen


def two_vendor_spec(**queue):
    return spec(
        [llm("draft", "Draft a note about {{ inputs.topic }}", source="writer", stream=True),
         llm("review", "Review this draft: {{ nodes.draft.output }}", source="critic", stream=True)],
        [("start", "draft"), ("draft", "review")],
        sources={
            "writer": {"kind": "llm", "provider": "openai", "model": "gpt-4o-mini", "credential": "openai-prod",
                       "queue": "openai", "fallbacks": ["critic"], "options": {"max_retries": 3}},
            "critic": {"kind": "llm", "provider": "anthropic", "model": "claude-haiku-4-5",
                       "credential": "anthropic-prod", "options": {"max_tokens": 200}},
        },
        inputs={"topic": {"type": "string"}},
        outputs={"review": "{{ nodes.review.output }}"},
    ) | {"queues": {"openai": {"max_requests_per_minute": 600, "burst_size": 5, **queue}}}


def test_an_openai_and_an_anthropic_source_run_end_to_end_with_streaming_and_costs(acme, vendors, fake, deltas):
    run = run_to_end(acme, two_vendor_spec(), {"topic": "tides"})

    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = steps_of(run)
    draft, review = steps["draft"], steps["review"]
    assert (draft.source, draft.provider, draft.model) == ("writer", "openai", "gpt-4o-mini")
    assert (review.source, review.provider, review.model) == ("critic", "anthropic", "claude-haiku-4-5")
    for step in (draft, review):
        assert step.input_tokens > 0 and step.output_tokens > 0 and not step.tokens_estimated
        assert step.cost_usd > 0
    assert run.cost_usd == draft.cost_usd + review.cost_usd
    # Streamed: the tokens arrived piece by piece and add up to the recorded output.
    assert "".join(text for node, text in deltas if node == "draft") == draft.output
    assert "".join(text for node, text in deltas if node == "review") == review.output
    assert len([1 for node, _ in deltas if node == "draft"]) > 1
    paths = [r["path"] for r in fake.requests]
    assert paths == ["/v1/chat/completions", "/v1/messages"]
    assert_events_consistent(run)


def test_a_429_storm_is_waited_out_through_the_queue(acme, vendors, fake, deltas):
    fake.script(model="gpt-4o-mini", fault="rate_limit", retry_after=0.2, times=3)

    run = run_to_end(acme, two_vendor_spec(), {"topic": "storms"})

    assert run.status == Run.Status.SUCCEEDED, run.error
    draft = steps_of(run)["draft"]
    assert draft.source == "writer" and draft.attempt == 1
    calls = [r for r in fake.requests if r["model"] == "gpt-4o-mini"]
    assert [r["status"] for r in calls] == [429, 429, 429, 200]
    # Each retry waited at least the retry-after the vendor asked for.
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:])]
    assert len(gaps) == 3 and all(gap >= 0.19 for gap in gaps)
    logs = [e.data["message"] for e in RunEvent.objects.filter(run=run, type="log") if e.data.get("node") == "draft"]
    assert sum("rate limited" in message for message in logs) == 3


def test_a_permanent_failure_falls_back_to_the_next_source(acme, vendors, fake, deltas):
    fake.script(model="gpt-4o-mini", fault="quota")

    run = run_to_end(acme, two_vendor_spec(), {"topic": "budgets"})

    assert run.status == Run.Status.SUCCEEDED, run.error
    draft = steps_of(run)["draft"]
    assert (draft.source, draft.provider, draft.model) == ("critic", "anthropic", "claude-haiku-4-5")
    assert [r["status"] for r in fake.requests if r["model"] == "gpt-4o-mini"] == [429]  # not retried
    fallback = [e.data["message"] for e in RunEvent.objects.filter(run=run, type="log") if e.data.get("node") == "draft"]
    assert any("served by critic" in m and "quota" in m for m in fallback)


def test_when_every_source_fails_the_step_names_each(acme, vendors, fake, deltas):
    fake.script(model="gpt-4o-mini", fault="bad_request", message="context too long")
    fake.script(model="claude-haiku-4-5", fault="not_found")

    run = run_to_end(acme, two_vendor_spec(), {"topic": "failures"})

    assert run.status == Run.Status.FAILED
    draft = steps_of(run)["draft"]
    assert draft.status == Step.Status.FAILED
    assert "writer: openai gpt-4o-mini HTTP 400" in draft.error and "context too long" in draft.error
    assert "critic: anthropic claude-haiku-4-5 HTTP 404" in draft.error
    assert OPENAI_KEY not in draft.error and ANTHROPIC_KEY not in draft.error


def test_a_wrong_key_fails_without_echoing_it(acme, fake, deltas):
    wrong = "sk-proj-wrong-key-1234567890abcdef"
    Credential.add(acme, name="openai-prod", provider="openai", secret=wrong, base_url=fake.openai_base_url)
    Credential.add(acme, name="anthropic-prod", provider="anthropic", secret=wrong, base_url=fake.anthropic_base_url)

    run = run_to_end(acme, two_vendor_spec(), {"topic": "keys"})

    assert run.status == Run.Status.FAILED
    draft = steps_of(run)["draft"]
    assert "authentication failed" in draft.error
    assert wrong not in draft.error and wrong not in run.error
    assert not any(wrong in str(e.data) for e in RunEvent.objects.filter(run=run))


def test_an_open_circuit_sends_calls_straight_to_the_fallback(acme, vendors, fake, deltas, settings):
    settings.BREAKER_FAILURES = 2
    settings.BREAKER_COOLDOWN_S = 60
    fake.script(model="gpt-4o-mini", fault="server_error")
    document = two_vendor_spec()
    document["sources"]["writer"]["options"]["max_retries"] = 1

    first = run_to_end(acme, document, {"topic": "one"})
    second = run_to_end(acme, document, {"topic": "two"})

    assert first.status == second.status == Run.Status.SUCCEEDED
    assert steps_of(first)["draft"].source == steps_of(second)["draft"].source == "critic"
    # Two failures opened the breaker: the second run did not call OpenAI at all.
    assert [r["status"] for r in fake.requests if r["model"] == "gpt-4o-mini"] == [500, 500]


def test_an_image_node_stores_a_png_artifact(acme, vendors, fake, deltas):
    document = spec(
        [{"id": "cover", "type": "image", "source": "pics", "prompt": "A cover for {{ inputs.topic }}",
          "size": "1024x1024"}],
        [("start", "cover")],
        sources={"pics": {"kind": "image", "provider": "openai", "model": "gpt-image-1", "credential": "openai-prod"}},
        inputs={"topic": {"type": "string"}},
        outputs={"cover": "{{ nodes.cover.output.artifact }}"},
    )

    run = run_to_end(acme, document, {"topic": "tides"})

    assert run.status == Run.Status.SUCCEEDED, run.error
    cover = steps_of(run)["cover"]
    assert cover.output["artifact"] == "cover.png" and cover.output["content_type"] == "image/png"
    assert (cover.source, cover.provider, cover.model) == ("pics", "openai", "gpt-image-1")
    artifact = run.artifacts.get(name="cover.png")
    data = artifact.file.read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and artifact.size == len(data) == cover.output["size"]
    # The documents made at the end of the run sit beside it.
    assert {"cover.png", "cover.md", "trace.json"} <= set(run.artifacts.values_list("name", flat=True))
    request = [r for r in fake.requests if r["path"] == "/v1/images/generations"]
    assert len(request) == 1 and request[0]["body"]["size"] == "1024x1024"
