"""OpenAI through the official SDK: chat (plain or streamed, with JSON-schema structured
output), image generation and embeddings.

The SDK client never retries (`max_retries=0`): the engine retries by the node's policy and
honours `retry_after`. Its errors become ProviderError through `base.sdk_error`.

Source options read here:
- `timeout_s`: wait for the vendor when the node sets no timeout (default 600).
- `strict_schema`: ask for strict JSON-schema decoding (the schema must then follow
  OpenAI's strict rules: every property required, additionalProperties false).
- `schema_name`: the name sent with a JSON schema (default "output").
- `structured_output`: "json_schema" (default) or "json_object", JSON mode with the schema
  given in the system prompt, for servers that know no schemas.
- `stream_usage`: ask streams to end with a usage chunk (default true).
- `image_quality`, `image_background`, `image_format`: passed to image generation as
  quality, background and output_format.
- `dimensions`: the length of embedding vectors, for models that can shorten them.
"""
import base64
import functools
import json
import time

import openai

from .base import (_never, ChatRequest, Completion, Embeddings, ImageResult, Interrupted, ProviderError, SdkProvider,
                   Usage, connection_lost, estimate_tokens, interruptible, object_schema, register,
                   unwrap_json)

OPENAI_URL = "https://api.openai.com/v1"
EMBEDDING_BATCH = 2048  # the most inputs OpenAI takes in one embeddings request


@functools.lru_cache(maxsize=32)
def _sdk_client(base_url, api_key):
    # One client, and so one connection pool, per endpoint and key, shared by every thread:
    # a fresh client per call would pay a TCP and TLS handshake on every step.
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)


@register
class OpenAIProvider(SdkProvider):
    name = "openai"
    sdk = openai
    # What an OpenAI-compatible subclass may change.
    default_base_url = OPENAI_URL
    needs_key = True
    max_tokens_param = "max_completion_tokens"  # newer OpenAI models refuse "max_tokens"
    stream_usage = True  # sends stream_options.include_usage
    structured_output = "json_schema"  # or "json_object": JSON mode, the schema told in the system prompt
    default_image_model = "gpt-image-1"
    default_embedding_model = "text-embedding-3-small"

    # Plumbing -------------------------------------------------------------------------

    def endpoint(self):
        """The base URL calls go to: the source's `base_url`, else the vendor's."""
        return self.base_url or self.default_base_url

    def _client(self):
        base_url = self.endpoint()
        if not self.secret and self.needs_key:
            raise ProviderError("no API key: give the source a credential or api_key_env",
                                provider=self.name, model=self.model)
        # Endpoints that need no key still get one: the SDK refuses to start without it.
        return _sdk_client(base_url, self.secret or "unused")

    def _model_for(self, default, what):
        model = self.model or default
        if not model:
            raise ProviderError(f"no model: give the source the model that {what}", provider=self.name)
        return model

    # Chat -----------------------------------------------------------------------------

    def complete(self, request: ChatRequest, *, on_delta=None, should_stop=_never) -> Completion:
        """The model's answer to `request`. With `request.stream`, text deltas go to
        `on_delta` as they arrive; `should_stop()` is checked while waiting and between chunks
        and raises Interrupted. A stream that ends before its finish_reason raises a retryable
        "stream cut" error: partial text is never returned. A refusal (OpenAI's `refusal`
        field, with no content) raises a permanent "the model refused" error. Usage is the
        vendor's, or an estimate marked `estimated` when it reported none."""
        model = request.model or self.model
        timeout = self._timeout(request.timeout_s)
        client = self._client()
        params, wrapped = self._chat_params(request, model)
        if not request.stream:
            response = self._call(lambda: client.chat.completions.create(**params, timeout=timeout),
                                  should_stop, model, timeout)
            if not response.choices:
                raise ProviderError("malformed response: no choices", retryable=True, provider=self.name, model=model)
            choice = response.choices[0]
            text = choice.message.content or ""
            if not text and choice.message.refusal:
                raise self._refused(choice.message.refusal, model)
            reported = response.usage
            usage = self._usage(request, text, reported.prompt_tokens if reported else None,
                                reported.completion_tokens if reported else None)
            return Completion(text=unwrap_json(text, wrapped), usage=usage, provider=self.name,
                              model=response.model or model, finish_reason=choice.finish_reason or "stop")
        return self._stream(client, params, wrapped, request, model, timeout, on_delta, should_stop)

    def _chat_params(self, request, model):
        messages = []
        system = request.system
        params = {"model": model}
        wrapped = False
        if request.json_schema is not None:
            schema, wrapped = object_schema(request.json_schema)
            if self.options.get("structured_output", self.structured_output) == "json_object":
                # JSON mode checks only that the answer is JSON; the schema goes in the prompt
                # (and the prompt must mention JSON for these vendors to accept the mode).
                system = (f"{system}\n\n" if system else "") + (
                    "Reply with one JSON object that matches this JSON Schema, and nothing else:\n"
                    + json.dumps(schema))
                params["response_format"] = {"type": "json_object"}
            else:
                params["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": self.options.get("schema_name", "output"), "schema": schema,
                    "strict": bool(self.options.get("strict_schema", False))}}
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": request.prompt})
        params["messages"] = messages
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens:
            params[self.max_tokens_param] = request.max_tokens
        return params, wrapped

    def _stream(self, client, params, wrapped, request, model, timeout, on_delta, should_stop):
        stream_params = dict(params, stream=True)
        if self.options.get("stream_usage", self.stream_usage):
            stream_params["stream_options"] = {"include_usage": True}

        def produce(cancelled):
            with client.chat.completions.create(**stream_params, timeout=timeout) as stream:
                for chunk in stream:
                    if cancelled.is_set():
                        return  # leaving the block closes the response
                    yield chunk

        parts = []
        refusal = []
        finish_reason = None
        served_model = model
        input_tokens = output_tokens = None
        chunks = 0
        try:
            for chunk in interruptible(produce, should_stop, provider=self.name, model=model):
                chunks += 1
                served_model = chunk.model or served_model
                if chunk.usage is not None:
                    input_tokens, output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = choice.delta.content if choice.delta else None
                if piece:
                    parts.append(piece)
                    if on_delta is not None:
                        on_delta(piece)
                if choice.delta and choice.delta.refusal:
                    refusal.append(choice.delta.refusal)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        except Interrupted:
            raise
        except Exception as exc:
            if chunks and connection_lost(exc, openai):
                raise ProviderError(f"stream cut after {chunks} chunks: {self._error(exc, model, timeout).message}",
                                    retryable=True, provider=self.name, model=model) from None
            raise self._error(exc, model, timeout) from None
        if finish_reason is None:
            # The SDK ends quietly when the connection closes before [DONE]; the finish_reason
            # every complete stream carries is what tells a cut stream from a finished one.
            raise ProviderError(f"stream cut after {chunks} chunks (no finish_reason)", retryable=True,
                                provider=self.name, model=model)
        text = "".join(parts)
        if not text and refusal:
            raise self._refused("".join(refusal), model)
        usage = self._usage(request, text, input_tokens, output_tokens)
        return Completion(text=unwrap_json(text, wrapped), usage=usage, provider=self.name, model=served_model,
                          finish_reason=finish_reason)

    def _refused(self, reason, model):
        # A refusal is the model's considered answer to this prompt: asking again rarely helps.
        return ProviderError(f"the model refused: {reason}", provider=self.name, model=model)

    @staticmethod
    def _usage(request, text, input_tokens, output_tokens):
        """The vendor's counts, or estimates (marked) for what it did not report."""
        if input_tokens is not None and output_tokens is not None and (output_tokens or not text):
            return Usage(input_tokens, output_tokens)
        return Usage(input_tokens if input_tokens else estimate_tokens(request.system + request.prompt),
                     estimate_tokens(text), estimated=True)

    # Images and embeddings --------------------------------------------------------------

    def generate_image(self, prompt, *, size=None, should_stop=_never, timeout_s=None) -> ImageResult:
        """One image for `prompt` as PNG bytes (unless options ask for another format). Token
        usage is reported by GPT Image models; DALL·E models bill per image and report none."""
        model = self._model_for(self.default_image_model, "generates images")
        timeout = self._timeout(timeout_s)
        client = self._client()
        params = {"model": model, "prompt": prompt, "n": 1}
        if size:
            params["size"] = size
        if model.startswith("dall-e"):
            params["response_format"] = "b64_json"  # DALL·E answers with a URL unless asked
        for option, param in (("image_quality", "quality"), ("image_background", "background"),
                              ("image_format", "output_format")):
            if self.options.get(option):
                params[param] = self.options[option]
        response = self._call(lambda: client.images.generate(**params, timeout=timeout), should_stop, model, timeout)
        item = response.data[0] if response.data else None
        if item is None or not item.b64_json:
            raise ProviderError("malformed response: no image data", retryable=True, provider=self.name, model=model)
        try:
            data = base64.b64decode(item.b64_json, validate=True)
        except ValueError:
            raise ProviderError("malformed response: the image is not base64", retryable=True,
                                provider=self.name, model=model) from None
        usage = Usage()
        if response.usage is not None:
            usage = Usage(response.usage.input_tokens or 0, response.usage.output_tokens or 0)
        fmt = response.output_format or self.options.get("image_format") or "png"
        media_type = "image/svg+xml" if fmt == "svg" else f"image/{fmt}"
        return ImageResult(data=data, media_type=media_type, usage=usage, provider=self.name, model=model,
                           revised_prompt=item.revised_prompt or "")

    def embed(self, texts, *, should_stop=_never, timeout_s=None) -> Embeddings:
        """One vector per text, in order, in batches of at most 2,048 inputs."""
        model = self._model_for(self.default_embedding_model, "computes embeddings")
        texts = list(texts)
        if not texts:
            return Embeddings(vectors=[], provider=self.name, model=model)
        timeout = self._timeout(timeout_s)
        client = self._client()
        extra = {"dimensions": self.options["dimensions"]} if self.options.get("dimensions") else {}
        vectors = []
        usage = Usage()
        for start in range(0, len(texts), EMBEDDING_BATCH):
            batch = texts[start:start + EMBEDDING_BATCH]
            response = self._call(lambda: client.embeddings.create(model=model, input=batch, timeout=timeout, **extra),
                                  should_stop, model, timeout)
            if len(response.data) != len(batch):
                raise ProviderError(f"malformed response: {len(response.data)} vectors for {len(batch)} texts",
                                    retryable=True, provider=self.name, model=model)
            vectors += [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
            if response.usage is not None:
                usage.input_tokens += response.usage.prompt_tokens
        return Embeddings(vectors=vectors, usage=usage, provider=self.name, model=model)

    # Test connection ------------------------------------------------------------------

    def check(self) -> float:
        """List the endpoint's models: proves the URL and the key without generating (and
        paying for) anything, and works on servers that load a model per request. Returns
        the latency in milliseconds."""
        model = self.model
        client = self._client()
        started = time.monotonic()
        self._call(lambda: client.models.list(timeout=20), _never, model, 20)
        return (time.monotonic() - started) * 1000
