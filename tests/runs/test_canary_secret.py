"""A canary key planted in a credential (and a wrong one beside it) must never come back out:
not in an API answer, a page, the admin, a run event, a trace or other artifact, an export,
a log line or an error message."""
import io
import logging

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from providers import breaker
from providers.fake_server import FakeLLMServer
from runs.models import Run, RunEvent, Step

from tests.conftest import PASSWORD

from .helpers import RUNS, body_of, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = "sk-canary-7f3c9e1d5b2a48c6a0e4f8d2b6c1e9a3"
WRONG = "sk-canary-wrong-0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def canary_spec(credential):
    return {
        "version": 1, "name": "Canary",
        "inputs": {"topic": {"type": "string"}},
        "sources": {"writer": {"kind": "llm", "provider": "openai", "model": "gpt-4o-mini",
                               "credential": credential, "options": {"max_retries": 0}}},
        "nodes": [{"id": "start", "type": "input"},
                  {"id": "draft", "type": "llm", "source": "writer", "prompt": "Write about {{ inputs.topic }}"}],
        "edges": [{"from": "start", "to": "draft"}],
        "outputs": {"draft": "{{ nodes.draft.output }}"},
    }


def test_a_planted_key_never_comes_back_out(api_as, alice, acme, worker, caplog):
    caplog.set_level(logging.DEBUG)
    breaker.reset()
    seen = []  # every body the product gave back

    def get(client, url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seen.append((url, body.decode(errors="replace")))
        return response

    with FakeLLMServer(keys=[CANARY]) as fake:
        api = api_as(alice)
        for name, secret in (("openai-prod", CANARY), ("openai-wrong", WRONG)):
            created = api.post("/api/v1/credentials/", {"name": name, "provider": "openai", "secret": secret,
                                                        "base_url": fake.openai_base_url}, format="json")
            seen.append(("create credential", created.content.decode()))
            assert created.status_code == 201, created.content
        for credential in body_of(api.get("/api/v1/credentials/"), 200)["results"]:
            tested = api.post(f"/api/v1/credentials/{credential['id']}/test/")
            seen.append(("test credential", tested.content.decode()))
        good = make_workflow(acme, canary_spec("openai-prod"), slug="canary", author=alice)
        bad = make_workflow(acme, canary_spec("openai-wrong"), slug="canary-wrong", author=alice)

        runs = [body_of(api.post(RUNS, {"workflow": w.slug, "inputs": {"topic": "tides"}}, format="json"), 201)
                for w in (good, bad)]

    succeeded, failed = (Run.objects.get(pk=r["id"]) for r in runs)
    assert succeeded.status == Run.Status.SUCCEEDED, succeeded.error
    assert failed.status == Run.Status.FAILED and "authentication failed" in failed.error
    assert fake.requests and all(CANARY not in str(r) and WRONG not in str(r) for r in fake.requests)

    for run in (succeeded, failed):
        get(api, f"{RUNS}{run.pk}/")
        get(api, f"{RUNS}{run.pk}/events/")
        for artifact in body_of(get(api, f"{RUNS}{run.pk}/artifacts/"), 200)["results"]:
            get(api, artifact["url"])
        get(api, f"/runs/{run.pk}/")
    get(api, RUNS)
    for workflow in (good, bad):
        get(api, f"/api/v1/workflows/{workflow.slug}/export/")

    pages = Client()
    pages.force_login(alice)
    get(pages, "/settings/credentials/")
    root = User.objects.create_superuser("root@agentflow.test", PASSWORD)
    admin = Client()
    admin.force_login(root)
    from providers.models import Credential
    for credential in Credential.objects.all():
        get(admin, f"/admin/providers/credential/{credential.pk}/change/")
    for url in ("/admin/providers/credential/", "/admin/runs/run/", "/admin/runs/step/", "/admin/runs/runevent/",
                "/admin/accounts/auditevent/"):
        get(admin, url)
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    seen.append(("dumpdata", dump.getvalue()))
    seen.append(("events", str(list(RunEvent.objects.values_list("data", flat=True)))))
    seen.append(("steps", str(list(Step.objects.values_list("input", "output", "error")))))
    seen.append(("runs", str(list(Run.objects.values_list("error", "outputs")))))
    seen.append(("logs", caplog.text))

    assert len(seen) > 25
    for where, text in seen:
        assert CANARY not in text, where
        assert WRONG not in text, where
        # Nor a long enough piece of either to be useful.
        assert CANARY[10:30] not in text and WRONG[16:36] not in text, where
