"""The offline `mock` provider: deterministic answers with the shape of a real model's.

Options (in the source's `options`):
- `responses`: [{"match": regex, "text": str}], the first whose regex is found in the
  prompt answers; otherwise the answer is a deterministic text derived from the prompt.
- `latency_ms`: time to the first token (default 0); `tokens_per_second`: streaming speed
  (default 0, meaning all at once).
- `fail`: [{"match": regex, "error": str, "retryable": bool, "times": n}] scripted failures,
  for rehearsing retries and fallbacks.
- `call_log`: a file path; each call appends its idempotency key, so a rehearsal can count
  how often each step reached the provider.

Token counts are estimated as one token per four characters, at least one.
"""
import hashlib
import json
import re
import threading
import time

from .base import ChatRequest, Completion, Interrupted, Provider, ProviderError, Usage, register

_failures_seen: dict[tuple, int] = {}
_failures_lock = threading.Lock()


def estimate_tokens(text):
    return max(1, len(text) // 4) if text else 0


def _sleep(seconds, should_stop, deadline):
    end = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        if should_stop():
            raise Interrupted(provider="mock")
        if deadline is not None and now >= deadline:
            raise ProviderError("timed out", retryable=True, provider="mock")
        if now >= end:
            return
        time.sleep(min(0.02, end - now))


@register
class MockProvider(Provider):
    name = "mock"

    def _answer(self, request):
        for rule in self.options.get("responses", []):
            if re.search(rule.get("match", ""), request.prompt, re.IGNORECASE | re.DOTALL):
                return rule.get("text", "")
        if request.json_schema is not None:
            return json.dumps({"answer": self._digest(request)})
        return f"[mock {self.model or 'model'}] {self._digest(request)}"

    def _digest(self, request):
        head = " ".join(request.prompt.split())[:80]
        tag = hashlib.sha256((request.system + request.prompt).encode()).hexdigest()[:8]
        return f"Response {tag} to: {head}"

    def _scripted_failure(self, request):
        for index, rule in enumerate(self.options.get("fail", [])):
            if not re.search(rule.get("match", ""), request.prompt, re.IGNORECASE | re.DOTALL):
                continue
            key = (request.idempotency_key, index)
            with _failures_lock:
                seen = _failures_seen.get(key, 0)
                if seen >= rule.get("times", 1):
                    continue
                _failures_seen[key] = seen + 1
            raise ProviderError(rule.get("error", "scripted failure"), retryable=rule.get("retryable", False),
                                status=rule.get("status"), provider="mock", model=self.model)

    def _log_call(self, request):
        path = self.options.get("call_log")
        if path:
            with open(path, "a") as f:
                f.write(request.idempotency_key + "\n")

    def complete(self, request: ChatRequest, *, on_delta=None, should_stop=lambda: False):
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        if should_stop():
            raise Interrupted(provider="mock")
        self._log_call(request)
        self._scripted_failure(request)
        _sleep(self.options.get("latency_ms", 0) / 1000, should_stop, deadline)
        text = self._answer(request)
        if request.max_tokens:
            text = text[: request.max_tokens * 4]
        tps = self.options.get("tokens_per_second", 0)
        if request.stream and on_delta is not None:
            pieces = re.findall(r"\S+\s*|\s+", text) or [text]
            for piece in pieces:
                if tps:
                    _sleep(estimate_tokens(piece) / tps, should_stop, deadline)
                elif should_stop():
                    raise Interrupted(provider="mock")
                on_delta(piece)
        elif tps:
            _sleep(estimate_tokens(text) / tps, should_stop, deadline)
        usage = Usage(estimate_tokens(request.system + request.prompt), estimate_tokens(text), estimated=False)
        return Completion(text=text, usage=usage, provider=self.name, model=self.model or "mock-1")
