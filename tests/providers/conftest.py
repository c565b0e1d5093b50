"""A fake OpenAI / Anthropic server per test, and providers pointed at it with a valid key."""
import pytest

from providers.base import provider_class
from providers.fake_server import FakeLLMServer

KEY = "sk-fake-test-0123456789abcdefXYZ"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "ollama": "llama3.2"}


@pytest.fixture
def fake_llm():
    with FakeLLMServer(keys=[KEY]) as server:
        yield server


@pytest.fixture
def make_provider(fake_llm):
    """make_provider(name, model=None, secret=KEY, options=None) -> that provider, its
    base_url set to the fake server (the OpenAI-style or the Anthropic-style one)."""

    def make(name, *, model=None, secret=KEY, options=None, base_url=None):
        if base_url is None:
            base_url = fake_llm.anthropic_base_url if name == "anthropic" else fake_llm.openai_base_url
        model = MODELS.get(name, "some-model") if model is None else model
        return provider_class(name)(model=model, options=options or {},
                                    secret=secret, base_url=base_url)

    return make
