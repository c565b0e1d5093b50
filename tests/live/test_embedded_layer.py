"""The embedded default's channel layer: a SQLite file that carries announcements between the
worker and web server processes, and never makes a sender fail when the file is in trouble."""
import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from huey.contrib.djhuey import HUEY
from huey.storage import SqliteStorage

from agentflow.channel_layer import SqlitePubSubChannelLayer
from runs.models import RunEvent, Step

from .helpers import embedded_layer, event_of_type, events_in, open_socket, read_until, replayed, seqs_in

WAIT_S = 60  # a worker process has to start first

PUBLISHER = textwrap.dedent("""
    import asyncio, sys
    from agentflow.channel_layer import SqlitePubSubChannelLayer

    async def main(path, count, channel):
        layer = SqlitePubSubChannelLayer(path=path)
        for n in range(count):
            await layer.group_send("run_elsewhere", {"type": "run.event", "n": n})
        await layer.send(channel, {"type": "direct", "from": "publisher"})

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
""")


def _layer(path, **options):
    return SqlitePubSubChannelLayer(path=str(path), poll_interval=0.01, **options)


async def _receive(layer, channel, count=1):
    return [await asyncio.wait_for(layer.receive(channel), WAIT_S) for _ in range(count)]


def test_a_message_from_another_process_reaches_every_listening_process(tmp_path):
    path = tmp_path / "channels.sqlite3"
    web_1, web_2 = _layer(path), _layer(path)

    async def scenario():
        first, second = await web_1.new_channel(), await web_2.new_channel()
        await web_1.group_add("run_elsewhere", first)
        await web_2.group_add("run_elsewhere", second)
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER, str(path), "50", first, cwd=settings.BASE_DIR)
        assert await publisher.wait() == 0
        return await _receive(web_1, first, 51), await _receive(web_2, second, 50)

    at_first, at_second = async_to_sync(scenario)()

    expected = [{"type": "run.event", "n": n} for n in range(50)]
    assert at_first == [*expected, {"type": "direct", "from": "publisher"}]
    assert at_second == expected  # the direct message was for the first process's channel only


def test_a_channel_that_left_its_group_receives_nothing_more_from_it(tmp_path):
    layer = _layer(tmp_path / "channels.sqlite3")

    async def scenario():
        leaving, staying = await layer.new_channel(), await layer.new_channel()
        for channel in (leaving, staying):
            await layer.group_add("run_1", channel)
        await layer.group_discard("run_1", leaving)
        await layer.group_send("run_1", {"type": "run.event", "n": 1})
        await layer.send(leaving, {"type": "direct"})
        return await _receive(layer, leaving), await _receive(layer, staying)

    at_leaving, at_staying = async_to_sync(scenario)()

    assert at_leaving == [{"type": "direct"}]
    assert at_staying == [{"type": "run.event", "n": 1}]


def test_it_carries_on_when_its_file_is_deleted(tmp_path):
    path = tmp_path / "channels.sqlite3"
    worker, web = _layer(path), _layer(path)

    async def scenario():
        channel = await web.new_channel()
        await web.group_add("run_1", channel)
        await worker.group_send("run_1", {"type": "run.event", "n": 1})
        before = await _receive(web, channel)
        for name in ("channels.sqlite3", "channels.sqlite3-wal", "channels.sqlite3-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        await worker.group_send("run_1", {"type": "run.event", "n": 2})
        return before, await _receive(web, channel)

    before, after = async_to_sync(scenario)()

    assert before == [{"type": "run.event", "n": 1}]
    assert after == [{"type": "run.event", "n": 2}]
    assert path.exists()  # made again by the next send


def test_sending_drops_the_message_without_failing_when_the_file_cannot_be_written(tmp_path, caplog):
    (tmp_path / "not-a-directory").write_text("")
    layer = _layer(tmp_path / "not-a-directory" / "channels.sqlite3")

    with caplog.at_level(logging.WARNING, logger="agentflow.channel_layer"):
        async_to_sync(layer.group_send)("run_1", {"type": "run.event", "n": 1})
        async_to_sync(layer.group_send)("run_1", {"type": "run.event", "n": 2})

    warnings = [r for r in caplog.records if r.name == "agentflow.channel_layer"]
    assert len(warnings) == 1  # once, not once per message
    assert "messages are dropped" in warnings[0].getMessage()


def test_a_locked_file_drops_messages_until_it_is_free_again(tmp_path, caplog):
    path = tmp_path / "channels.sqlite3"
    sender, web = _layer(path, timeout=0.05), _layer(path)

    async def scenario():
        channel = await web.new_channel()
        await web.group_add("run_1", channel)
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        await sender.group_send("run_1", {"type": "run.event", "n": 1})  # dropped, not raised
        locker.execute("COMMIT")
        locker.close()
        await sender.group_send("run_1", {"type": "run.event", "n": 2})
        return await _receive(web, channel)

    with caplog.at_level(logging.WARNING, logger="agentflow.channel_layer"):
        received = async_to_sync(scenario)()

    assert received == [{"type": "run.event", "n": 2}]
    assert any("messages are dropped" in r.getMessage() for r in caplog.records)


def test_it_prunes_old_messages_and_keeps_delivering_after(tmp_path):
    path = tmp_path / "channels.sqlite3"
    sender, web = _layer(path, expiry=60, prune_interval=0), _layer(path)
    async_to_sync(sender.group_send)("run_1", {"type": "run.event", "n": 0})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE message SET created = ?", (time.time() - 120,))

    async def scenario():
        channel = await web.new_channel()
        await web.group_add("run_1", channel)
        await sender.group_send("run_1", {"type": "run.event", "n": 1})
        return await _receive(web, channel)

    assert async_to_sync(scenario)() == [{"type": "run.event", "n": 1}]
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, payload FROM message").fetchall()
    assert rows == [(2, '{"type":"run.event","n":1}')]


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_streams_a_run_to_a_socket_without_redis(make_run, alice, tmp_path, settings,
                                                                     monkeypatch):
    settings.CHANNEL_LAYERS = embedded_layer(tmp_path / "channels.sqlite3")
    queue_file = tmp_path / "huey.sqlite3"
    monkeypatch.setattr(HUEY, "storage", SqliteStorage(name="agentflow", filename=str(queue_file)))
    spec = {
        "version": 1, "name": "Streaming",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1",
                             "options": {"latency_ms": 0, "tokens_per_second": 400}}},
        "nodes": [{"id": "start", "type": "input"},
                  {"id": "write", "type": "llm", "source": "mock", "prompt": "Tell a short story", "stream": True}],
        "edges": [{"from": "start", "to": "write"}],
    }
    run = make_run(spec=spec)  # queued in the worker's queue file
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(DATABASE_URL=_database_url(), HUEY_FILENAME=str(queue_file), MEDIA_ROOT=str(tmp_path / "media"),
               CHANNEL_LAYER_FILE=str(tmp_path / "channels.sqlite3"))
    log = open(tmp_path / "worker.log", "wb")
    worker = None

    async def scenario():
        nonlocal worker
        communicator = await open_socket(run.pk, alice)
        messages = await read_until(communicator, replayed)
        # Started only now, so that everything after run.queued is live, not replayed.
        worker = subprocess.Popen([sys.executable, "manage.py", "run_worker", "--workers", "1"],
                                  cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            message = await communicator.receive_json_from(timeout=WAIT_S)
            messages.append(message)
            if event_of_type("run.succeeded")(message):
                break
        await communicator.disconnect()
        return messages

    try:
        messages = async_to_sync(scenario)()
    except Exception:
        print((tmp_path / "worker.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert messages[1] == {"type": "replayed", "last_seq": 1}
    assert seqs_in(messages) == list(range(1, run.last_seq + 1))
    assert events_in(messages) == [e.as_message() for e in RunEvent.objects.filter(run=run).order_by("seq")]
    write = Step.objects.get(run=run, node_id="write")
    deltas = [m["delta"] for m in messages if m["type"] == "delta"]
    assert len(deltas) > 1
    assert "".join(d["text"] for d in deltas) == write.output


def _database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_process_whose_sockets_all_left_starts_listening_again_for_a_new_one(tmp_path):
    path = tmp_path / "channels.sqlite3"
    worker, web = _layer(path), _layer(path, idle_timeout=0)

    async def scenario():
        first = await web.new_channel()
        await web.group_add("run_1", first)
        await worker.group_send("run_1", {"type": "run.event", "n": 1})
        received = await _receive(web, first)
        waiting = asyncio.ensure_future(web.receive(first))
        await asyncio.sleep(0)
        waiting.cancel()  # the consumer ended: its channel goes, and the poller with it
        deadline = time.monotonic() + WAIT_S
        while web._poller is not None:
            assert time.monotonic() < deadline, "the poller did not stop"
            await asyncio.sleep(0.01)
        await worker.group_send("run_1", {"type": "run.event", "n": 2})  # nobody listens
        second = await web.new_channel()
        await web.group_add("run_1", second)
        await worker.group_send("run_1", {"type": "run.event", "n": 3})
        return received + await _receive(web, second)

    assert async_to_sync(scenario)() == [{"type": "run.event", "n": 1}, {"type": "run.event", "n": 3}]
