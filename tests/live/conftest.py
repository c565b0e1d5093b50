"""Fixtures of the live socket tests: a channel layer of the test's own and runs in Acme.

The consumer reads the database from its own thread, so these tests commit for real
(`transaction=True`); each scenario is an async function run with async_to_sync.
"""
import pytest
from huey.contrib.djhuey import HUEY
from huey.storage import MemoryStorage

from runs.models import Run
from workflows.models import Workflow

from .helpers import embedded_layer, streaming_spec, redis_layer


@pytest.fixture(autouse=True)
def _private_queue(monkeypatch):
    # Runs started here enqueue a task on commit: keep it away from any real worker's queue.
    monkeypatch.setattr(HUEY, "storage", MemoryStorage(HUEY.name))


@pytest.fixture(autouse=True)
def layer_file(settings, tmp_path):
    """The deployment's kind of layer, private to the test: the embedded file layer on a
    file in tmp_path, or (with REDIS_URL) Redis pub/sub on the live tests' database."""
    path = tmp_path / "channels.sqlite3"
    settings.CHANNEL_LAYERS = redis_layer() if settings.REDIS_URL else embedded_layer(path)
    return path


@pytest.fixture
def make_run(acme):
    """make_run(org=acme, spec=None) -> a queued run (nobody drives it unless the test does)."""

    def make(org=None, spec=None):
        workflow = Workflow.create_with_spec(org or acme, spec or streaming_spec())
        version = workflow.publish()
        return Run.start(workflow, version, {})

    return make
