"""Announcing run events on the channel layer, after the database has them.

The channel layer only announces: a client that misses a message sees a gap in `seq` and
reads the missing events from the database. Sending happens on one long-lived event loop
in a background thread, so a worker never blocks on the layer and pays for a loop per event.
"""
import asyncio
import logging
import threading

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

_loop = None
_lock = threading.Lock()


def group_name(run_id):
    return f"run_{run_id}"


def _ensure_loop():
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="run-events", daemon=True).start()
    return _loop


async def _send(layer, group, message):
    try:
        await layer.group_send(group, message)
    except Exception:  # the layer is best effort; the database keeps the event
        log.warning("could not publish to %s", group, exc_info=True)


def send(run_id, message):
    """Send `message` ({"type": ..., ...}) to the run's group without waiting."""
    layer = get_channel_layer()
    if layer is None:
        return None
    return asyncio.run_coroutine_threadsafe(_send(layer, group_name(run_id), message), _ensure_loop())


async def _send_all(layer, messages):
    for group, message in messages:
        await _send(layer, group, message)


def publish_all(events):
    """Announce the committed events of one transaction, in order, with one hand-off."""
    layer = get_channel_layer()
    if layer is None or not events:
        return None
    messages = [(group_name(e.run_id), {"type": "run.event", "event": e.as_message()}) for e in events]
    return asyncio.run_coroutine_threadsafe(_send_all(layer, messages), _ensure_loop())


def publish_delta(run_id, step_id, node_id, text):
    """Streamed tokens go to the channel layer only; the final text is saved on the step."""
    return send(run_id, {"type": "run.delta", "delta": {"run": str(run_id), "step": step_id, "node": node_id, "text": text}})
