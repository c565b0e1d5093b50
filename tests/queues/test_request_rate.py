"""max_requests_per_minute and max_messages_per_second hold across processes: never more than
the burst at once, and the configured rate over time."""
import time

from providers import queues

from .helpers import hammer, in_processes, in_threads, peak_usage, queue


def test_it_never_grants_more_than_burst_plus_rate_across_processes(store):
    config = queue(max_requests_per_minute=1200, burst_size=5)
    jobs = [dict(org_id=1, name="openai", config=config, seconds=3) for _ in range(4)]

    grants = in_processes(store, jobs)

    times = sorted(at for at, _, _ in grants)
    assert peak_usage([(at, 1) for at in times], rate=20) <= 5 + 1e-6
    # 20 a second for 3 seconds, plus the first burst; the processes started together.
    steady = [at for at in times if at - times[0] <= 3.0]
    assert 0.85 * 60 <= len(steady) <= 5 + 60 + 1


def test_it_spaces_calls_evenly_without_a_burst_size(store):
    config = queue(max_requests_per_minute=600)

    grants = in_threads([dict(org_id=1, name="openai", config=config, seconds=1.5) for _ in range(3)])

    times = sorted(at for at, _, _ in grants)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert min(gaps) >= 0.1 - 1e-5
    assert 10 <= len(times) <= 16


def test_messages_per_second_limit_holds_like_requests(store):
    config = queue(max_messages_per_second=25, burst_size=3)

    grants = in_threads([dict(org_id=1, name="slack", config=config, seconds=2) for _ in range(3)])

    times = sorted(at for at, _, _ in grants)
    assert peak_usage([(at, 1) for at in times], rate=25) <= 3 + 1e-6
    assert 0.85 * 50 <= len(times) <= 3 + 50 + 1


def test_the_tighter_of_two_limits_wins(store):
    # 6000 a minute allows 100 a second; 10 messages a second is the binding limit.
    config = queue(max_requests_per_minute=6000, max_messages_per_second=10, burst_size=2)

    times = sorted(at for at, _, _ in hammer(1, "both", config, 1.5))

    assert peak_usage([(at, 1) for at in times], rate=10) <= 2 + 1e-6
    assert 12 <= len(times) <= 2 + 15 + 1


def test_a_queue_without_limits_grants_at_once_without_a_store(store, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: the store is not used

    grant = queues.acquire(1, "free", queue())

    assert grant.waited_s == 0
    assert abs(grant.granted_at - time.time()) < 5
