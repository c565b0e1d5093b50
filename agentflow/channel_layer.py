"""A channel layer for the embedded default: publish and subscribe through one SQLite file.

In the embedded default the web server (daphne) and the worker are separate processes and
there is no Redis, so Channels' in-memory layer would never carry a worker's events to a
browser. This layer gives every process the same view through a small SQLite file of its
own (not the main database: streamed tokens must not contend with run writes):

- `group_send` and `send` append one row (the group or channel, the JSON message).
- A process that has consumers polls the file from one background thread (every
  `poll_interval` seconds) for rows newer than the last it read, and hands each message to
  the local channels in that group (or to the local channel it names); the thread stops
  once the process has had no consumers for `idle_timeout` seconds. Group membership
  is local to the process, as in channels-redis's `RedisPubSubChannelLayer`; a process
  without consumers (a worker) only writes.
- Rows older than `expiry` seconds are pruned by the writers.

The layer announces; it is not the record. When the file is missing, locked or replaced,
messages are dropped (with a warning) and sending never raises for it: the run socket
(runs/consumers.py) sees a gap in `seq` and reads the missing events from the database. Messages must be JSON
(dicts of str, numbers, bools, None, lists). Like the Redis pub/sub layer, a message sent
to a named channel reaches every process listening on it, not exactly one.

Why not a package: the SQLite layers on PyPI (channels-lite, channels-sqlite) keep their
rows in a Django database alias, with models and migrations, and receive by polling per
channel; here one query per process serves every socket it holds.
"""
import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from channels.layers import BaseChannelLayer

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a reader's cursor stays valid
    grp TEXT,                              -- the group, or NULL for a message to one channel
    channel TEXT,                          -- the channel, or NULL for a group message
    payload TEXT NOT NULL,
    created REAL NOT NULL
)
"""

# Rows a reader takes per query; it asks again at once when it got that many.
_BATCH = 1000


class _Inbox:
    """A local channel: its bounded queue, on the event loop of whoever receives from it."""

    __slots__ = ("loop", "queue", "dropped")

    def __init__(self, loop, capacity):
        self.loop = loop
        self.queue = asyncio.Queue(maxsize=capacity)
        self.dropped = 0

    def put(self, payloads):
        # Runs on self.loop. A consumer that stopped reading loses the newest messages, as
        # with the in-memory layer; the database still has every event.
        for payload in payloads:
            try:
                self.queue.put_nowait(payload)
            except asyncio.QueueFull:
                self.dropped += 1
                if self.dropped in (1, 100, 10000):
                    log.warning("channel inbox full, %d message(s) dropped", self.dropped)


class _File:
    """One process's connection to the layer's file, reopened when the file is replaced."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.conn = None
        self.identity = None

    def _identity(self):
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def connection(self, create=True):
        """The open connection, reopened when the file was deleted or swapped; None when the
        file is missing and `create` is false."""
        identity = self._identity()
        if self.conn is not None and identity == self.identity:
            return self.conn
        self.close()
        if identity is None and not create:
            return None
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # Announcements only: losing the last ones in a power cut is fine, an fsync per
            # streamed token is not.
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        self.conn, self.identity = conn, self._identity()
        return conn

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
        self.conn = self.identity = None


class SqlitePubSubChannelLayer(BaseChannelLayer):
    """Channels layer API (`send`, `receive`, `new_channel`, groups, flush) over a shared file.

    `path`: the SQLite file every process of the deployment uses. `poll_interval`: seconds
    between a listening process's reads. `expiry`: seconds a message stays in the file.
    `capacity`: messages a local channel holds before new ones are dropped. `timeout`:
    seconds a write waits for a lock before the message is dropped. `prune_interval`:
    seconds between a writer's prunings. `idle_timeout`: seconds the poller goes on
    without local channels before it stops.
    """

    extensions = ["groups", "flush"]

    def __init__(self, path, poll_interval=0.05, expiry=60, capacity=1000, timeout=2.0, prune_interval=10.0,
                 idle_timeout=10.0, channel_capacity=None, **kwargs):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity, **kwargs)
        self.channel_capacity = self.compile_capacities(self.channel_capacity)
        self.path = str(path)
        self.poll_interval = poll_interval
        self.prune_interval = prune_interval
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self._process = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()  # guards the maps and the poller state shared with its thread
        self._inboxes = {}  # channel -> _Inbox
        self._groups = {}  # group -> set of local channels
        # Writes happen on one thread: in order, off the event loop, on one connection.
        self._writer = None
        self._write_file = _File(self.path, timeout)
        self._last_prune = 0.0
        self._poller = None
        self._starting = threading.Lock()
        self._read_file = _File(self.path, timeout)
        self._cursor = 0
        self._cursor_file = None  # the file the cursor counts in (ids start over in a new one)
        self._warned = {}

    # Sending ----------------------------------------------------------------------------

    async def send(self, channel, message):
        """Announce `message` to `channel` (in whichever process listens on it)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        await self._write(None, channel, message)

    async def group_send(self, group, message):
        """Announce `message` to every channel of `group`, in every process."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        await self._write(group, None, message)

    async def _write(self, group, channel, message):
        payload = json.dumps(message, separators=(",", ":"))  # a TypeError here is the caller's bug
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="channel-layer-writer")
        await asyncio.get_running_loop().run_in_executor(self._writer, self._insert, group, channel, payload)

    def _insert(self, group, channel, payload):
        now = time.time()
        try:
            conn = self._write_file.connection()
            conn.execute("INSERT INTO message (grp, channel, payload, created) VALUES (?, ?, ?, ?)",
                         (group, channel, payload, now))
            if now - self._last_prune >= self.prune_interval:
                self._last_prune = now
                self._prune(conn, now - self.expiry)
        except (sqlite3.Error, OSError) as exc:
            self._write_file.close()
            self._warn("write", exc)

    @staticmethod
    def _prune(conn, cutoff):
        # Ids grow with time, so the old rows are those before the first young one: the scan
        # stops there, without an index on `created`.
        conn.execute(
            "DELETE FROM message WHERE id < COALESCE("
            "(SELECT id FROM message WHERE created >= ? ORDER BY id LIMIT 1), "
            "(SELECT MAX(id) + 1 FROM message))", (cutoff,))

    def _warn(self, what, exc):
        # One line per kind of failure a minute: a missing file should not flood the log.
        now = time.monotonic()
        if now - self._warned.get(what, -60) >= 60:
            self._warned[what] = now
            log.warning("channel layer %s failed on %s (messages are dropped meanwhile): %s", what, self.path, exc)

    # Receiving --------------------------------------------------------------------------

    async def new_channel(self, prefix="specific."):
        """A new channel name for a consumer of this process; its messages arrive by polling."""
        channel = f"{prefix}{self._process}.{uuid.uuid4().hex}"
        await self._register(channel)
        return channel

    async def _register(self, channel):
        loop = asyncio.get_running_loop()
        with self._lock:
            inbox = self._inboxes.get(channel)
            if inbox is None or inbox.loop is not loop:
                inbox = self._inboxes[channel] = _Inbox(loop, self.get_capacity(channel))
            polling = self._poller is not None
        if not polling:
            # Started before this returns, from the file's last row: every message sent
            # after new_channel() or group_add() returns is read.
            await loop.run_in_executor(None, self._start_poller)
        return inbox

    async def receive(self, channel):
        """The next message for `channel`; waits for one. A receive that is cancelled (its
        consumer ended) removes the channel and its group memberships."""
        self.require_valid_channel_name(channel, receive=True)
        inbox = self._inboxes.get(channel)
        if inbox is None or inbox.loop is not asyncio.get_running_loop():
            inbox = await self._register(channel)
        try:
            payload = await inbox.queue.get()
        except asyncio.CancelledError:
            self._forget(channel)
            raise
        return json.loads(payload)

    def _forget(self, channel):
        with self._lock:
            self._inboxes.pop(channel, None)
            for group in [g for g, members in self._groups.items() if channel in members]:
                self._discard(group, channel)

    def _discard(self, group, channel):
        members = self._groups.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self._groups[group]

    async def group_add(self, group, channel):
        """Add a local channel to `group`; messages sent to it from now on reach the channel."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if channel not in self._inboxes:
            await self._register(channel)
        with self._lock:
            self._groups.setdefault(group, set()).add(channel)

    async def group_discard(self, group, channel):
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        with self._lock:
            self._discard(group, channel)

    async def flush(self):
        """Forget this process's channels and groups and empty the file (tests use this)."""
        with self._lock:
            self._inboxes.clear()
            self._groups.clear()
        loop = asyncio.get_running_loop()
        if self._writer is None:
            return
        await loop.run_in_executor(self._writer, self._delete_all)

    def _delete_all(self):
        try:
            conn = self._write_file.connection()
            conn.execute("DELETE FROM message")
        except (sqlite3.Error, OSError) as exc:
            self._warn("flush", exc)

    # The poller -------------------------------------------------------------------------

    def _start_poller(self):
        with self._starting:
            if self._poller is not None:
                return
            cursor = identity = None
            try:
                conn = self._read_file.connection()
                cursor = conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()[0]
                identity = self._read_file.identity
            except (sqlite3.Error, OSError) as exc:
                self._read_file.close()
                self._warn("read", exc)
            with self._lock:
                if cursor is not None:
                    self._cursor, self._cursor_file = cursor, identity
                self._poller = threading.Thread(target=self._poll_while_listened, name="channel-layer-poller",
                                                daemon=True)
                self._poller.start()

    def _poll_while_listened(self):
        # Stops after `idle_timeout` seconds without local channels; the next channel
        # starts it again.
        idle_since = None
        while True:
            try:
                more = self.poll()
            except Exception:  # the poller must outlive anything a bad row or file does to it
                log.exception("channel layer poller failed")
                more = False
            with self._lock:
                if self._inboxes:
                    idle_since = None
                else:
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if now - idle_since >= self.idle_timeout:
                        self._poller = None
                        return
            if not more:
                time.sleep(self.poll_interval)

    def poll(self):
        """Read the rows written since the last poll and hand them to local channels.

        Returns True when there may be more rows waiting (a full batch was read). A missing
        file is waited for; a replaced one is read from its start.
        """
        try:
            conn = self._read_file.connection(create=False)
            if conn is None:
                return False
            if self._read_file.identity != self._cursor_file:
                # A new file (the old one was deleted or replaced): all its rows are news.
                self._cursor, self._cursor_file = 0, self._read_file.identity
            rows = conn.execute("SELECT id, grp, channel, payload FROM message WHERE id > ? ORDER BY id LIMIT ?",
                                (self._cursor, _BATCH)).fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._read_file.close()
            self._warn("read", exc)
            return False
        if not rows:
            return False
        self._cursor = rows[-1][0]
        deliveries = {}  # inbox -> payloads, so each event loop is woken once per poll
        with self._lock:
            for _, group, channel, payload in rows:
                targets = self._groups.get(group, ()) if group is not None else (channel,)
                for name in targets:
                    inbox = self._inboxes.get(name)
                    if inbox is not None:
                        deliveries.setdefault(inbox, []).append(payload)
        by_loop = {}
        for inbox, payloads in deliveries.items():
            by_loop.setdefault(inbox.loop, []).append((inbox, payloads))
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # that loop has closed: its channels are gone
                with self._lock:
                    for inbox, _ in batch:
                        for name in [n for n, i in self._inboxes.items() if i is inbox]:
                            self._inboxes.pop(name, None)
        return len(rows) == _BATCH


def _deliver(batch):
    for inbox, payloads in batch:
        inbox.put(payloads)
