"""Test connection: the smallest real call, its latency, and what a bad key says."""
import pytest

from providers.base import ProviderError

from .conftest import KEY


@pytest.mark.parametrize("name", ["openai", "anthropic", "ollama"])
def test_it_lists_models_and_returns_the_latency(make_provider, fake_llm, name):
    latency_ms = make_provider(name).check()

    assert isinstance(latency_ms, float) and latency_ms > 0
    [request] = fake_llm.requests
    assert (request["method"], request["path"], request["status"]) == ("GET", "/v1/models", 200)


@pytest.mark.parametrize("name", ["openai", "anthropic", "ollama"])
def test_a_wrong_key_says_authentication_failed(make_provider, fake_llm, name):
    wrong = "sk-not-the-right-one-1234567890"

    with pytest.raises(ProviderError) as caught:
        make_provider(name, secret=wrong).check()

    assert "authentication failed" in str(caught.value)
    assert wrong not in str(caught.value) and KEY not in str(caught.value)
    assert caught.value.retryable is False


def test_an_unavailable_vendor_fails_the_check_retryably(make_provider, fake_llm):
    fake_llm.script(endpoint="models", fault="server_error")

    with pytest.raises(ProviderError) as caught:
        make_provider("openai").check()

    assert caught.value.retryable is True and caught.value.status == 500
