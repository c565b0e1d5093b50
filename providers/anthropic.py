"""Anthropic's Messages API through the official SDK: plain or streamed, with a system prompt
and structured output.

Structured output is a forced tool call: the JSON schema becomes the input schema of one
tool the model must call, and the answer is that call's input as JSON text. Unlike the newer
output_config format, that works on every Claude model and on Anthropic-compatible servers.

The SDK client never retries (`max_retries=0`): the engine retries by the node's policy and
honours `retry_after`. Its errors become ProviderError through `base.sdk_error`; an error
event in the middle of a stream (overloaded_error, say) is classified by its type.

Source options read here:
- `timeout_s`: wait for the vendor when the node sets no timeout (default 600).
- `max_tokens`: the output limit when the node sets none (default 4096; the API needs one).
- `schema_name`: the name of the structured-output tool (default "output").
"""
import functools
import json
import time

import anthropic

from .base import (_never, ChatRequest, Completion, Interrupted, ProviderError, SdkProvider, Usage, connection_lost,
                   estimate_tokens, interruptible, object_schema, register, unwrap_json)

ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096
# stop_reason -> the finish_reason Completion uses (OpenAI's words).
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length",
                  "refusal": "content_filter"}


@functools.lru_cache(maxsize=32)
def _sdk_client(base_url, api_key):
    # One client, and so one connection pool, per endpoint and key, shared by every thread.
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)


@register
class AnthropicProvider(SdkProvider):
    name = "anthropic"
    sdk = anthropic

    # Plumbing -------------------------------------------------------------------------

    def endpoint(self):
        """The base URL calls go to: the source's `base_url`, else Anthropic's."""
        return self.base_url or ANTHROPIC_URL

    def _client(self):
        if not self.secret:
            raise ProviderError("no API key: give the source a credential or api_key_env",
                                provider=self.name, model=self.model)
        return _sdk_client(self.endpoint(), self.secret)

    # Messages -------------------------------------------------------------------------

    def complete(self, request: ChatRequest, *, on_delta=None, should_stop=_never) -> Completion:
        """The model's answer to `request`. With `request.stream`, text deltas (or, for a
        JSON schema, pieces of the JSON) go to `on_delta` as they arrive; `should_stop()` is
        checked while waiting and between events and raises Interrupted. A stream that ends
        before message_stop raises a retryable "stream cut" error: partial text is never
        returned. stop_reason "refusal" raises a permanent "the model refused" error.
        `request.temperature` is not sent: the API version this SDK speaks
        (2026-10-21) refuses every sampling parameter, at any value."""
        model = request.model or self.model
        timeout = self._timeout(request.timeout_s)
        client = self._client()
        params, tool, wrapped = self._params(request, model)
        if not request.stream:
            message = self._call(lambda: client.messages.create(**params, timeout=timeout),
                                 should_stop, model, timeout)
            text = self._text(message.content, tool)
            if message.stop_reason == "refusal":
                raise self._refused(text, model)
            reported = message.usage
            usage = self._usage(request, text, self._input_tokens(reported) if reported else None,
                                reported.output_tokens if reported else None)
            return Completion(text=unwrap_json(text, wrapped), usage=usage, provider=self.name,
                              model=message.model or model, finish_reason=self._finish(message.stop_reason))
        return self._stream(client, params, tool, wrapped, request, model, timeout, on_delta, should_stop)

    def _params(self, request, model):
        params = {
            "model": model,
            "max_tokens": request.max_tokens or self.options.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system:
            params["system"] = request.system
        tool = None
        wrapped = False
        if request.json_schema is not None:
            schema, wrapped = object_schema(request.json_schema)
            tool = self.options.get("schema_name", "output")
            params["tools"] = [{"name": tool, "description": "Give the answer as this tool's input.",
                                "input_schema": schema}]
            params["tool_choice"] = {"type": "tool", "name": tool}
        return params, tool, wrapped

    def _stream(self, client, params, tool, wrapped, request, model, timeout, on_delta, should_stop):
        def produce(cancelled):
            with client.messages.create(**params, stream=True, timeout=timeout) as stream:
                for event in stream:
                    if cancelled.is_set():
                        return  # leaving the block closes the response
                    yield event

        parts = []
        served_model = model
        input_tokens = output_tokens = None
        stop_reason = None
        finished = False
        events = 0
        try:
            for event in interruptible(produce, should_stop, provider=self.name, model=model):
                events += 1
                if event.type == "message_start":
                    served_model = event.message.model or served_model
                    if event.message.usage is not None:
                        input_tokens = self._input_tokens(event.message.usage)
                        output_tokens = event.message.usage.output_tokens
                elif event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and not tool:
                        piece = delta.text
                    elif delta.type == "input_json_delta" and tool:
                        piece = delta.partial_json
                    else:
                        continue  # thinking, signatures, citations: not part of the answer
                    if piece:
                        parts.append(piece)
                        if on_delta is not None:
                            on_delta(piece)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    if event.usage is not None:
                        # Counts in message_delta are cumulative for the whole message.
                        output_tokens = event.usage.output_tokens
                        if getattr(event.usage, "input_tokens", None):
                            input_tokens = self._input_tokens(event.usage)
                elif event.type == "message_stop":
                    finished = True
        except Interrupted:
            raise
        except Exception as exc:
            if events and connection_lost(exc, anthropic):
                raise ProviderError(f"stream cut after {events} events: {self._error(exc, model, timeout).message}",
                                    retryable=True, provider=self.name, model=model) from None
            raise self._error(exc, model, timeout) from None
        if not finished:
            raise ProviderError(f"stream cut after {events} events (no message_stop)", retryable=True,
                                provider=self.name, model=model)
        text = "".join(parts)
        if stop_reason == "refusal":
            raise self._refused(text, model)
        if tool and not text:
            text = "{}"  # a tool called with no arguments streams no JSON at all
        usage = self._usage(request, text, input_tokens, output_tokens)
        return Completion(text=unwrap_json(text, wrapped), usage=usage, provider=self.name, model=served_model,
                          finish_reason=self._finish(stop_reason))

    def _refused(self, text, model):
        # A refusal is the model's considered answer to this prompt: asking again rarely helps.
        detail = f": {text.strip()}" if text.strip() else ""
        return ProviderError(f"the model refused{detail}", provider=self.name, model=model)

    @staticmethod
    def _text(content, tool):
        if tool:
            for block in content:
                if block.type == "tool_use" and block.name == tool:
                    return json.dumps(block.input)
        return "".join(block.text for block in content if block.type == "text")

    @staticmethod
    def _input_tokens(usage):
        # Cached prompt tokens are counted apart from input_tokens; the prompt is all of them.
        return ((usage.input_tokens or 0) + (getattr(usage, "cache_creation_input_tokens", None) or 0)
                + (getattr(usage, "cache_read_input_tokens", None) or 0))

    @staticmethod
    def _finish(stop_reason):
        return FINISH_REASONS.get(stop_reason, stop_reason or "stop")

    @staticmethod
    def _usage(request, text, input_tokens, output_tokens):
        """The vendor's counts, or estimates (marked) for what it did not report."""
        if input_tokens and output_tokens is not None and (output_tokens or not text):
            return Usage(input_tokens, output_tokens)
        return Usage(input_tokens or estimate_tokens(request.system + request.prompt), estimate_tokens(text),
                     estimated=True)

    # Test connection ------------------------------------------------------------------

    def check(self) -> float:
        """List one model: proves the URL and the key without generating (and paying for)
        anything. Returns the latency in milliseconds."""
        client = self._client()
        started = time.monotonic()
        self._call(lambda: client.models.list(limit=1, timeout=20), _never, self.model, 20)
        return (time.monotonic() - started) * 1000
