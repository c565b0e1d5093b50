"""Announcing run events on the channel layer after the database has them, and reading
them back for those who missed some.

The channel layer only announces: a client that misses a message sees a gap in `seq` and
reads the missing events from the database (`stored`). Sending happens on one long-lived
event loop in a background thread, so a worker never blocks on the layer nor pays for a
loop per event. That thread sends one message at a time, in the order they were handed
over, so a run's events and a step's token deltas leave the process in order.

Messages on the group `run_<id>`: {"type": "run.events", "events": [RunEvent.as_message(), ...]}
(the events one transaction committed, in seq order; a single {"type": "run.event", "event": ...}
is understood too) and {"type": "run.delta", "delta": {run, step, node, text}} (streamed
tokens, never stored).
"""
import asyncio
import concurrent.futures
import logging
import threading

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

STORED_BATCH = 500  # events `stored` reads at most at once

_sender = None  # (loop, queue) of the sending thread
_lock = threading.Lock()


def group_name(run_id):
    return f"run_{run_id}"


def stored(run_id, after, before=None, limit=STORED_BATCH, runs=None):
    """The run's stored events with `after` < seq (and seq < `before` when given), oldest
    first, at most `limit`, as messages. Fewer than `limit` means there were no more.
    `runs` (a Run queryset) restricts the read to runs it holds: none when it lacks the run."""
    from .models import RunEvent  # models import this module to publish

    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if runs is not None:
        events = events.filter(run__in=runs)
    if before is not None:
        events = events.filter(seq__lt=before)
    return [event.as_message() for event in events.order_by("seq")[:limit]]


def _ensure_sender():
    global _sender
    with _lock:
        if _sender is None or _sender[0].is_closed():
            loop = asyncio.new_event_loop()
            queue = asyncio.Queue()
            threading.Thread(target=loop.run_until_complete, args=(_drain(queue),), name="run-events",
                             daemon=True).start()
            _sender = (loop, queue)
    return _sender


async def _drain(queue):
    while True:
        messages, done = await queue.get()
        # Looked up per batch: tests swap the layer between runs.
        layer = get_channel_layer()
        for group, message in messages:
            try:
                if layer is not None:
                    await layer.group_send(group, message)
            except Exception:  # the layer is best effort; the database keeps the event
                log.warning("could not publish to %s", group, exc_info=True)
        done.set_result(len(messages))


def _hand_off(messages):
    """Queue (group, message) pairs for the sending thread; returns a Future that resolves
    (to their number) once they were sent or given up on."""
    done = concurrent.futures.Future()
    loop, queue = _ensure_sender()
    loop.call_soon_threadsafe(queue.put_nowait, (messages, done))
    return done


def send(run_id, message):
    """Send `message` ({"type": ..., ...}) to the run's group without waiting.

    Returns a Future resolved once it was sent, or None when no channel layer is configured.
    """
    if get_channel_layer() is None:
        return None
    return _hand_off([(group_name(run_id), message)])


def publish_all(events):
    """Announce the committed events of one transaction, in order, with one hand-off.

    Returns a Future resolved once they were sent, or None when there is nothing to send.
    """
    if not events or get_channel_layer() is None:
        return None
    # One message per run, not per event: a turn's events travel together, at the cost of
    # one publish instead of several.
    by_run = {}
    for event in events:
        by_run.setdefault(event.run_id, []).append(event.as_message())
    return _hand_off([(group_name(run_id), {"type": "run.events", "events": messages})
                      for run_id, messages in by_run.items()])


def publish_delta(run_id, step_id, node_id, text):
    """Streamed tokens go to the channel layer only; the final text is saved on the step."""
    delta = {"run": str(run_id), "step": step_id, "node": node_id, "text": text}
    return send(run_id, {"type": "run.delta", "delta": delta})
