"""Every kind of vendor failure becomes a ProviderError that says whether retrying can help,
how long the vendor asked us to wait, and never what the key is."""
import pytest

from providers.base import ChatRequest, ProviderError

from .conftest import KEY

VENDORS = ["openai", "anthropic"]


def _fail(provider, *, stream=False, **request):
    with pytest.raises(ProviderError) as caught:
        provider.complete(ChatRequest(model=provider.model, prompt="hello", stream=stream, **request),
                          on_delta=lambda text: None)
    return caught.value


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_rate_limit_is_retryable_after_the_time_the_vendor_asked(make_provider, fake_llm, name, stream):
    fake_llm.script(fault="rate_limit", retry_after=7)

    error = _fail(make_provider(name), stream=stream)

    assert error.retryable is True
    assert error.status == 429 and error.retry_after == 7
    assert "rate limited" in str(error) and name in str(error) and "HTTP 429" in str(error)


@pytest.mark.parametrize("name", VENDORS)
def test_a_rate_limit_without_retry_after_leaves_the_wait_to_the_engine(make_provider, fake_llm, name):
    fake_llm.script(fault="rate_limit")

    error = _fail(make_provider(name))

    assert error.retryable is True and error.retry_after is None


def test_an_exhausted_openai_quota_is_permanent(make_provider, fake_llm):
    fake_llm.script(fault="quota")

    error = _fail(make_provider("openai"))

    assert error.retryable is False
    assert error.status == 429
    assert "quota exceeded" in str(error)


def test_a_low_anthropic_credit_balance_is_permanent(make_provider, fake_llm):
    fake_llm.script(fault="quota")

    error = _fail(make_provider("anthropic"))

    assert error.retryable is False and error.status == 400
    assert "credit balance is too low" in str(error)


@pytest.mark.parametrize("name,fault,status,retryable,words", [
    ("openai", "server_error", 500, True, "server error"),
    ("anthropic", "server_error", 500, True, "server error"),
    ("openai", "overloaded", 503, True, "server error"),
    ("anthropic", "overloaded", 529, True, "overloaded"),
    ("openai", "bad_request", 400, False, "bad request"),
    ("anthropic", "bad_request", 400, False, "bad request"),
    ("openai", "not_found", 404, False, "unknown model"),
    ("anthropic", "not_found", 404, False, "unknown model"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_each_http_failure_is_classified(make_provider, fake_llm, name, fault, status, retryable, words, stream):
    fake_llm.script(fault=fault, message="what the vendor said")

    error = _fail(make_provider(name), stream=stream)

    assert (error.status, error.retryable) == (status, retryable)
    assert words in str(error)
    assert "what the vendor said" in str(error)  # the vendor's own message is passed on
    assert error.provider == name and error.model == make_provider(name).model


@pytest.mark.parametrize("name", VENDORS)
def test_a_server_error_with_retry_after_carries_it(make_provider, fake_llm, name):
    fake_llm.script(fault="overloaded", retry_after=3)

    error = _fail(make_provider(name))

    assert error.retryable is True and error.retry_after == 3


@pytest.mark.parametrize("name", VENDORS)
def test_a_hanging_vendor_times_out_retryably(make_provider, fake_llm, name):
    fake_llm.script(fault="hang", hang_s=30)

    error = _fail(make_provider(name), timeout_s=0.3)

    assert error.retryable is True
    assert "timed out after 0.3 s" in str(error)


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("abrupt", [False, True])
def test_a_cut_stream_is_a_retryable_error_not_a_short_answer(make_provider, fake_llm, name, abrupt):
    fake_llm.script(reply="one two three four five six", fault="cut", after_chunks=2, abrupt=abrupt)
    deltas = []

    with pytest.raises(ProviderError) as caught:
        make_provider(name).complete(ChatRequest(model="m", prompt="count", stream=True), on_delta=deltas.append)

    assert caught.value.retryable is True
    assert "stream cut" in str(caught.value)
    assert deltas == ["one ", "two "]  # what streamed before the cut was shown, not returned


@pytest.mark.parametrize("name", VENDORS)
def test_a_plain_answer_cut_half_way_is_a_retryable_error(make_provider, fake_llm, name):
    fake_llm.script(fault="cut")

    error = _fail(make_provider(name))

    assert error.retryable is True
    assert "connection failed" in str(error)


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_malformed_answer_is_a_retryable_error(make_provider, fake_llm, name, stream):
    fake_llm.script(fault="malformed", after_chunks=1)

    error = _fail(make_provider(name), stream=stream)

    assert error.retryable is True
    assert "malformed response" in str(error)


def test_an_overloaded_event_inside_an_anthropic_stream_is_retryable(make_provider, fake_llm):
    fake_llm.script(fault="stream_error", after_chunks=1)

    error = _fail(make_provider("anthropic"), stream=True)

    assert error.retryable is True
    assert error.status == 529 and "overloaded" in str(error)


def test_an_error_chunk_inside_an_openai_stream_is_retryable(make_provider, fake_llm):
    fake_llm.script(fault="stream_error", after_chunks=1)

    error = _fail(make_provider("openai"), stream=True)

    assert error.retryable is True
    assert error.status == 500 and "server error" in str(error)


@pytest.mark.parametrize("name", ["openai", "anthropic", "groq"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_wrong_key_fails_authentication_without_showing_the_key(make_provider, fake_llm, name, stream):
    wrong = "sk-wrong-key-9876543210zyxwvutsrq"

    error = _fail(make_provider(name, secret=wrong), stream=stream)

    assert error.retryable is False and error.status == 401
    assert "authentication failed" in str(error)
    # The fake server quotes the key it was given (OpenAI-style) in its 401 message.
    assert fake_llm.requests[0]["status"] == 401
    for text in (str(error), repr(error), error.message, repr(error.args)):
        assert wrong not in text and KEY not in text
    assert error.__suppress_context__  # the SDK's exception, with its message, is not chained on


@pytest.mark.parametrize("name", VENDORS)
def test_a_vendor_message_that_quotes_the_key_is_masked(make_provider, fake_llm, name):
    fake_llm.script(fault="bad_request", message=f"the key {KEY} may not use this model")

    error = _fail(make_provider(name))

    assert KEY not in str(error)
    assert "may not use this model" in str(error)


@pytest.mark.parametrize("name", ["openai", "anthropic", "groq"])
def test_a_cloud_vendor_without_a_key_fails_before_calling(make_provider, fake_llm, name):
    error = _fail(make_provider(name, secret=None))

    assert error.retryable is False
    assert "no API key" in str(error)
    assert fake_llm.requests == []


@pytest.mark.parametrize("name", VENDORS)
def test_an_unreachable_endpoint_is_a_retryable_connection_error(make_provider, name):
    from providers.fake_server import FakeLLMServer

    with FakeLLMServer() as gone:
        url = gone.openai_base_url if name == "openai" else gone.anthropic_base_url
    provider = make_provider(name, base_url=url)

    error = _fail(provider)

    assert error.retryable is True
    assert "connection failed" in str(error)


@pytest.mark.parametrize("name", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_is_a_permanent_error_with_the_models_reason(make_provider, fake_llm, name, stream):
    fake_llm.script(fault="refusal", reply="I won't write that.")
    deltas = []

    with pytest.raises(ProviderError) as caught:
        make_provider(name).complete(ChatRequest(model="m", prompt="something bad", stream=stream),
                                     on_delta=deltas.append)

    assert caught.value.retryable is False
    assert "the model refused: I won't write that." in str(caught.value)


@pytest.mark.parametrize("name", VENDORS)
def test_a_forbidden_call_fails_authentication_with_the_vendors_reason(make_provider, fake_llm, name):
    fake_llm.script(fault="bad_request", status=403, message="This project may not use this model.")

    error = _fail(make_provider(name))

    assert error.retryable is False and error.status == 403
    assert "authentication failed: permission denied: This project may not use this model." in str(error)
