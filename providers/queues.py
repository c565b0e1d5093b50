"""Rate-limited provider queues that hold across every worker process.

A workflow names queues (`workflows.spec.Queue`) and its nodes or sources send their provider
calls through one, optionally in a lane (a sub-queue). A queue belongs to an organization:
every run of the organization shares it, and the same name in another organization is
another queue. Before each provider call the engine calls

    grant = acquire(org_id, "openai", queue, lane="batch", tokens=estimate,
                    should_stop=stopping, on_wait=lambda s: show(f"waiting for queue openai ({s:.0f} s)"))

which blocks until the queue has room, then `settle(...)` with the tokens the call really
used, and `throttle(org_id, "openai", retry_after)` when the provider answers 429.

Limits. Each limit is a token bucket, kept as GCRA (one "theoretical arrival time" per limit):
- `max_requests_per_minute` and `max_messages_per_second`: every grant costs one request and
  one message. Their buckets hold `burst_size` units, so at most `burst_size` go at once and
  in any window of t seconds at most `burst_size + rate * t`. Without `burst_size` the burst
  is 1: calls are spaced evenly, which is how providers enforce their per-minute limits
  (60 a minute is enforced as one a second), so spacing avoids 429s.
- `max_tokens_per_minute`: a grant costs the caller's estimated `tokens`; `settle` charges or
  refunds the difference once the real usage is known. The bucket holds the tokens that
  accrue while a burst of requests refills (`burst_size` requests at the tighter of the two
  request rates), or one second's tokens when only tokens are limited. A request bigger
  than the bucket goes when the bucket is full and leaves it owing, so large prompts are
  never stuck and the rate over time still holds.
- A queue with no limit at all grants at once without touching the store.

Lanes and fairness. Waiters stand in line per lane, first come first served within a lane.
Only the head of the lane whose turn it is may take capacity; turns are given by stride
scheduling: each lane has a pass that advances by 1/weight on each of its grants, the lane
with the lowest pass goes next, and a lane that was idle rejoins at the current virtual time
(it cannot bank turns while idle). Under contention lanes weighted 3:1 get 75% and 25% of
grants; a lane alone gets everything; a request without a lane (or in a lane the queue does
not define) counts as a lane of weight 1. A waiter that stops asking for `_LEASE` seconds
(its process died) loses its place, so a crashed worker cannot block a queue.

Waiting. A waiter sleeps until the store's estimate of its turn, asks again, and never sleeps
longer than `_POLL_MAX` (which keeps its place alive). The head of the line learns exactly
when the bucket refills; the one behind it wakes a little early. While waiting, `on_wait` is
called about once a second and `should_stop` at least every `_CHECK_EVERY` seconds; a true
`should_stop` gives up the place and raises `QueueInterrupted` (a `providers.base.Interrupted`).

Stores. With `settings.REDIS_URL`, a queue is one Redis key (`agentflow:queue:<org>:<name>`,
prefix `settings.QUEUE_KEY_PREFIX`) changed only by the Lua script below, one round trip per
attempt, timed by the Redis server's clock so every machine agrees. Without Redis, the same
decisions are made in `providers.limiter_sqlite` on a SQLite file in `settings.VAR_DIR`,
locked with BEGIN IMMEDIATE, which holds between the separate web and worker processes of
the embedded default.

Why not a library. pyrate-limiter (SQLite, Redis and multiprocessing buckets, blocking waits)
and limits (Redis, Memcached, MongoDB) were considered. Neither has weighted lanes or a
first-come line of waiters across processes: pyrate-limiter's blocking wait retries on a
timer, so whoever polls first wins, and limits does not wait at all. Neither can pause a
limit for everyone after a 429, nor refund an estimate. pyrate-limiter's buckets are
sliding-window logs that store an entry per unit of weight, which makes a 100,000 tokens a
minute limit 100,000 rows, and limits has no store that works between processes without a
server. What is left of a library's work (a GCRA update) is a few lines, written here.
"""
import math
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings

from . import limiter_sqlite
from .base import Interrupted, ProviderError
from .limiter_sqlite import EPOCH

# A waiter that has not asked for this long is taken out of the line (its process died).
_LEASE = 5.0
# Longest sleep between two questions to the store; well inside the lease.
_POLL_MAX = 1.0
# How often `should_stop` is asked while sleeping.
_CHECK_EVERY = 0.25
# How often `on_wait` hears how long the caller has waited.
_REPORT_EVERY = 1.0
# Shortest sleep before asking again, so an early wake-up cannot spin.
_MIN_SLEEP = 0.0005
# A 429's retry-after is honoured up to this many seconds.
_MAX_PAUSE = 3600.0


class QueueInterrupted(Interrupted):
    """`should_stop()` turned true while waiting for a queue; the caller gave up its place."""


class QueueUnavailable(ProviderError):
    """The queue's store (Redis or the SQLite file) could not be reached; worth retrying."""

    def __init__(self, message):
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class Grant:
    """Room in a queue for one call: how long the caller waited for it (seconds) and when it
    was granted (Unix time, by the store's clock: the Redis server's in a Redis deployment)."""

    waited_s: float
    granted_at: float


@dataclass(frozen=True)
class QueueStatus:
    """Who waits in a queue now, by lane ("" for no lane), and how long it stays paused."""

    waiting: dict[str, int] = field(default_factory=dict)
    paused_s: float = 0.0


def _never():
    return False


def _limits(config):
    """The six numbers both stores work with: (request interval, request burst, message
    interval, message burst, token interval, token capacity), intervals in seconds per unit,
    0 where there is no limit."""
    burst = config.burst_size or 1
    request_interval = 60.0 / config.max_requests_per_minute if config.max_requests_per_minute else 0.0
    message_interval = 1.0 / config.max_messages_per_second if config.max_messages_per_second else 0.0
    token_interval = token_capacity = 0.0
    if config.max_tokens_per_minute:
        token_interval = 60.0 / config.max_tokens_per_minute
        burst_seconds = burst * max(request_interval, message_interval) or 1.0
        token_capacity = max(1.0, burst_seconds / token_interval)
    return (request_interval, float(burst), message_interval, float(burst), token_interval, token_capacity)


def _key(org_id, queue_name):
    prefix = getattr(settings, "QUEUE_KEY_PREFIX", "agentflow:queue")
    return f"{prefix}:{org_id}:{queue_name}"


def estimate_tokens(prompt, max_tokens=None):
    """Tokens to reserve before a call: the prompt at ~4 characters a token and the whole
    output allowance (1,000 when none is set), as `providers.pricing.estimate` counts cost."""
    return len(prompt or "") // 4 + 1 + (max_tokens or 1000)


def acquire(org_id, queue_name: str, config, *, lane: str | None = None, tokens: int = 0,
            should_stop: Callable[[], bool] = _never,
            on_wait: Callable[[float], None] | None = None) -> Grant:
    """Wait until the queue `queue_name` of organization `org_id`, limited by `config` (a
    `workflows.spec.Queue`), has room for one request of `tokens` estimated tokens in `lane`.

    Returns a `Grant` (seconds waited, grant time). Raises `QueueInterrupted` as soon as
    `should_stop()` is true, and `QueueUnavailable` when the store cannot be reached; in both
    cases the caller's place in line is given up. Exceptions from `on_wait` propagate the
    same way. A queue without limits grants at once.
    """
    limits = _limits(config)
    if not (limits[0] or limits[2] or limits[4]):
        return Grant(0.0, time.time())
    sub_queue = config.sub_queues.get(lane) if lane else None
    weight = sub_queue.weight if sub_queue else 1
    tokens = max(0, int(tokens))
    store, key, ticket = _store(), _key(org_id, queue_name), uuid.uuid4().hex
    started = time.monotonic()
    next_report = started + _REPORT_EVERY
    in_line = False
    try:
        while True:
            if should_stop():
                raise QueueInterrupted(f"stopped while waiting for queue {queue_name}")
            granted, seconds = store.take(key, ticket, lane or "", weight, tokens, limits, _LEASE)
            if granted:
                return Grant(time.monotonic() - started, seconds + EPOCH)
            in_line = True
            ask_at = time.monotonic() + min(max(seconds, _MIN_SLEEP), _POLL_MAX)
            while (now := time.monotonic()) < ask_at:
                if now >= next_report:
                    if on_wait is not None:
                        on_wait(now - started)
                    next_report = now + _REPORT_EVERY
                if should_stop():
                    raise QueueInterrupted(f"stopped while waiting for queue {queue_name}")
                time.sleep(min(ask_at - now, _CHECK_EVERY, next_report - now))
    except BaseException:
        if in_line:
            try:
                store.leave(key, ticket)
            except QueueUnavailable:
                pass  # the lease runs out on its own
        raise


def settle(org_id, queue_name: str, config, *, estimated_tokens: int, actual_tokens: int) -> None:
    """Correct the token bucket once a call's usage is known: charge what it used beyond the
    estimate acquired with, or give back what it did not use. No-op without a token limit."""
    token_interval = _limits(config)[4]
    delta = int(actual_tokens) - int(estimated_tokens)
    if token_interval and delta:
        _store().settle(_key(org_id, queue_name), delta, token_interval)


def throttle(org_id, queue_name: str, retry_after_s: float | None) -> None:
    """Pause the queue for every process until `retry_after_s` seconds from now (a provider's
    429 retry-after, capped at an hour). An earlier pause that lasts longer is kept; a
    missing, zero or negative value does nothing."""
    if not retry_after_s or retry_after_s <= 0 or not math.isfinite(retry_after_s):
        return
    _store().pause(_key(org_id, queue_name), min(float(retry_after_s), _MAX_PAUSE))


def status(org_id, queue_name: str) -> QueueStatus:
    """Who waits in the queue now (by lane) and how many seconds its pause still lasts."""
    waiting, paused_s = _store().snapshot(_key(org_id, queue_name))
    return QueueStatus(waiting=waiting, paused_s=paused_s)


# --- Stores --------------------------------------------------------------------------------

_stores: dict[tuple, object] = {}
_stores_lock = threading.Lock()


def _store():
    """The store the settings point at, made once per process and settings."""
    redis_url = settings.REDIS_URL or None
    where = ("redis", redis_url) if redis_url else ("sqlite", str(settings.VAR_DIR))
    store = _stores.get(where)
    if store is None:
        with _stores_lock:
            store = _stores.get(where)
            if store is None:
                store = _RedisStore(redis_url) if redis_url else _SqliteStore(settings.VAR_DIR)
                _stores[where] = store
    return store


class _SqliteStore:
    def __init__(self, var_dir):
        self._db = limiter_sqlite.SqliteStore(f"{var_dir}/queues.sqlite3")

    def _apply(self, key, change, *args, write=True):
        try:
            return self._db.apply(key, change, *args, write=write)
        except sqlite3.Error as exc:
            raise QueueUnavailable(f"the queue store failed: {exc}") from None

    def take(self, key, ticket, lane, weight, tokens, limits, lease):
        return self._apply(key, limiter_sqlite.take, ticket, lane, weight, tokens, limits, lease)

    def leave(self, key, ticket):
        self._apply(key, limiter_sqlite.leave, ticket)

    def pause(self, key, seconds):
        self._apply(key, limiter_sqlite.pause, seconds)

    def settle(self, key, delta_tokens, token_interval):
        self._apply(key, limiter_sqlite.settle, delta_tokens, token_interval)

    def snapshot(self, key):
        return self._apply(key, limiter_sqlite.snapshot, write=False)


class _RedisStore:
    def __init__(self, url):
        import redis

        self._errors = redis.RedisError
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script = client.register_script(_LUA)

    def _call(self, key, *args):
        try:
            return self._script(keys=[key], args=[EPOCH, *args])
        except self._errors as exc:
            # The exception's text names the host, never the URL (which may hold a password).
            raise QueueUnavailable(f"the queue store (Redis) failed: {type(exc).__name__}") from None

    def take(self, key, ticket, lane, weight, tokens, limits, lease):
        granted, seconds = self._call(key, "take", ticket, lane, weight, tokens, lease, *map(repr, limits))
        return granted == b"1", float(seconds)

    def leave(self, key, ticket):
        self._call(key, "leave", ticket)

    def pause(self, key, seconds):
        self._call(key, "pause", repr(seconds))

    def settle(self, key, delta_tokens, token_interval):
        self._call(key, "settle", delta_tokens, repr(token_interval))

    def snapshot(self, key):
        import json

        waiting, paused_s = self._call(key, "peek")
        return json.loads(waiting) or {}, float(paused_s)


# The same decisions as providers/limiter_sqlite.py, in one atomic script per attempt.
# KEYS[1]: the queue's state (JSON). ARGV: EPOCH, operation, its arguments. Numbers go back
# as strings: Redis would truncate Lua numbers to integers.
_LUA = """
local LOOKAHEAD = 64
local t = redis.call('TIME')
local now = (tonumber(t[1]) - tonumber(ARGV[1])) + tonumber(t[2]) / 1000000
local op = ARGV[2]
local raw = redis.call('GET', KEYS[1])
local s
if raw then
  s = cjson.decode(raw)
else
  s = {seq = 0, vt = 0, paused = 0, tat = {r = 0, m = 0, t = 0}, lanes = {}, q = {}}
end

local function fmt(x) return string.format('%.6f', x) end

local function ready_in(L, tokens)
  local wait = s.paused - now
  local limits = {{'r', L[1], L[2], 1}, {'m', L[3], L[4], 1}, {'t', L[5], L[6], tokens}}
  for _, x in ipairs(limits) do
    local interval, capacity = x[2], x[3]
    if interval > 0 then
      wait = math.max(wait, math.max(s.tat[x[1]], now) - now - (capacity - math.min(x[4], capacity)) * interval)
    end
  end
  return wait
end

local function pass_of(lane)
  local l = s.lanes[lane]
  return math.max(l and l[2] or 0, s.vt)
end

local function turns_until(ticket)
  local heads, order, passes, next_of = {}, {}, {}, {}
  for _, e in ipairs(s.q) do
    if not heads[e[2]] then
      heads[e[2]] = {}
      order[#order + 1] = e[2]
      passes[e[2]] = pass_of(e[2])
      next_of[e[2]] = 1
    end
    local h = heads[e[2]]
    h[#h + 1] = e[1]
  end
  for turn = 1, LOOKAHEAD do
    local lane, best = nil, math.huge
    for _, name in ipairs(order) do
      if next_of[name] <= #heads[name] and passes[name] < best then lane, best = name, passes[name] end
    end
    if lane == nil then return nil end
    if heads[lane][next_of[lane]] == ticket then return turn end
    next_of[lane] = next_of[lane] + 1
    local l = s.lanes[lane]
    passes[lane] = passes[lane] + 1 / (l and l[1] or 1)
  end
  return nil
end

local function take(ticket, lane, weight, tokens, lease, L)
  local queue, mine = {}, nil
  for _, e in ipairs(s.q) do
    if e[1] == ticket then
      e[4] = now + lease
      e[5] = tokens
      mine = e
      queue[#queue + 1] = e
    elseif e[4] >= now then
      queue[#queue + 1] = e
    end
  end
  s.q = queue
  if s.lanes[lane] then s.lanes[lane][1] = weight else s.lanes[lane] = {weight, s.vt} end
  if mine == nil and #queue > 0 then
    s.seq = s.seq + 1
    mine = {ticket, lane, s.seq, now + lease, tokens}
    queue[#queue + 1] = mine
  end
  local in_line = mine ~= nil
  local chosen, best, seen = nil, math.huge, {}
  for _, e in ipairs(queue) do
    if not seen[e[2]] then
      seen[e[2]] = true
      local p = pass_of(e[2])
      if p < best then chosen, best = e, p end
    end
  end
  if chosen == nil then
    mine = {ticket, lane, s.seq + 1, now + lease, tokens}
    chosen = mine
  end
  local wait = ready_in(L, chosen[5])

  if chosen == mine and wait <= 1e-9 then
    if L[1] > 0 then s.tat.r = math.max(s.tat.r, now) + L[1] end
    if L[3] > 0 then s.tat.m = math.max(s.tat.m, now) + L[3] end
    if L[5] > 0 then s.tat.t = math.max(s.tat.t, now) + tokens * L[5] end
    if in_line then
      for i, e in ipairs(queue) do
        if e == mine then table.remove(queue, i) break end
      end
    end
    local p = pass_of(lane)
    s.vt = p
    s.lanes[lane][2] = p + 1 / weight
    local waiting, idle = {}, {}
    for _, e in ipairs(queue) do waiting[e[2]] = true end
    for name, l in pairs(s.lanes) do
      if not waiting[name] and l[2] <= s.vt then idle[#idle + 1] = name end
    end
    for _, name in ipairs(idle) do s.lanes[name] = nil end
    return {'1', fmt(now)}
  end

  if not in_line then
    s.seq = s.seq + 1
    queue[#queue + 1] = mine
  end
  if chosen == mine then return {'0', fmt(wait)} end
  local turns = turns_until(ticket)
  if turns == nil then return {'0', fmt(1e9)} end
  local spacing = math.max(L[1], L[3], L[5] * tokens)
  return {'0', fmt(math.max(wait, 0) + (turns - 1) * spacing - math.min(0.25 * spacing, 0.05))}
end

local result
if op == 'take' then
  local L = {}
  for i = 8, 13 do L[#L + 1] = tonumber(ARGV[i]) end
  result = take(ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), L)
elseif op == 'leave' then
  local queue = {}
  for _, e in ipairs(s.q) do
    if e[1] ~= ARGV[3] then queue[#queue + 1] = e end
  end
  s.q = queue
  result = {}
elseif op == 'pause' then
  s.paused = math.max(s.paused, now + tonumber(ARGV[3]))
  result = {}
elseif op == 'settle' then
  s.tat.t = math.max(s.tat.t, now) + tonumber(ARGV[3]) * tonumber(ARGV[4])
  result = {}
elseif op == 'peek' then
  local waiting = {}
  for _, e in ipairs(s.q) do
    if e[4] >= now then waiting[e[2]] = (waiting[e[2]] or 0) + 1 end
  end
  return {cjson.encode(waiting), fmt(math.max(0, s.paused - now))}
end

local horizon = math.max(s.paused, s.tat.r, s.tat.m, s.tat.t)
for _, e in ipairs(s.q) do horizon = math.max(horizon, e[4]) end
local ttl = math.ceil((math.max(0, horizon - now) + 60) * 1000)
redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ttl)
return result
"""
