"""The Provider interface every vendor adapter implements, and its error type.

A provider turns a `ChatRequest` into a `Completion`. It streams text deltas to `on_delta`
when asked, stops early when `should_stop()` says so (cancel, shutdown, timeout), and
raises `ProviderError` with `retryable` telling the engine whether trying again can help.
"""
import time
from dataclasses import dataclass, field
from typing import Any, Callable


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

    def check(self) -> float:
        """Make the smallest real call this provider allows (test connection); returns its
        latency in milliseconds or raises ProviderError (401/403 say "authentication failed")."""
        started = time.monotonic()
        self.complete(ChatRequest(model=self.model, prompt="ping", max_tokens=1, timeout_s=20))
        return (time.monotonic() - started) * 1000


_REGISTRY: dict[str, type[Provider]] = {}


def register(cls):
    """Class decorator: make a Provider available under its `name`."""
    _REGISTRY[cls.name] = cls
    return cls


def provider_class(name):
    from . import mock  # noqa: F401  (registers the built-in providers)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ProviderError(f"unknown provider '{name}'", provider=name) from None


def known_providers():
    from . import mock  # noqa: F401

    return sorted(_REGISTRY)
