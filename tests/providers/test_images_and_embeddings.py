"""Images and embeddings through the OpenAI SDK."""
import struct
import zlib

import pytest

from providers.base import ProviderError


def test_it_generates_a_png_with_its_usage(make_provider, fake_llm):
    provider = make_provider("openai", model="gpt-image-1", options={"image_quality": "low"})

    image = provider.generate_image("a lighthouse at dusk", size="1024x1024")

    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image.data[16:24])
    assert (width, height) == (16, 16)
    # A real PNG: its IHDR chunk's checksum holds.
    assert struct.unpack(">I", image.data[29:33])[0] == zlib.crc32(image.data[12:29])
    assert image.media_type == "image/png"
    assert (image.provider, image.model) == ("openai", "gpt-image-1")
    assert image.usage.input_tokens == len("a lighthouse at dusk") // 4 and image.usage.output_tokens == 272
    [request] = fake_llm.requests
    assert request["body"] == {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "n": 1,
                               "size": "1024x1024", "quality": "low"}


def test_dall_e_is_asked_for_the_image_itself_rather_than_a_link(make_provider, fake_llm):
    image = make_provider("openai", model="dall-e-3").generate_image("a lighthouse")

    assert image.data.startswith(b"\x89PNG")
    assert fake_llm.requests[0]["body"]["response_format"] == "b64_json"


def test_an_image_failure_is_classified_like_a_chat_failure(make_provider, fake_llm):
    fake_llm.script(endpoint="images", fault="rate_limit", retry_after=5)

    with pytest.raises(ProviderError) as caught:
        make_provider("openai", model="gpt-image-1").generate_image("a lighthouse")

    assert caught.value.retryable is True and caught.value.retry_after == 5


def test_anthropic_does_not_generate_images(make_provider, fake_llm):
    with pytest.raises(ProviderError, match="anthropic does not generate images") as caught:
        make_provider("anthropic").generate_image("a lighthouse")

    assert caught.value.retryable is False
    assert fake_llm.requests == []


def test_it_embeds_texts_in_order(make_provider, fake_llm):
    provider = make_provider("openai", model="text-embedding-3-small")

    result = provider.embed(["alpha", "beta", "alpha"])

    assert len(result.vectors) == 3
    assert all(len(vector) == 8 for vector in result.vectors)
    assert result.vectors[0] == pytest.approx(result.vectors[2])  # same text, same vector
    assert result.vectors[0] != pytest.approx(result.vectors[1])
    assert result.usage.input_tokens == 3
    # The SDK asks for base64 (compact) and decodes it.
    assert fake_llm.requests[0]["body"]["encoding_format"] == "base64"


def test_it_passes_the_dimensions_option(make_provider, fake_llm):
    result = make_provider("openai", model="text-embedding-3-small", options={"dimensions": 4}).embed(["alpha"])

    assert len(result.vectors[0]) == 4
    assert fake_llm.requests[0]["body"]["dimensions"] == 4


def test_no_texts_means_no_call(make_provider, fake_llm):
    result = make_provider("openai", model="text-embedding-3-small").embed([])

    assert result.vectors == []
    assert fake_llm.requests == []


def test_a_compatible_server_needs_the_embedding_model_named(make_provider, fake_llm):
    with pytest.raises(ProviderError, match="no model"):
        make_provider("ollama", model="").embed(["alpha"])

    assert fake_llm.requests == []
