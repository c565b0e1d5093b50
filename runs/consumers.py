"""The live run socket: `/ws/runs/<run id>/?after=SEQ`.

Server → client, JSON text frames:
- `{"type": "event", "event": {run, seq, type, data, at}}`: every event with seq > `after`
  (default 0), each once, in seq order: first those the database holds, then live ones.
- `{"type": "replayed", "last_seq": N}`: sent once, after the stored events; N is the seq of
  the last event sent (or `after`).
- `{"type": "delta", "delta": {run, step, node, text}}`: streamed tokens, live only (the
  step's saved output is the full text).
- `{"type": "pong"}`: the answer to `{"type": "ping"}`; anything else from the client is
  ignored.

The socket is accepted and then closed with a code the page can read: 4401 not signed in,
4400 `after` is not a whole number ≥ 0, 4403 no such run in the session's current
organization (the same for a run of another organization, so run ids cannot be probed).
It stays open after the run ends; the page decides when to close it.
"""
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts import tenancy

from . import events
from .models import Run

NOT_SIGNED_IN, BAD_REQUEST, FORBIDDEN = 4401, 4400, 4403


# Sockets' reads run on the default thread pool, each thread with its own connection: on
# Channels' default single shared thread, every socket of the server would queue behind
# one another's reads.
def _read(function):
    return database_sync_to_async(function, thread_sensitive=False)


@_read
def _first_events(scope, run_id, after):
    """The first stored events after `after` when the run belongs to the organization the
    session acts in (accounts.tenancy, as for pages); None when it does not, or does not
    exist."""
    access = tenancy.for_session(SimpleNamespace(user=scope["user"], session=scope.get("session") or {}))
    visible = Run.objects.for_org(access.organization).filter(pk=run_id)
    # One query in the usual case: events found means the run is visible.
    found = events.stored(run_id, after, runs=visible)
    if not found and not visible.exists():
        return None
    return found


_stored = _read(events.stored)


def _after(scope):
    """The `after` query parameter as an int ≥ 0 (0 when absent), or None when malformed."""
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("after")
    if not values:
        return 0
    try:
        after = int(values[-1])
    except ValueError:
        return None
    return after if after >= 0 else None


class RunConsumer(AsyncJsonWebsocketConsumer):
    last_seq = None  # set once the socket may watch the run; nothing is relayed before

    async def connect(self):
        # Accept first: a refused handshake reaches the browser as a bare 1006, a close
        # after accepting carries the code.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.close(NOT_SIGNED_IN)
        after = _after(self.scope)
        if after is None:
            return await self.close(BAD_REQUEST)
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        group = events.group_name(self.run_id)
        # Join before reading: an event committed after the read is announced after we
        # joined, one committed before is in the read; one in both is dropped by seq.
        # Nothing is sent before the permission check, which shares the read's thread hop.
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)
        found = await _first_events(self.scope, self.run_id, after)
        if found is None:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups.remove(group)
            return await self.close(FORBIDDEN)
        self.last_seq = after
        for event in found:
            await self._send_event(event)
        if len(found) == events.STORED_BATCH:
            await self._send_stored()
        await self.send_json({"type": "replayed", "last_seq": self.last_seq})

    async def _send_stored(self, before=None):
        while True:
            found = await _stored(self.run_id, self.last_seq, before)
            for event in found:
                await self._send_event(event)
            if len(found) < events.STORED_BATCH:
                return

    async def _send_event(self, event):
        self.last_seq = event["seq"]
        await self.send_json({"type": "event", "event": event})

    async def dispatch(self, message):
        # Relaying a layer message touches no database connection (a gap is read through
        # database_sync_to_async, which checks connections itself), so it skips the thread
        # hop Channels makes before every handler to close stale connections.
        if message["type"] == "run.events":
            return await self.run_events(message)
        if message["type"] == "run.event":
            return await self.run_event(message)
        if message["type"] == "run.delta":
            return await self.run_delta(message)
        return await super().dispatch(message)

    async def run_events(self, message):
        for event in message["events"]:
            await self._relay(event)

    async def run_event(self, message):
        await self._relay(message["event"])

    async def _relay(self, event):
        if self.last_seq is None:
            return  # not allowed to watch: announced while the permission was being checked
        seq = event["seq"]
        if seq <= self.last_seq:
            return  # already sent, from the database or an earlier announcement
        if seq > self.last_seq + 1:
            # The layer lost some (or they come from another process, not yet arrived): the
            # database has them, since an event is announced only after it commits.
            await self._send_stored(before=seq)
        await self._send_event(event)

    async def run_delta(self, message):
        if self.last_seq is not None:
            await self.send_json({"type": "delta", "delta": message["delta"]})

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # The client needs to send nothing; keep-alive pings are answered, the rest ignored
        # (malformed frames included: they must not end the consumer with an error).
        if text_data and len(text_data) <= 1024:
            try:
                content = await self.decode_json(text_data)
            except ValueError:
                return
            if isinstance(content, dict) and content.get("type") == "ping":
                await self.send_json({"type": "pong"})
