"""The Provider interface every vendor adapter implements, and its error type.

A provider turns a `ChatRequest` into a `Completion`. It streams text deltas to `on_delta`
when asked, stops early when `should_stop()` says so (cancel, shutdown, timeout), and
raises `ProviderError` with `retryable` telling the engine whether trying again can help.
Providers that can also generate images or embeddings return `ImageResult` / `Embeddings`.

Below the interface: the registry (`register`, `provider_class`, `known_providers`), and what
the adapters that call a vendor SDK share: error classification (`sdk_error`, `http_error`,
`retry_after`, `redact`), calls that `should_stop()` can interrupt while the vendor keeps us
waiting (`interruptible`, `call_interruptibly`), and structured-output schemas
(`object_schema`, `unwrap_json`).
"""
import email.utils
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

# How long an adapter waits for a vendor when neither the node nor the source sets a timeout.
DEFAULT_TIMEOUT_S = 600.0


class ProviderError(Exception):
    """A failed call. `retryable` errors (rate limits, 5xx, timeouts, cut streams) may be
    tried again; permanent ones (bad request, auth, unknown model) may not."""

    def __init__(self, message, *, retryable=False, status=None, retry_after=None, provider="", model=""):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.provider = provider
        self.model = model

    def __str__(self):
        where = " ".join(part for part in (self.provider, self.model) if part)
        status = f" HTTP {self.status}" if self.status else ""
        return f"{where}{status}: {self.message}" if where or status else self.message


class Interrupted(ProviderError):
    """The call was stopped on purpose (cancel, shutdown or timeout); nothing is recorded."""

    def __init__(self, message="interrupted", **kwargs):
        kwargs.setdefault("retryable", True)
        super().__init__(message, **kwargs)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False


def estimate_tokens(text):
    """About one token per four characters (at least one for any text, none for ""): the
    tokenizers differ by vendor and the offline ones need files downloaded, so counts the
    vendor did not report are estimates and say so with Usage(estimated=True)."""
    return max(1, len(text) // 4) if text else 0


@dataclass
class ChatRequest:
    model: str
    prompt: str
    system: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: dict | None = None
    stream: bool = False
    # Stable across re-executions of one step, for providers that deduplicate.
    idempotency_key: str = ""
    timeout_s: float | None = None


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    finish_reason: str = "stop"


@dataclass
class ImageResult:
    """One generated image: the file's bytes (`media_type` says which format, PNG unless the
    source asked for another) and what the vendor reported about the call."""

    data: bytes
    media_type: str = "image/png"
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    revised_prompt: str = ""


@dataclass
class Embeddings:
    """One vector per input text, in the order of the inputs."""

    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""


def _never():
    return False


class Provider:
    """One vendor. Subclasses set `name` and implement `complete`."""

    name = ""

    def __init__(self, *, model="", options=None, secret=None, base_url=None):
        self.model = model
        self.options: dict[str, Any] = options or {}
        self.secret = secret
        self.base_url = base_url

    def complete(self, request: ChatRequest, *, on_delta: Callable[[str], None] | None = None,
                 should_stop: Callable[[], bool] = _never) -> Completion:
        raise NotImplementedError

    def generate_image(self, prompt: str, *, size: str | None = None, should_stop: Callable[[], bool] = _never,
                       timeout_s: float | None = None) -> ImageResult:
        """Generate one image for `prompt`; `size` is the vendor's "WIDTHxHEIGHT" (or "auto")."""
        raise ProviderError(f"{self.name} does not generate images", provider=self.name, model=self.model)

    def embed(self, texts: list[str], *, should_stop: Callable[[], bool] = _never,
              timeout_s: float | None = None) -> Embeddings:
        """One embedding vector per text (an empty list gives no vectors and makes no call)."""
        raise ProviderError(f"{self.name} does not compute embeddings", provider=self.name, model=self.model)

    def check(self) -> float:
        """Make the smallest real call this provider allows (test connection); returns its
        latency in milliseconds or raises ProviderError (401/403 say "authentication failed")."""
        started = time.monotonic()
        self.complete(ChatRequest(model=self.model, prompt="ping", max_tokens=1, timeout_s=20))
        return (time.monotonic() - started) * 1000


class SdkProvider(Provider):
    """A provider whose calls go through a vendor SDK module (`sdk`: openai, anthropic):
    its timeouts, its exceptions turned into ProviderError, and calls that honour
    `should_stop` while the vendor keeps us waiting."""

    sdk = None

    def _timeout(self, timeout_s):
        return float(timeout_s or self.options.get("timeout_s") or DEFAULT_TIMEOUT_S)

    def _error(self, exc, model, timeout):
        """The ProviderError for `exc`, or `exc` itself when it is not a vendor failure."""
        if isinstance(exc, ProviderError):
            return exc
        return sdk_error(exc, self.sdk, provider=self.name, model=model, secret=self.secret, timeout_s=timeout) or exc

    def _call(self, call, should_stop, model, timeout):
        try:
            return call_interruptibly(call, should_stop, provider=self.name, model=model)
        except Exception as exc:
            raise self._error(exc, model, timeout) from None


_REGISTRY: dict[str, type[Provider]] = {}


def register(cls):
    """Class decorator: make a Provider available under its `name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _register_builtins(*, all_vendors):
    # The vendor modules import their SDKs, about 1.5 s together: a process that only ever
    # uses the offline mock (the embedded default, most tests) never pays for them.
    from . import mock  # noqa: F401

    if all_vendors:
        from . import anthropic, openai, openai_compatible  # noqa: F401


def provider_class(name):
    _register_builtins(all_vendors=False)
    if name not in _REGISTRY:
        _register_builtins(all_vendors=True)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ProviderError(f"unknown provider '{name}'", provider=name) from None


def known_providers():
    _register_builtins(all_vendors=True)
    return sorted(_REGISTRY)


# Helpers shared by the adapters that speak HTTP through a vendor SDK ----------------------

def redact(text, secret):
    """`text` with every occurrence of `secret` masked, for messages that may quote a key."""
    text = str(text)
    if secret and len(secret) >= 4:
        text = text.replace(secret, f"{secret[:3]}…{secret[-4:]}" if len(secret) >= 16 else "…")
    return text


def retry_after(headers):
    """Seconds the vendor asked us to wait (Retry-After-Ms, or Retry-After in seconds or as an
    HTTP date), or None when it said nothing usable."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# Error types some vendors put in the body instead of (or as well as) an HTTP status, such as
# an `error` event in the middle of a stream that began with 200 OK.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "insufficient_quota": 429,
    "api_error": 500, "server_error": 500, "overloaded_error": 529, "timeout_error": 504,
}


def http_error(status, message, *, error_type="", code="", headers=None, provider="", model="", secret=None):
    """The ProviderError for an error answer from a vendor.

    Retryable: 408, 409, 429 (except an exhausted quota), 5xx and 529, and an unknown error
    in the middle of a stream. Permanent: other 4xx. 401 and 403 say "authentication failed",
    a 401 without the vendor's text, which often quotes part of the key. `status` may be None
    or 200 for an error event inside a stream; `error_type` then decides. The key never
    appears in the message: it is masked wherever the vendor quoted it.
    """
    if not status or status < 400:
        status = _STATUS_OF_TYPE.get(error_type) or _STATUS_OF_TYPE.get(code)
    detail = " ".join(redact(message or "", secret).split())
    if len(detail) > 500:
        detail = detail[:500] + "…"  # an HTML error page from a proxy, say
    retryable = False
    wait = None
    if status in (401, 403):
        text = "authentication failed" if status == 401 else "authentication failed: permission denied"
    elif status == 429 and "insufficient_quota" in (error_type, code):
        text = "quota exceeded (check the account's plan and billing)"
    elif status == 429:
        text, retryable, wait = "rate limited", True, retry_after(headers)
    elif status == 529 or error_type == "overloaded_error":
        text, retryable, wait = "overloaded", True, retry_after(headers)
    elif status == 404:
        text = "unknown model or endpoint"
    elif status in (408, 409) or (status is not None and status >= 500):
        text, retryable, wait = "server error", True, retry_after(headers)
    elif status is None:
        text, retryable = "error in the stream", True
    else:
        text = "bad request"
    if detail and status != 401:
        text = f"{text}: {detail}"
    return ProviderError(text, retryable=retryable, status=status, retry_after=wait, provider=provider, model=model)


def sdk_error(exc, sdk, *, provider="", model="", secret=None, timeout_s=None):
    """The ProviderError for an exception raised by a vendor SDK built like openai's and
    anthropic's (`sdk.APIStatusError`, `APITimeoutError`, `APIConnectionError`, `APIError`),
    or by the HTTP client under it, or by a response body that was not valid JSON. Returns
    None for anything else, which is a bug to let through rather than a vendor failure."""
    import httpx2  # both SDKs are built on it, so it is already loaded when this runs
    import pydantic

    where = {"provider": provider, "model": model}
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)):
        after = f" after {timeout_s:g} s" if timeout_s else ""
        return ProviderError(f"timed out{after}", retryable=True, **where)
    if isinstance(exc, (sdk.APIConnectionError, httpx2.TransportError)):
        cause = (exc.__cause__ or exc.__context__) if isinstance(exc, sdk.APIConnectionError) else exc
        detail = f" ({type(cause).__name__}: {redact(cause, secret)})" if cause is not None else ""
        return ProviderError(f"connection failed{detail}", retryable=True, **where)
    if isinstance(exc, sdk.APIResponseValidationError):
        return ProviderError("malformed response: not the shape this SDK expects", retryable=True,
                             status=exc.status_code, **where)
    if isinstance(exc, sdk.APIError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body)
        error = error if isinstance(error, dict) else {}
        message = error.get("message") or getattr(exc, "message", "") or ""
        status = getattr(exc, "status_code", None)
        response = getattr(exc, "response", None)
        return http_error(status, message if isinstance(message, str) else json.dumps(message),
                          error_type=str(error.get("type") or ""), code=str(error.get("code") or ""),
                          headers=getattr(response, "headers", None), secret=secret, **where)
    if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError, UnicodeDecodeError)):
        return ProviderError(f"malformed response: {type(exc).__name__}", retryable=True, **where)
    return None


def connection_lost(exc, sdk):
    """Whether `exc` is a dropped connection (not a timeout): in the middle of a stream, that
    means the stream was cut."""
    import httpx2

    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)):
        return False
    return isinstance(exc, (sdk.APIConnectionError, httpx2.TransportError))


def object_schema(schema):
    """`schema` as vendors accept it for structured output, whose root must be an object:
    (schema, False) when it is one, else ({"type": "object", "properties": {"value": schema},
    "required": ["value"]}, True) — then `unwrap_json` takes the answer back out."""
    if isinstance(schema, dict) and schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"value": schema}, "required": ["value"],
            "additionalProperties": False}, True


def unwrap_json(text, wrapped):
    """The JSON text of the answer inside the object `object_schema` wrapped it in; the text
    unchanged when it was not wrapped or is not the expected JSON (the caller reports that)."""
    if not wrapped:
        return text
    try:
        return json.dumps(json.loads(text)["value"])
    except (ValueError, KeyError, TypeError):
        return text


def interruptible(produce, should_stop, *, provider="", model="", poll_s=0.05) -> Iterator:
    """Yield what the generator `produce(cancelled)` yields, running it on a helper thread so
    that `should_stop()` is honoured while a vendor keeps us waiting: for the first token, in
    a stalled stream, or on a call that returns all at once.

    Raises Interrupted as soon as `should_stop()` is true, and re-raises whatever `produce`
    raised. `cancelled` (a threading.Event) is set when the caller stops listening; `produce`
    should then close its response, which it can do at its next chunk at the latest; a call
    still waiting then ends at its own client timeout. Items reach the caller in order, on the
    caller's thread, so callbacks such as on_delta never run on the helper thread.
    """
    items = queue.SimpleQueue()
    cancelled = threading.Event()
    done = object()

    def pump():
        try:
            for item in produce(cancelled):
                if cancelled.is_set():
                    return
                items.put((True, item))
            items.put((True, done))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            items.put((False, exc))

    if should_stop():  # before anything reaches the vendor
        raise Interrupted(provider=provider, model=model)
    threading.Thread(target=pump, name=f"{provider or 'provider'}-call", daemon=True).start()
    try:
        while True:
            if should_stop():
                raise Interrupted(provider=provider, model=model)
            try:
                ok, value = items.get(timeout=poll_s)
            except queue.Empty:
                continue
            if not ok:
                raise value
            if value is done:
                return
            yield value
    finally:
        cancelled.set()


def call_interruptibly(call, should_stop, *, provider="", model=""):
    """`call()`'s result, made on a helper thread so that `should_stop()` interrupts the wait
    (see `interruptible`)."""

    def produce(cancelled):
        yield call()

    for result in interruptible(produce, should_stop, provider=provider, model=model):
        return result
