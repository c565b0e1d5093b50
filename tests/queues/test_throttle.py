"""A provider's 429 with retry-after pauses the queue for every process until then."""
import time

from providers import queues

from .helpers import in_processes, queue


def test_a_429_pauses_the_queue_for_every_process(store):
    config = queue(max_requests_per_minute=6000, burst_size=10)
    paused_at = time.time()

    queues.throttle(1, "openai", 1.5)
    grants = in_processes(store, [dict(org_id=1, name="openai", config=config, seconds=2.5) for _ in range(2)])

    assert grants
    assert min(at for at, _, _ in grants) >= paused_at + 1.5 - 0.01
    # After the pause, up to the burst goes at once, then 100 a second.
    assert queues.status(1, "openai").paused_s == 0


def test_a_longer_pause_is_kept_when_a_shorter_one_comes(store):
    queues.throttle(1, "openai", 30)

    queues.throttle(1, "openai", 1)

    assert queues.status(1, "openai").paused_s > 25


def test_a_missing_or_negative_retry_after_does_not_pause(store):
    for retry_after in (None, 0, -5, float("nan")):
        queues.throttle(1, "openai", retry_after)

    assert queues.status(1, "openai").paused_s == 0
    assert queues.acquire(1, "openai", queue(max_requests_per_minute=60)).waited_s < 0.5


def test_a_pause_is_capped_at_an_hour(store):
    queues.throttle(1, "openai", 10**9)

    assert 3500 < queues.status(1, "openai").paused_s <= 3600
