"""A waiter can be stopped (cancel, shutdown, timeout), hears how long it has waited, and a
waiter whose process died does not hold the line."""
import threading
import time

import pytest

from providers import queues
from providers.base import Interrupted

from .helpers import queue, start_waiter


def test_should_stop_interrupts_a_wait_and_gives_up_the_place(store):
    config = queue(max_requests_per_minute=60)
    queues.throttle(1, "openai", 60)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    with pytest.raises(queues.QueueInterrupted) as stopped:
        queues.acquire(1, "openai", config, should_stop=stop.is_set)

    assert isinstance(stopped.value, Interrupted) and stopped.value.retryable
    assert time.monotonic() - started < 5
    assert queues.status(1, "openai").waiting == {}


def test_on_wait_hears_the_seconds_waited_about_every_second(store):
    config = queue(max_requests_per_minute=60)
    queues.throttle(1, "openai", 2.5)
    heard = []

    grant = queues.acquire(1, "openai", config, on_wait=heard.append)

    assert grant.waited_s >= 2.4
    assert len(heard) == 2
    assert 0.9 <= heard[0] < 1.9 <= heard[1] + 0.1 < 3


def test_an_error_in_on_wait_gives_up_the_place(store):
    queues.throttle(1, "openai", 5)

    def fail(seconds):
        raise RuntimeError("display went away")

    with pytest.raises(RuntimeError):
        queues.acquire(1, "openai", queue(max_requests_per_minute=60), on_wait=fail)

    assert queues.status(1, "openai").waiting == {}


def test_a_killed_waiter_loses_its_place_in_line(store):
    config = queue(max_requests_per_minute=600)
    waiter = start_waiter(store, 1, "openai", config)
    queues.throttle(1, "openai", 1)
    waiter.go.set()
    deadline = time.monotonic() + 0.9
    while queues.status(1, "openai").waiting != {"": 1}:
        assert time.monotonic() < deadline, "the waiter never got in line"
        time.sleep(0.05)

    waiter.kill()
    waiter.join()
    grant = queues.acquire(1, "openai", config)

    # It was first in line; once its lease runs out the line moves on.
    assert grant.waited_s <= queues._LEASE + 2
    assert queues.status(1, "openai").waiting == {}
