"""One provider call as a step makes it: through the source's queue, past its credential's
circuit breaker, retried while the vendor's errors are retryable, and on to the fallback
sources, in order, when a source fails permanently or runs out of retries.

The engine gives the workflow's sources and queues (objects shaped like
`workflows.spec.Source` and `Queue`), so this module does not depend on workflows.
"""
import random
import time
from dataclasses import dataclass, field, replace

from django.conf import settings

from . import breaker, credentials, queues
from .base import ChatRequest, Interrupted, ProviderError, provider_class


@dataclass
class Served:
    """What answered: the result, the source that gave it, and what it cost to get there."""

    result: object
    source: str
    provider: str
    model: str
    options: dict
    queue_wait_s: float = 0.0
    failures: list[str] = field(default_factory=list)  # "source: error" of the sources tried before


def chain(sources, name):
    """[name, *its fallbacks], each once, in order."""
    names = [name]
    for fallback in sources[name].fallbacks:
        if fallback not in names and fallback in sources:
            names.append(fallback)
    return names


def breaker_key(org_id, source):
    """The breaker of a source: its credential, else its key variable, else its provider."""
    if source.credential:
        return f"{org_id}:credential:{source.credential}"
    if source.api_key_env:
        return f"{org_id}:env:{source.api_key_env}"
    return f"{org_id}:{source.provider}:{source.base_url or ''}"


def complete(org_id, sources, queue_configs, name, request: ChatRequest, *, queue=None, lane=None,
             on_delta=None, should_stop=lambda: False, on_queue_wait=None, on_retry=None) -> Served:
    """The completion of `request` from source `name` or one of its fallbacks.

    `request.model`, temperature and max_tokens are filled per source from its model and
    options unless the request sets them. `queue`/`lane` override the source's own. Raises
    Interrupted when `should_stop()` turns true, else ProviderError naming every source that
    failed (retryable when the last failure was).
    """
    def call(provider, source):
        per_source = replace(
            request, model=source.model,
            temperature=request.temperature if request.temperature is not None else source.options.get("temperature"),
            max_tokens=request.max_tokens or source.options.get("max_tokens"),
        )
        return provider.complete(per_source, on_delta=on_delta, should_stop=should_stop), per_source

    return _through_chain(org_id, sources, queue_configs, name, call, tokens=queues.estimate_tokens(
        request.system + request.prompt, request.max_tokens), queue=queue, lane=lane, should_stop=should_stop,
        on_queue_wait=on_queue_wait, on_retry=on_retry)


def generate_image(org_id, sources, queue_configs, name, prompt, *, size=None, queue=None, lane=None,
                   should_stop=lambda: False, on_queue_wait=None, on_retry=None, timeout_s=None) -> Served:
    """An image for `prompt` from source `name` or its fallbacks (see `complete`)."""
    def call(provider, source):
        return provider.generate_image(prompt, size=size or source.options.get("size"), should_stop=should_stop,
                                       timeout_s=timeout_s), None

    return _through_chain(org_id, sources, queue_configs, name, call, tokens=0, queue=queue, lane=lane,
                          should_stop=should_stop, on_queue_wait=on_queue_wait, on_retry=on_retry)


def _through_chain(org_id, sources, queue_configs, name, call, *, tokens, queue, lane, should_stop,
                   on_queue_wait, on_retry):
    failures, last = [], None
    waited = 0.0
    for source_name in chain(sources, name):
        source = sources[source_name]
        key = breaker_key(org_id, source)
        allowed, retry_in = breaker.allow(key)
        if not allowed:
            last = ProviderError(f"circuit open after repeated failures; next try in {retry_in:.0f} s",
                                 retryable=True, provider=source.provider, model=source.model)
            failures.append(f"{source_name}: {last}")
            continue
        try:
            secret, base_url = credentials.resolve(org_id, source)
            provider = provider_class(source.provider)(model=source.model, options=dict(source.options),
                                                       secret=secret, base_url=base_url)
        except ProviderError as exc:
            breaker.record(key, None)
            last = exc
            failures.append(f"{source_name}: {exc}")
            continue
        queue_name = queue or source.queue
        queue_lane = lane if queue else (lane or source.lane)
        retries = int(source.options.get("max_retries", settings.PROVIDER_MAX_RETRIES))
        for attempt in range(retries + 1):
            grant_wait = 0.0
            if queue_name and queue_name in queue_configs:
                config = queue_configs[queue_name]
                grant = queues.acquire(
                    org_id, queue_name, config, lane=queue_lane, tokens=tokens, should_stop=should_stop,
                    on_wait=(lambda s, q=queue_name: on_queue_wait(q, s)) if on_queue_wait else None)
                grant_wait = grant.waited_s
                waited += grant_wait
            try:
                result, sent = call(provider, source)
            except Interrupted:
                breaker.record(key, None)
                raise
            except ProviderError as exc:
                exc.provider = exc.provider or source.provider
                exc.model = exc.model or source.model
                last = exc
                vendor_failed = exc.retryable
                breaker.record(key, not vendor_failed)
                if exc.status == 429 and exc.retryable and queue_name:
                    queues.throttle(org_id, queue_name, exc.retry_after)  # everyone waits, not only us
                if not exc.retryable or attempt == retries:
                    failures.append(f"{source_name}: {exc}")
                    break
                delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                if on_retry:
                    on_retry(source_name, exc, delay)
                _sleep(delay, should_stop)
                allowed, _ = breaker.allow(key)
                if not allowed:
                    failures.append(f"{source_name}: {exc}")
                    break
                continue
            breaker.record(key, True)
            if queue_name and queue_name in queue_configs and tokens:
                usage = getattr(result, "usage", None)
                if usage is not None:
                    queues.settle(org_id, queue_name, queue_configs[queue_name], estimated_tokens=tokens,
                                  actual_tokens=usage.input_tokens + usage.output_tokens)
            return Served(result, source_name, source.provider, getattr(result, "model", "") or source.model,
                          dict(source.options), waited, failures)
    message = "; ".join(failures) if len(failures) > 1 else str(last)
    if len(failures) > 1:
        message = f"every source failed: {message}"
    raise ProviderError(message, retryable=bool(last and last.retryable), status=getattr(last, "status", None),
                        retry_after=getattr(last, "retry_after", None))


def _backoff(attempt):
    """Exponential backoff with full jitter: up to 0.5 s, 1 s, 2 s, … capped at 20 s."""
    return random.uniform(0, min(20.0, 0.5 * 2 ** attempt))


def _sleep(seconds, should_stop):
    end = time.monotonic() + min(seconds, settings.PROVIDER_MAX_RETRY_WAIT_S)
    while (now := time.monotonic()) < end:
        if should_stop():
            raise Interrupted()
        time.sleep(min(0.05, end - now))
