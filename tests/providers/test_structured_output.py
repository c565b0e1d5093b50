"""JSON-schema output: OpenAI's response_format, Anthropic's forced tool call, and JSON mode
for compatible vendors that know no schemas."""
import json

import pytest

from providers.base import ChatRequest

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "role": {"enum": ["admin", "user"]}},
    "required": ["name", "age", "role"],
}


def test_openai_asks_for_the_schema_and_returns_the_json(make_provider, fake_llm):
    provider = make_provider("openai", options={"strict_schema": True, "schema_name": "person"})

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Describe Ada", json_schema=PERSON))

    # With nothing scripted the fake answers the simplest JSON that fits the schema.
    answer = json.loads(completion.text)
    assert answer["name"].startswith("[fake gpt-4o-mini]")
    assert (answer["age"], answer["role"]) == (0, "admin")
    response_format = fake_llm.requests[0]["body"]["response_format"]
    assert response_format == {"type": "json_schema",
                               "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


def test_anthropic_forces_a_tool_whose_input_is_the_answer(make_provider, fake_llm):
    fake_llm.script(match="Ada", reply={"name": "Ada Lovelace", "age": 36, "role": "admin"})
    provider = make_provider("anthropic")

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Describe Ada", json_schema=PERSON))

    assert json.loads(completion.text) == {"name": "Ada Lovelace", "age": 36, "role": "admin"}
    body = fake_llm.requests[0]["body"]
    assert body["tools"][0]["input_schema"] == PERSON
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_a_streamed_schema_answer_arrives_as_pieces_of_the_json(make_provider, fake_llm, name):
    fake_llm.script(reply={"name": "Ada Lovelace", "age": 36, "role": "admin"})
    provider = make_provider(name)
    deltas = []

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Describe Ada", json_schema=PERSON,
                                               stream=True), on_delta=deltas.append)

    assert len(deltas) > 1
    assert "".join(deltas) == completion.text
    assert json.loads(completion.text) == {"name": "Ada Lovelace", "age": 36, "role": "admin"}


@pytest.mark.parametrize("name", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_whose_root_is_not_an_object_is_wrapped_and_unwrapped(make_provider, fake_llm, name, stream):
    # Both vendors want an object at the root; the answer comes back as the list asked for.
    fake_llm.script(reply={"value": ["red", "green"]})
    provider = make_provider(name)

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Two colours", stream=stream,
                                               json_schema={"type": "array", "items": {"type": "string"}}),
                                   on_delta=lambda text: None)

    assert json.loads(completion.text) == ["red", "green"]
    body = fake_llm.requests[0]["body"]
    sent = body["response_format"]["json_schema"]["schema"] if name == "openai" else body["tools"][0]["input_schema"]
    assert sent["type"] == "object" and sent["required"] == ["value"]


def test_a_vendor_with_json_mode_only_gets_the_schema_in_the_system_prompt(make_provider, fake_llm):
    provider = make_provider("deepseek", model="deepseek-chat")

    completion = provider.complete(ChatRequest(model=provider.model, prompt="Describe Ada", system="Be exact.",
                                               json_schema=PERSON))

    body = fake_llm.requests[0]["body"]
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be exact.\n\n")
    assert json.dumps(PERSON) in system["content"]
    assert isinstance(json.loads(completion.text), dict)
