"""OpenAI-compatible vendors: each preset is a provider with its own base URL, and
"openai_compatible" takes any URL or a preset's."""
import pytest

from providers.base import ChatRequest, ProviderError, known_providers, provider_class
from providers.openai import OpenAIProvider
from providers.openai_compatible import OpenAICompatibleProvider

PRESET_URLS = {
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "lmstudio": "http://localhost:1234/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
}


@pytest.mark.parametrize("name,url", PRESET_URLS.items())
def test_each_preset_is_a_provider_with_its_vendors_base_url(name, url):
    provider = provider_class(name)(model="some-model")

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.name == name
    assert provider.endpoint() == url


@pytest.mark.parametrize("name,url", PRESET_URLS.items())
def test_the_generic_provider_takes_a_preset_by_name(name, url):
    provider = provider_class("openai_compatible")(model="some-model", options={"preset": name})

    assert provider.endpoint() == url


def test_a_sources_base_url_wins_over_the_presets():
    provider = provider_class("ollama")(model="llama3.2", base_url="http://gpu-box:11434/v1")

    assert provider.endpoint() == "http://gpu-box:11434/v1"


def test_the_vendors_own_urls_are_the_defaults():
    assert provider_class("openai")().endpoint() == "https://api.openai.com/v1"
    assert provider_class("anthropic")().endpoint() == "https://api.anthropic.com"


def test_the_generic_provider_needs_a_base_url_or_a_preset(make_provider, fake_llm):
    provider = provider_class("openai_compatible")(model="m")

    with pytest.raises(ProviderError, match="no base_url") as caught:
        provider.complete(ChatRequest(model="m", prompt="hi"))

    assert caught.value.retryable is False
    assert "ollama" in str(caught.value)  # it lists the presets


def test_an_unknown_preset_is_named_in_the_error():
    provider = provider_class("openai_compatible")(model="m", options={"preset": "olama"})

    with pytest.raises(ProviderError, match="unknown preset 'olama'"):
        provider.complete(ChatRequest(model="m", prompt="hi"))


def test_the_generic_provider_talks_to_any_compatible_url(make_provider, fake_llm):
    completion = make_provider("openai_compatible", model="my-model").complete(ChatRequest(model="my-model",
                                                                                          prompt="hi"))

    assert completion.provider == "openai_compatible"
    assert completion.text.startswith("[fake my-model]")


@pytest.mark.parametrize("name", ["ollama", "vllm", "lmstudio"])
def test_local_servers_need_no_key(make_provider, name):
    from providers.fake_server import FakeLLMServer

    with FakeLLMServer() as open_server:
        completion = make_provider(name, secret=None, base_url=open_server.openai_base_url).complete(
            ChatRequest(model="m", prompt="hi"))

    assert completion.text.startswith("[fake m]")


@pytest.mark.parametrize("name", ["lmstudio", "gemini"])
def test_presets_not_known_to_report_stream_usage_are_not_asked_and_estimate(make_provider, fake_llm, name):
    completion = make_provider(name).complete(ChatRequest(model="m", prompt="hello there", stream=True))

    assert "stream_options" not in fake_llm.requests[0]["body"]
    assert completion.usage.estimated is True


def test_the_stream_usage_option_overrides_the_preset(make_provider, fake_llm):
    completion = make_provider("lmstudio", options={"stream_usage": True}).complete(
        ChatRequest(model="m", prompt="hello there", stream=True))

    assert fake_llm.requests[0]["body"]["stream_options"] == {"include_usage": True}
    assert completion.usage.estimated is False


def test_every_vendor_is_registered():
    assert {"mock", "openai", "anthropic", "openai_compatible", *PRESET_URLS} <= set(known_providers())
    assert provider_class("openai") is OpenAIProvider


def test_an_unknown_provider_is_a_provider_error():
    with pytest.raises(ProviderError, match="unknown provider 'openia'"):
        provider_class("openia")
