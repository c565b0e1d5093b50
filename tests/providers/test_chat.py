"""Plain and streamed chat through the real OpenAI and Anthropic SDKs, against the fake server."""
import pytest

from providers.base import ChatRequest

from .conftest import KEY

VENDORS = ["openai", "anthropic", "ollama"]


@pytest.mark.parametrize("name", VENDORS)
def test_it_answers_a_plain_prompt_with_the_vendors_usage(make_provider, fake_llm, name):
    fake_llm.script(match="capital of France", reply="Paris is the capital of France.")
    provider = make_provider(name)

    completion = provider.complete(ChatRequest(model=provider.model, prompt="What is the capital of France?"))

    assert completion.text == "Paris is the capital of France."
    assert completion.provider == name and completion.model == provider.model
    assert completion.finish_reason == "stop"
    # The fake server counts a token per four characters, as a vendor reports its own count.
    assert completion.usage.input_tokens == len("What is the capital of France?") // 4
    assert completion.usage.output_tokens == len(completion.text) // 4
    assert completion.usage.estimated is False
    [request] = fake_llm.requests
    assert request["prompt"] == "What is the capital of France?"
    assert request["model"] == provider.model and request["stream"] is False and request["status"] == 200


@pytest.mark.parametrize("name", VENDORS)
def test_it_streams_deltas_in_order_and_records_usage(make_provider, fake_llm, name):
    fake_llm.script(reply="one two three four five")
    provider = make_provider(name)
    deltas = []

    completion = provider.complete(ChatRequest(model=provider.model, prompt="count", stream=True),
                                   on_delta=deltas.append)

    assert deltas == ["one ", "two ", "three ", "four ", "five"]
    assert completion.text == "one two three four five"
    assert completion.usage.output_tokens == len(completion.text) // 4
    assert completion.usage.estimated is False
    [request] = fake_llm.requests
    assert request["stream"] is True


@pytest.mark.parametrize("name", VENDORS)
def test_it_sends_the_system_prompt_apart_from_the_prompt(make_provider, fake_llm, name):
    provider = make_provider(name)

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Hello", system="Answer in French."))

    [request] = fake_llm.requests
    assert request["system"] == "Answer in French."
    assert request["prompt"] == "Hello"
    # The default answer is derived from everything the model was given.
    assert completion.text.startswith(f"[fake {provider.model}] Response ")


@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_it_passes_temperature_and_the_output_limit(make_provider, fake_llm, name):
    provider = make_provider(name)

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Write a long story", temperature=0.2,
                                               max_tokens=3))

    body = fake_llm.requests[0]["body"]
    assert body["temperature"] == 0.2
    # OpenAI's newer models refuse max_tokens; compatible servers know only max_tokens.
    limit_field = "max_completion_tokens" if name == "openai" else "max_tokens"
    assert body[limit_field] == 3
    assert completion.finish_reason == "length"
    assert len(completion.text) == 12


def test_anthropic_gets_the_output_limit_but_no_temperature_which_its_api_refuses(make_provider, fake_llm):
    provider = make_provider("anthropic")

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Write a long story", temperature=0.2,
                                               max_tokens=3))

    [request] = fake_llm.requests
    assert request["status"] == 200
    assert "temperature" not in request["body"]
    assert request["body"]["max_tokens"] == 3
    assert completion.finish_reason == "length"


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_it_estimates_usage_the_vendor_did_not_report(make_provider, fake_llm, name, stream):
    fake_llm.script(reply="an answer of some forty characters long!", usage=False)
    provider = make_provider(name)

    completion = provider.complete(ChatRequest(model=provider.model, prompt="a prompt of 24 characters", stream=stream),
                                   on_delta=lambda text: None)

    assert completion.text == "an answer of some forty characters long!"
    assert completion.usage.estimated is True
    assert completion.usage.input_tokens == 6
    assert completion.usage.output_tokens == 10


@pytest.mark.parametrize("name", VENDORS)
def test_it_never_sends_the_key_anywhere_the_server_records(make_provider, fake_llm, name):
    make_provider(name).complete(ChatRequest(model="m", prompt="hi", stream=True))

    [request] = fake_llm.requests
    assert request["status"] == 200  # the key was sent and accepted...
    assert KEY not in repr(request)  # ...in a header the record leaves out
