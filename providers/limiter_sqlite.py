"""The embedded queue store: queue state in a SQLite file shared by every process on the machine.

Used when there is no Redis (the embedded default, where daphne and Huey worker processes run
side by side). Each operation is one `BEGIN IMMEDIATE` transaction: SQLite's write lock makes
the read-decide-write atomic across processes, as the Lua scripts do in Redis.

The decisions below are the same as `providers.queues._LUA` makes in Redis; `providers.queues`
documents the algorithm. Both are checked by the same tests (tests/queues/), run on each store.
A queue's state is one small JSON document:

    {"seq": last ticket number, "vt": virtual time of the lanes, "paused": paused until,
     "tat": {"r": .., "m": .., "t": ..}  theoretical arrival time of each limit (GCRA),
     "lanes": {lane: [weight, pass]},
     "q": [[ticket, lane, seq, lease expiry, tokens], ...]  waiters in arrival order}

Times are seconds since `EPOCH`, read inside the transaction so that every process writes
times in the order it held the lock.
"""
import json
import math
import os
import sqlite3
import threading
import time

# Times are kept relative to this instant: smaller numbers keep microseconds through JSON
# in both stores (Redis's Lua JSON codec keeps 14 significant digits).
EPOCH = 1_700_000_000

# Seconds of floating-point noise that still count as "ready now".
_SLACK = 1e-9
# Grants simulated when estimating a waiter's turn; waiters further back just poll.
_LOOKAHEAD = 64


def _new_state():
    return {"seq": 0, "vt": 0.0, "paused": 0.0, "tat": {"r": 0.0, "m": 0.0, "t": 0.0}, "lanes": {}, "q": []}


def _ready_in(state, now, limits, tokens):
    """Seconds until the queue could grant a request of `tokens` (0 or less: now)."""
    wait = state["paused"] - now
    tat = state["tat"]
    for name, interval, capacity, cost in (("r", limits[0], limits[1], 1), ("m", limits[2], limits[3], 1),
                                           ("t", limits[4], limits[5], tokens)):
        if interval > 0:
            # Bucket in use now, against the room the request needs. A request larger than
            # the whole bucket needs a full bucket, not an impossible one.
            wait = max(wait, max(tat[name], now) - now - (capacity - min(cost, capacity)) * interval)
    return wait


def _turns_until(state, ticket):
    """How many grants come before `ticket`'s own, if the waiters stay as they are (the first
    is 1); None when it is further back than the lookahead."""
    heads = {}
    for entry in state["q"]:
        heads.setdefault(entry[1], []).append(entry[0])
    passes = {lane: max(state["lanes"].get(lane, [1, 0.0])[1], state["vt"]) for lane in heads}
    order = list(heads)  # first-come lanes win ties
    for turn in range(1, _LOOKAHEAD + 1):
        lane = min(order, key=lambda name: passes[name])
        if heads[lane][0] == ticket:
            return turn
        heads[lane].pop(0)
        weight = state["lanes"].get(lane, [1, 0.0])[0]
        passes[lane] += 1.0 / weight
        if not heads[lane]:
            order.remove(lane)
            if not order:
                return None
    return None


def take(state, now, ticket, lane, weight, tokens, limits, lease):
    """One attempt by `ticket` to take capacity. Returns (granted, seconds): when granted, the
    grant time; otherwise how long to wait before asking again."""
    queue = []
    mine = None
    for entry in state["q"]:
        if entry[0] == ticket:
            entry[3] = now + lease
            entry[4] = tokens
            mine = entry
            queue.append(entry)
        elif entry[3] >= now:  # waiters that stopped asking are dropped
            queue.append(entry)
    state["q"] = queue
    lanes = state["lanes"]
    if lane in lanes:
        lanes[lane][0] = weight
    else:
        lanes[lane] = [weight, state["vt"]]
    if mine is None and queue:
        state["seq"] += 1
        mine = [ticket, lane, state["seq"], now + lease, tokens]
        queue.append(mine)

    chosen, best, seen = None, math.inf, set()
    for entry in queue:
        if entry[1] not in seen:  # the first entry of a lane is its head
            seen.add(entry[1])
            lane_pass = max(lanes.get(entry[1], [1, 0.0])[1], state["vt"])
            if lane_pass < best:
                chosen, best = entry, lane_pass
    if chosen is None:  # nobody waits: the caller is first in line
        chosen = mine = [ticket, lane, state["seq"] + 1, now + lease, tokens]
    wait = _ready_in(state, now, limits, chosen[4])

    if chosen is mine and wait <= _SLACK:
        tat = state["tat"]
        for name, interval, cost in (("r", limits[0], 1), ("m", limits[2], 1), ("t", limits[4], tokens)):
            if interval > 0:
                tat[name] = max(tat[name], now) + cost * interval
        if mine in queue:
            queue.remove(mine)
        lane_pass = max(lanes[lane][1], state["vt"])
        state["vt"] = lane_pass
        lanes[lane][1] = lane_pass + 1.0 / weight
        waiting = {entry[1] for entry in queue}
        for name in [name for name, (_, p) in lanes.items() if name not in waiting and p <= state["vt"]]:
            del lanes[name]
        return True, now

    if mine not in queue:
        state["seq"] += 1
        queue.append(mine)
    if chosen is mine:
        return False, wait
    turns = _turns_until(state, ticket)
    if turns is None:
        return False, math.inf
    spacing = max(limits[0], limits[2], limits[4] * tokens)
    # Wake a little before the turn: being early costs one more question, being late
    # leaves capacity unused.
    return False, max(wait, 0.0) + (turns - 1) * spacing - min(0.25 * spacing, 0.05)


def leave(state, now, ticket):
    state["q"] = [entry for entry in state["q"] if entry[0] != ticket]


def pause(state, now, seconds):
    state["paused"] = max(state["paused"], now + seconds)


def settle(state, now, delta_tokens, token_interval):
    if token_interval > 0:
        state["tat"]["t"] = max(state["tat"]["t"], now) + delta_tokens * token_interval


def snapshot(state, now):
    waiting = {}
    for entry in state["q"]:
        if entry[3] >= now:
            waiting[entry[1]] = waiting.get(entry[1], 0) + 1
    return waiting, max(0.0, state["paused"] - now)


def _ttl(state, now):
    """Seconds the state matters for: until its buckets refill, its pause ends and its
    waiters' leases run out, plus a minute."""
    horizon = max([state["paused"], *state["tat"].values(), *(entry[3] for entry in state["q"])])
    return max(0.0, horizon - now) + 60


class SqliteStore:
    """Queue state in one SQLite file. Safe across threads (a connection per thread) and
    processes (SQLite's file locks); a forked child opens its own connections."""

    def __init__(self, path):
        self.path = str(path)
        self._local = threading.local()

    def _connection(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            # isolation_level=None: transactions are begun by hand, as BEGIN IMMEDIATE.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            # Switching a new file to WAL can meet "database is locked" at once, without the
            # busy timeout, when several processes open it together: try again for a while.
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    # Rate-limit state is worth nothing after a crash: skip the fsyncs.
                    conn.execute("PRAGMA synchronous=OFF")
                    conn.execute("CREATE TABLE IF NOT EXISTS queue_state "
                                 "(key TEXT PRIMARY KEY, state TEXT NOT NULL, expires REAL NOT NULL)")
                    conn.execute("DELETE FROM queue_state WHERE expires < ?", (time.time() - EPOCH,))
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        conn.close()
                        raise
                    time.sleep(0.05)
            local.conn, local.pid = conn, os.getpid()
        return local.conn

    def apply(self, key, change, *args, write=True):
        """Run `change(state, now, *args)` on the queue's state in one write transaction and
        return its result; the state is stored again unless `write` is false."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time() - EPOCH
            row = conn.execute("SELECT state, expires FROM queue_state WHERE key = ?", (key,)).fetchone()
            state = json.loads(row[0]) if row and row[1] >= now else _new_state()
            result = change(state, now, *args)
            if write:
                conn.execute("INSERT OR REPLACE INTO queue_state (key, state, expires) VALUES (?, ?, ?)",
                             (key, json.dumps(state, separators=(",", ":")), now + _ttl(state, now)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result
