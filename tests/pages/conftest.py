"""Fixtures of the page tests: signed-in clients, catalog workflows in Acme (with their mock
sources answering at once) and a worker that runs Huey tasks inline."""
import copy

import pytest
from django.test import Client
from huey.contrib.djhuey import HUEY

from runs import engine
from workflows.management.commands.load_catalog import catalog_entries, install


def fast_entry(slug):
    """The catalog entry `slug` with its mock sources answering at once (the catalog streams
    slowly for demos)."""
    entry = copy.deepcopy(next(e for e in catalog_entries() if e["slug"] == slug))
    for source in entry["spec"].get("sources", {}).values():
        if source.get("provider") == "mock":
            source.setdefault("options", {}).update(latency_ms=0, tokens_per_second=0)
    return entry


@pytest.fixture
def client_as():
    """client_as(user) -> a Django test Client signed in as that user."""

    def make(user):
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def install_workflow(acme, alice):
    """install_workflow(slug, org=acme) -> the catalog workflow, created and published."""

    def make(slug, org=None):
        workflow, _ = install(org or acme, fast_entry(slug), author=alice)
        return workflow

    return make


@pytest.fixture
def worker():
    """Huey runs each task inline as soon as it is enqueued (on commit)."""
    before = HUEY.immediate
    HUEY.immediate = True
    # Test databases reuse primary keys after each test; the engine caches specs by version pk.
    engine._spec_cache.clear()
    yield
    HUEY.immediate = before
    engine._spec_cache.clear()


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
