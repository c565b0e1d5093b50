import pytest
from huey.contrib.djhuey import HUEY
from huey.storage import MemoryStorage

from runs import engine


@pytest.fixture(autouse=True)
def _private_queue(monkeypatch):
    # Runs started here enqueue a task on commit: keep those tasks in memory, away from any
    # real worker's queue. These tests drive runs with engine.execute themselves.
    monkeypatch.setattr(HUEY, "storage", MemoryStorage(HUEY.name))


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _no_shutdown():
    engine.shutdown.clear()
    yield
    engine.shutdown.clear()


@pytest.fixture
def call_log(tmp_path):
    """A file the mock provider appends each call's idempotency key to."""
    return str(tmp_path / "calls.log")
