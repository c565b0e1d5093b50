"""Fixtures of the run tests: a worker that runs tasks inline, a record of what was handed
to Huey, and workflows in Acme to run."""
import pytest
from huey.contrib.djhuey import HUEY

from runs import tasks

from .helpers import install_catalog, make_workflow


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    """Run ids handed to Huey, in order. Without `worker` nothing picks them up, as if no
    worker were running; with it each task runs inline when it is enqueued."""
    calls = []
    real = tasks.execute_run

    def execute_run(run_id):
        calls.append(str(run_id))
        if HUEY.immediate:
            return real(run_id)
        return None

    monkeypatch.setattr(tasks, "execute_run", execute_run)
    return calls


@pytest.fixture
def worker(enqueued):
    """Huey runs each task inline (immediate mode), as soon as it is enqueued on commit."""
    before = HUEY.immediate
    HUEY.immediate = True
    yield enqueued
    HUEY.immediate = before


@pytest.fixture
def triage(acme, alice):
    return install_catalog(acme, "ticket-triage", author=alice)


@pytest.fixture
def linear(acme):
    return make_workflow(acme, slug="linear")


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
