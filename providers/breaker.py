"""A circuit breaker per credential: after `BREAKER_FAILURES` consecutive failed calls the
credential is left alone for `BREAKER_COOLDOWN_S` seconds (calls fail at once, so a step
moves on to its fallback source instead of waiting on a vendor that is down); then one call
is let through as a probe, and its outcome closes the breaker or opens it again.

The state is per process: each worker learns on its own that a vendor is down, after a few
failures, which costs little; a shared state would put a store round trip before each call.
"""
import threading
import time

from django.conf import settings

_lock = threading.Lock()
_breakers: dict[str, "Breaker"] = {}


class Breaker:
    def __init__(self, failures, cooldown_s):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def allow(self, now):
        """Whether a call may go now; in half-open state only one probe at a time."""
        if self.opened_at is None:
            return True
        if now - self.opened_at < self.cooldown_s or self.probing:
            return False
        self.probing = True
        return True

    def retry_in(self, now):
        return max(0.0, self.cooldown_s - (now - self.opened_at)) if self.opened_at is not None else 0.0

    def succeeded(self):
        self.failures, self.opened_at, self.probing = 0, None, False

    def failed(self, now):
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at, self.probing = now, False


def _breaker(key):
    breaker = _breakers.get(key)
    if breaker is None:
        breaker = _breakers.setdefault(key, Breaker(settings.BREAKER_FAILURES, settings.BREAKER_COOLDOWN_S))
    return breaker


def allow(key):
    """(True, 0) when a call with credential `key` may go; (False, seconds left) when its
    breaker is open."""
    now = time.monotonic()
    with _lock:
        breaker = _breaker(key)
        if breaker.allow(now):
            return True, 0.0
        return False, breaker.retry_in(now)


def record(key, ok):
    """The outcome of a call that `allow` let through: True (the vendor answered, even with a
    bad-request error), False (it failed: server error, rate limit, timeout), or None (no
    verdict: the call was interrupted), which only frees the probe slot."""
    with _lock:
        breaker = _breaker(key)
        if ok is None:
            breaker.probing = False
        elif ok:
            breaker.succeeded()
        else:
            breaker.failed(time.monotonic())


def reset():
    """Forget every breaker (tests, and an operator who fixed a credential)."""
    with _lock:
        _breakers.clear()
