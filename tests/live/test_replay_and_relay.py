"""What a socket on a run receives: the stored events after `after`, a `replayed` marker,
then live events and streamed tokens — every event once, in seq order."""
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from runs import engine, events
from runs.models import RunEvent, Step

from .helpers import aemit, emit, event_of_type, events_in, open_socket, read_until, replayed, seqs_in

pytestmark = pytest.mark.django_db(transaction=True)


def stored_messages(run):
    return [e.as_message() for e in RunEvent.objects.filter(run=run).order_by("seq")]


astored_messages = database_sync_to_async(stored_messages)


def test_it_replays_the_stored_events_after_the_given_seq(make_run, alice):
    run = make_run()
    emit(run, "log", "log", "log")

    async def scenario():
        communicator = await open_socket(run.pk, alice, after=2)
        messages = await read_until(communicator, replayed)
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()

    assert events_in(messages) == stored_messages(run)[2:]
    assert messages[-1] == {"type": "replayed", "last_seq": 4}


def test_it_replays_everything_without_after_and_nothing_past_the_end(make_run, alice):
    run = make_run()
    emit(run, "log")

    async def scenario():
        everything = await open_socket(run.pk, alice)
        first = await read_until(everything, replayed)
        caught_up = await open_socket(run.pk, alice, after=2)
        second = await read_until(caught_up, replayed)
        for communicator in (everything, caught_up):
            await communicator.disconnect()
        return first, second

    first, second = async_to_sync(scenario)()

    assert events_in(first) == stored_messages(run)
    assert second == [{"type": "replayed", "last_seq": 2}]


def test_it_relays_live_events_after_the_replay(make_run, alice):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        before = await read_until(communicator, replayed)
        await aemit(run, "log", "run.cancelled")
        live = await read_until(communicator, event_of_type("run.cancelled"))
        await communicator.disconnect()
        return before, live

    before, live = async_to_sync(scenario)()

    assert seqs_in(before) == [1]
    assert [m["type"] for m in live] == ["event", "event"]
    assert events_in(live) == stored_messages(run)[1:]


def test_it_sends_each_event_once_when_the_replay_and_the_layer_overlap(make_run, alice, monkeypatch):
    run = make_run()
    emit(run, "log")
    raced = []
    real_stored = events.stored

    def stored_while_an_event_commits(run_id, after, before=None, **options):
        # An event commits (and is announced) between joining the group and reading the
        # database: it is in the replay and arrives from the group as well.
        if not raced:
            raced.append(emit(run, "log")[0])
        return real_stored(run_id, after, before, **options)

    monkeypatch.setattr(events, "stored", stored_while_an_event_commits)

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        messages = await read_until(communicator, replayed)
        layer = get_channel_layer()
        # The layer repeats itself: an old event, then a new one twice.
        old = (await astored_messages(run))[0]
        await layer.group_send(events.group_name(run.pk), {"type": "run.event", "event": old})
        fourth = (await aemit(run, "log"))[0]
        newest = (await astored_messages(run))[-1]
        await layer.group_send(events.group_name(run.pk), {"type": "run.event", "event": newest})
        await aemit(run, "run.cancelled")  # announced after every copy above
        messages += await read_until(communicator, event_of_type("run.cancelled"))
        await communicator.disconnect()
        return messages, fourth

    messages, fourth = async_to_sync(scenario)()

    assert raced == [3] and fourth == 4
    assert seqs_in(messages) == [1, 2, 3, 4, 5]
    assert events_in(messages) == stored_messages(run)
    assert messages[3] == {"type": "replayed", "last_seq": 3}


def test_it_fills_a_gap_the_layer_left_from_the_database(make_run, alice, monkeypatch):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        messages = await read_until(communicator, replayed)
        with monkeypatch.context() as lossy:
            lossy.setattr(events, "publish_all", lambda committed: None)  # two announcements lost
            await aemit(run, "log", "log")
        await aemit(run, "run.cancelled")
        messages += await read_until(communicator, event_of_type("run.cancelled"))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()

    assert seqs_in(messages) == [1, 2, 3, 4]
    assert events_in(messages) == stored_messages(run)


def test_it_relays_streamed_tokens(make_run, alice):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        await read_until(communicator, replayed)
        for text in ("Hel", "lo", "!"):
            events.publish_delta(run.pk, 7, "write", text)
        deltas = [await communicator.receive_json_from(timeout=20) for _ in range(3)]
        await communicator.disconnect()
        return deltas

    deltas = async_to_sync(scenario)()

    assert deltas == [{"type": "delta", "delta": {"run": str(run.pk), "step": 7, "node": "write", "text": text}}
                      for text in ("Hel", "lo", "!")]


def test_it_streams_a_run_as_the_engine_drives_it(make_run, alice):
    run = make_run()
    driver = threading.Thread(target=_drive, args=(run.pk,))

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        messages = await read_until(communicator, replayed)
        driver.start()
        messages += await read_until(communicator, event_of_type("run.succeeded"))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()
    driver.join(30)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert seqs_in(messages) == list(range(1, run.last_seq + 1))
    assert events_in(messages) == stored_messages(run)
    write = Step.objects.get(run=run, node_id="write")
    deltas = [m["delta"] for m in messages if m["type"] == "delta"]
    assert deltas and {(d["step"], d["node"]) for d in deltas} == {(write.pk, "write")}
    assert "".join(d["text"] for d in deltas) == write.output
    # Tokens stream after the step started, before it succeeded.
    kinds = [m["event"]["type"] if m["type"] == "event" else m["type"] for m in messages]
    first, last = kinds.index("delta"), len(kinds) - 1 - kinds[::-1].index("delta")
    assert kinds[first - 1] == "step.started" and kinds[last + 1] == "step.succeeded"


def _drive(run_id):
    try:
        engine.execute(run_id)
    finally:
        connection.close()


def test_it_answers_pings_and_ignores_anything_else(make_run, alice):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        await read_until(communicator, replayed)
        await communicator.send_to(text_data="not json")
        await communicator.send_to(bytes_data=b"\x00\x01")
        await communicator.send_to(text_data='{"type": "subscribe", "run": "another"}')
        await communicator.send_json_to({"type": "ping"})
        pong = await communicator.receive_json_from(timeout=20)
        await aemit(run, "log")
        after = await communicator.receive_json_from(timeout=20)
        await communicator.disconnect()
        return pong, after

    pong, after = async_to_sync(scenario)()

    assert pong == {"type": "pong"}
    assert after == {"type": "event", "event": stored_messages(run)[1]}
