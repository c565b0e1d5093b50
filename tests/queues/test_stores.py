"""Redis holds a queue as one namespaced key; without Redis the state is a SQLite file in
VAR_DIR; a store that cannot be reached is a retryable error that never shows its URL."""
import json
from pathlib import Path

import pytest

from providers import queues

from .helpers import queue


def test_redis_keeps_a_queue_in_one_namespaced_key_that_expires(redis_store):
    client, prefix = redis_store

    queues.acquire(42, "openai", queue(max_requests_per_minute=60))

    key = f"{prefix}:42:openai"
    assert client.keys(prefix + ":*") == [key.encode()]
    assert 0 < client.pttl(key) <= 62_000
    state = json.loads(client.get(key))
    assert state["tat"]["r"] > 0


def test_without_redis_the_state_is_a_sqlite_file_in_var_dir(settings, tmp_path):
    settings.REDIS_URL, settings.VAR_DIR = "", str(tmp_path)

    queues.acquire(42, "openai", queue(max_requests_per_minute=60))

    assert (Path(tmp_path) / "queues.sqlite3").exists()


def test_an_unreachable_redis_is_a_retryable_error_without_its_password(settings, tmp_path):
    settings.REDIS_URL, settings.VAR_DIR = "redis://:hunter2secret@127.0.0.1:1/0", str(tmp_path)

    with pytest.raises(queues.QueueUnavailable) as failed:
        queues.acquire(42, "openai", queue(max_requests_per_minute=60))

    assert failed.value.retryable
    assert "hunter2secret" not in str(failed.value)
    assert failed.value.__suppress_context__  # the client's own message stays out of tracebacks
