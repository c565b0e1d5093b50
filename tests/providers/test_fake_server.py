"""The fake server itself: rules by prompt, model and count, scripting from another process
over HTTP, and what it records."""
import json
import urllib.error
import urllib.request

import anthropic
import pytest
from pydantic import ValidationError

from providers.base import ChatRequest, ProviderError
from providers.fake_server import FakeLLMControl, FakeLLMServer

from .conftest import KEY


def test_a_rule_applies_the_number_of_times_it_was_given(make_provider, fake_llm):
    fake_llm.script(fault="server_error", times=2)
    provider = make_provider("openai")

    for _ in range(2):
        with pytest.raises(ProviderError):
            provider.complete(ChatRequest(model="m", prompt="hi"))
    completion = provider.complete(ChatRequest(model="m", prompt="hi"))

    assert completion.text.startswith("[fake m]")
    assert [r["fault"] for r in fake_llm.requests] == ["server_error", "server_error", None]
    assert fake_llm.rules()[0]["used"] == 2


def test_rules_pick_requests_by_prompt_and_model(make_provider, fake_llm):
    fake_llm.script(match=r"weather in \w+", model="gpt-4o", reply="Sunny.")
    fake_llm.script(match="weather", reply="Ask someone else.")
    provider = make_provider("openai")

    by_model = provider.complete(ChatRequest(model="gpt-4o", prompt="The WEATHER in Paris?"))
    other_model = provider.complete(ChatRequest(model="gpt-4o-mini", prompt="The weather in Paris?"))
    no_match = provider.complete(ChatRequest(model="gpt-4o", prompt="Hello"))

    assert (by_model.text, other_model.text) == ("Sunny.", "Ask someone else.")
    assert no_match.text.startswith("[fake gpt-4o]")


def test_answers_are_deterministic(make_provider):
    provider = make_provider("openai")

    first = provider.complete(ChatRequest(model="m", prompt="same prompt"))
    second = provider.complete(ChatRequest(model="m", prompt="same prompt"))
    other = provider.complete(ChatRequest(model="m", prompt="other prompt"))

    assert first.text == second.text != other.text


def test_another_process_scripts_it_over_http(make_provider, fake_llm):
    control = FakeLLMControl(fake_llm.url)

    control.script({"match": "hello", "reply": "Hi from the script."}, fault="rate_limit", match="flaky", times=1)
    answer = make_provider("anthropic").complete(ChatRequest(model="claude-haiku-4-5", prompt="hello"))
    with pytest.raises(ProviderError) as caught:
        make_provider("anthropic").complete(ChatRequest(model="claude-haiku-4-5", prompt="a flaky call"))

    assert answer.text == "Hi from the script."
    assert caught.value.retryable is True
    seen = control.requests
    assert [(r["prompt"], r["status"]) for r in seen] == [("hello", 200), ("a flaky call", 429)]
    control.reset()
    assert control.requests == [] and fake_llm.rules() == []


def test_a_bad_rule_is_refused_with_every_problem_listed(fake_llm):
    request = urllib.request.Request(f"{fake_llm.url}/_fake/script", method="POST",
                                     data=json.dumps([{"fault": "explode"}, {"match": "(", "times": 0}]).encode())

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 400
    error = json.loads(caught.value.read())["error"]
    assert {tuple(d["path"]) for d in error["details"]} == {(0, "fault"), (1, "match"), (1, "times")}
    assert fake_llm.rules() == []
    with pytest.raises(ValidationError):
        fake_llm.script(fault="explode")
    with pytest.raises(ValueError, match="fault"):
        FakeLLMControl(fake_llm.url).script(fault="explode")


def test_it_records_requests_without_their_keys(make_provider, fake_llm):
    make_provider("openai").complete(ChatRequest(model="m", prompt="question", system="rules"))
    make_provider("anthropic").complete(ChatRequest(model="claude-haiku-4-5", prompt="question", stream=True))

    openai_call, anthropic_call = fake_llm.requests
    assert (openai_call["api"], openai_call["path"]) == ("openai", "/v1/chat/completions")
    assert openai_call["system"] == "rules"
    assert (anthropic_call["api"], anthropic_call["path"]) == ("anthropic", "/v1/messages")
    assert anthropic_call["stream"] is True
    for call in (openai_call, anthropic_call):
        assert not {"authorization", "x-api-key", "api-key"} & set(call["headers"])
        assert KEY not in json.dumps(call)


def test_it_refuses_sampling_parameters_as_anthropics_current_api_does(fake_llm):
    client = anthropic.Anthropic(api_key=KEY, base_url=fake_llm.anthropic_base_url, max_retries=0)

    with pytest.raises(anthropic.BadRequestError, match="temperature: Extra inputs are not permitted"):
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                               extra_body={"temperature": 1.0})


def test_a_stopped_server_answers_nothing_even_on_open_connections(make_provider):
    server = FakeLLMServer().start()
    provider = make_provider("openai", base_url=server.openai_base_url)
    provider.complete(ChatRequest(model="m", prompt="hi"))  # leaves a pooled keep-alive connection

    server.stop()

    with pytest.raises(ProviderError, match="connection failed"):
        provider.complete(ChatRequest(model="m", prompt="hi"))
