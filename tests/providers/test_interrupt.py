"""should_stop() (cancel, shutdown, a timeout) interrupts a call while it streams or waits."""
import pytest

from providers.base import ChatRequest, Interrupted

VENDORS = ["openai", "anthropic"]


@pytest.mark.parametrize("name", VENDORS)
def test_it_stops_a_stream_between_chunks(make_provider, fake_llm, name):
    fake_llm.script(reply="one two three four five six seven eight")
    deltas = []

    with pytest.raises(Interrupted):
        make_provider(name).complete(ChatRequest(model="m", prompt="count", stream=True),
                                     on_delta=deltas.append, should_stop=lambda: bool(deltas))

    assert deltas == ["one "]


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_it_stops_waiting_for_a_vendor_that_does_not_answer(make_provider, fake_llm, name, stream):
    # The vendor would answer after 30 s and the client would wait 60 s: only should_stop
    # can end this call early, here as soon as the request has reached the server.
    fake_llm.script(fault="hang", hang_s=30)

    with pytest.raises(Interrupted):
        make_provider(name).complete(ChatRequest(model="m", prompt="hello", stream=stream, timeout_s=60),
                                     should_stop=lambda: bool(fake_llm.requests))

    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("name", VENDORS)
def test_a_call_stopped_before_it_starts_never_reaches_the_vendor(make_provider, fake_llm, name):
    with pytest.raises(Interrupted):
        make_provider(name).complete(ChatRequest(model="m", prompt="hello", stream=True), should_stop=lambda: True)

    assert fake_llm.requests == []


def test_it_stops_waiting_for_an_image(make_provider, fake_llm):
    fake_llm.script(fault="hang", hang_s=30)

    with pytest.raises(Interrupted):
        make_provider("openai", model="gpt-image-1").generate_image(
            "a lighthouse", timeout_s=60, should_stop=lambda: bool(fake_llm.requests))
