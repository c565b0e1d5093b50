"""max_tokens_per_minute charges each call's estimate, corrects it with settle, and holds
across processes."""
from providers import queues

from .helpers import in_processes, peak_usage, queue


def test_it_holds_tokens_per_minute_across_processes(store):
    # 60,000 tokens a minute = 1,000 a second; with no request limit the bucket holds one
    # second of tokens.
    config = queue(max_tokens_per_minute=60_000)
    jobs = [dict(org_id=1, name="openai", config=config, seconds=3, tokens=(100, 300, 200)) for _ in range(3)]

    grants = in_processes(store, jobs)

    spent = sorted((at, tokens) for at, _, tokens in grants)
    assert peak_usage(spent, rate=1000) <= 1000 + 1e-3
    first = spent[0][0]
    in_three_seconds = sum(tokens for at, tokens in spent if at - first <= 3.0)
    assert 0.85 * 3000 <= in_three_seconds <= 1000 + 3000 + 300


def test_the_token_bucket_holds_what_a_request_burst_needs(store):
    # Bursts of 5 requests at 600 a minute refill in 0.5 s: the token bucket holds 0.5 s of
    # 120,000 a minute = 1,000 tokens, so the sixth 200-token call must wait.
    config = queue(max_requests_per_minute=600, max_tokens_per_minute=120_000, burst_size=5)
    first = [queues.acquire(1, "openai", config, tokens=200) for _ in range(5)]

    sixth = queues.acquire(1, "openai", config, tokens=200)

    assert all(grant.waited_s < 0.05 for grant in first)
    assert sixth.granted_at - first[0].granted_at >= 0.1 - 1e-5


def test_settle_charges_tokens_a_call_used_beyond_its_estimate(store):
    config = queue(max_tokens_per_minute=60_000)  # 1,000 a second, bucket of 1,000
    first = queues.acquire(1, "openai", config, tokens=100)

    queues.settle(1, "openai", config, estimated_tokens=100, actual_tokens=1100)
    second = queues.acquire(1, "openai", config, tokens=100)

    # 1,100 used of 1,000: the next 100 fit once 200 have drained, 0.2 s later.
    assert second.granted_at - first.granted_at >= 0.2 - 1e-5
    assert second.waited_s < 2


def test_settle_gives_back_tokens_a_call_did_not_use(store):
    config = queue(max_tokens_per_minute=60_000)
    queues.acquire(1, "openai", config, tokens=1000)

    queues.settle(1, "openai", config, estimated_tokens=1000, actual_tokens=0)
    second = queues.acquire(1, "openai", config, tokens=1000)

    # Without the refund this would wait a whole second for the bucket to refill.
    assert second.waited_s < 0.5


def test_a_call_bigger_than_the_bucket_goes_when_the_bucket_is_full_and_leaves_it_owing(store):
    config = queue(max_tokens_per_minute=60_000)  # bucket of 1,000
    big = queues.acquire(1, "openai", config, tokens=1500)

    small = queues.acquire(1, "openai", config, tokens=100)

    assert big.waited_s < 0.5
    # 1,500 owed against a bucket of 1,000: the next 100 wait until 600 have drained.
    assert small.granted_at - big.granted_at >= 0.6 - 1e-5


def test_settle_without_a_token_limit_asks_no_store(store, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # would fail if the store were asked

    queues.settle(1, "openai", queue(max_requests_per_minute=60), estimated_tokens=100, actual_tokens=900)
