import pytest

from accounts.models import AuditEvent
from providers.base import ProviderError
from providers.mock import MockProvider
from providers.models import Credential

from .conftest import MASK, SECRET


@pytest.fixture
def wrong_key(monkeypatch):
    """The mock provider answers like a vendor refusing the key, quoting it back."""

    def check(self):
        raise ProviderError(f"authentication failed: Incorrect API key provided: {self.secret}", status=401,
                            provider="mock")

    monkeypatch.setattr(MockProvider, "check", check)


def test_a_working_key_reports_ok_and_its_latency(api_as, alice, credential):
    response = api_as(alice).post(f"/api/v1/credentials/{credential.pk}/test/")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["message"] == "Connected."
    assert isinstance(body["latency_ms"], int) and body["latency_ms"] >= 0
    credential.refresh_from_db()
    assert credential.last_test_ok is True
    assert credential.last_test_latency_ms == body["latency_ms"]
    assert credential.last_tested_at is not None


def test_a_wrong_key_says_authentication_failed_without_the_key(api_as, alice, credential, wrong_key):
    response = api_as(alice).post(f"/api/v1/credentials/{credential.pk}/test/", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["latency_ms"] is None
    assert "authentication failed" in body["message"]
    assert "HTTP 401" in body["message"]
    assert SECRET not in response.content.decode()
    assert MASK in body["message"]
    credential.refresh_from_db()
    assert credential.last_test_ok is False
    assert SECRET not in credential.last_test_message
    event = AuditEvent.objects.get(action="credential.tested")
    assert event.data["ok"] is False and SECRET not in str(event.data)


def test_an_unexpected_failure_is_a_failed_test_not_an_error(api_as, alice, credential, monkeypatch):
    def check(self):
        raise RuntimeError(f"header value Bearer {self.secret} is invalid")

    monkeypatch.setattr(MockProvider, "check", check)

    response = api_as(alice).post(f"/api/v1/credentials/{credential.pk}/test/")

    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert "RuntimeError" in response.json()["message"]
    assert SECRET not in response.content.decode()


def test_the_test_request_refuses_unknown_fields(api_as, alice, credential):
    response = api_as(alice).post(f"/api/v1/credentials/{credential.pk}/test/", {"options": {}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "$.options"
    assert Credential.objects.get().last_tested_at is None


def test_the_page_button_shows_latency_or_the_error(client, alice, credential, monkeypatch):
    client.force_login(alice)

    ok = client.post(f"/settings/credentials/{credential.pk}/test/", follow=True).content.decode()
    monkeypatch.setattr(MockProvider, "check", lambda self: (_ for _ in ()).throw(
        ProviderError("authentication failed", status=401, provider="mock")))
    failed = client.post(f"/settings/credentials/{credential.pk}/test/",
                         {"next": f"/settings/credentials/{credential.pk}/"}, follow=True)

    assert "connected in" in ok and " ms" in ok
    assert failed.request["PATH_INFO"] == f"/settings/credentials/{credential.pk}/"
    html = failed.content.decode()
    assert "failed its test" in html and "authentication failed" in html
    assert "Failed</span>" in html  # the status is written out, not only coloured
    assert SECRET not in html


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_real_adapter_checks_the_key_against_the_vendor_api(api_as, acme, alice, provider):
    from providers.fake_server import FakeLLMServer

    good, wrong = "sk-good-key-0123456789abcd", "sk-wrong-key-0123456789wxyz"
    with FakeLLMServer(keys=[good]) as server:
        base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
        ok = Credential.add(acme, name="good", provider=provider, secret=good, base_url=base_url)
        bad = Credential.add(acme, name="bad", provider=provider, secret=wrong, base_url=base_url)
        client = api_as(alice)

        passed = client.post(f"/api/v1/credentials/{ok.pk}/test/")
        failed = client.post(f"/api/v1/credentials/{bad.pk}/test/")

    assert passed.json()["ok"] is True, passed.json()
    assert failed.json()["ok"] is False
    assert "authentication failed" in failed.json()["message"]
    assert wrong not in failed.content.decode() and wrong[-12:] not in failed.content.decode()
    bad.refresh_from_db()
    assert bad.last_test_ok is False and wrong not in bad.last_test_message
