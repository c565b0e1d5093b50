"""Every queue behaviour is checked on both stores: the embedded SQLite file and Redis (db 12),
each test with a key prefix and a VAR_DIR of its own."""
import faulthandler
import os
import uuid

import pytest

REDIS_URL = os.environ.get("QUEUES_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture(autouse=True)
def _no_hang():
    # A waiter that is never served would block forever: end the run with every thread's
    # stack instead.
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is needed under CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable")
    return client


@pytest.fixture(params=["sqlite", "redis"])
def store(request, settings, tmp_path):
    """Point providers.queues at one store. Returns the settings a child process passes to
    `settings.configure()` to share that store."""
    conf = {"REDIS_URL": "", "VAR_DIR": str(tmp_path),
            "QUEUE_KEY_PREFIX": f"agentflow-test:{uuid.uuid4().hex}:queue"}
    client = None
    if request.param == "redis":
        client = _redis_client()
        conf["REDIS_URL"] = REDIS_URL
    for name, value in conf.items():
        setattr(settings, name, value)
    yield conf
    if client is not None:
        keys = list(client.scan_iter(match=conf["QUEUE_KEY_PREFIX"] + ":*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def redis_store(settings, tmp_path):
    """The Redis store alone, for what only Redis has (its keys)."""
    client = _redis_client()
    prefix = f"agentflow-test:{uuid.uuid4().hex}:queue"
    settings.REDIS_URL, settings.VAR_DIR, settings.QUEUE_KEY_PREFIX = REDIS_URL, str(tmp_path), prefix
    yield client, prefix
    keys = list(client.scan_iter(match=prefix + ":*"))
    if keys:
        client.delete(*keys)
