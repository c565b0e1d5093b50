"""A queue belongs to one organization: another organization's queue of the same name is
another queue; every run of the organization shares its own."""
import pytest

from providers import queues

from .helpers import queue


def test_organizations_do_not_share_a_queue_of_the_same_name(store, acme, globex):
    config = queue(max_requests_per_minute=6)  # one every 10 seconds
    queues.acquire(acme.pk, "openai", config)

    other = queues.acquire(globex.pk, "openai", config)

    assert other.waited_s < 0.5
    with pytest.raises(queues.QueueInterrupted):
        queues.acquire(acme.pk, "openai", config, should_stop=_after(0.3))


def test_queues_of_one_organization_are_shared_by_name_only(store, acme):
    config = queue(max_requests_per_minute=6)
    queues.acquire(acme.pk, "openai", config)

    assert queues.acquire(acme.pk, "anthropic", config).waited_s < 0.5
    with pytest.raises(queues.QueueInterrupted):
        queues.acquire(acme.pk, "openai", config, should_stop=_after(0.3))


def test_a_pause_stays_in_its_organization(store, acme, globex):
    queues.throttle(acme.pk, "openai", 60)

    assert queues.status(globex.pk, "openai").paused_s == 0
    assert queues.acquire(globex.pk, "openai", queue(max_requests_per_minute=60)).waited_s < 0.5


def _after(seconds):
    import time

    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline
