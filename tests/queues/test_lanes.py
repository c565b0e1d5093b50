"""Lanes (sub-queues) share a queue by weight while they contend; a lane alone gets all of it;
within a lane waiters are served in the order they came."""
import threading
import time

from providers import queues

from .helpers import in_processes, in_threads, queue


def test_lanes_share_by_weight_under_contention_across_processes(store):
    config = queue(max_requests_per_minute=1200, sub_queues={"live": {"weight": 3}, "batch": {"weight": 1}})
    jobs = [dict(org_id=1, name="openai", config=config, seconds=3, lane=lane)
            for lane in ("live", "live", "batch", "batch")]

    grants = in_processes(store, jobs)

    lanes = [lane for _, lane, _ in sorted(grants)]
    # Every process was waiting the whole time: both lanes contended for every grant.
    assert len(lanes) >= 45
    assert abs(lanes.count("live") / len(lanes) - 0.75) <= 0.05
    assert abs(lanes.count("batch") / len(lanes) - 0.25) <= 0.05


def test_a_lane_alone_gets_the_whole_queue(store):
    config = queue(max_requests_per_minute=1200, burst_size=2, sub_queues={"live": {"weight": 3}, "batch": {"weight": 1}})

    grants = in_threads([dict(org_id=1, name="openai", config=config, seconds=1.5, lane="batch") for _ in range(2)])

    # 20 a second, not the batch lane's 25% of it.
    assert 0.85 * 30 <= len(grants) <= 2 + 30 + 1


def test_a_lane_that_was_idle_cannot_claim_the_turns_it_missed(store):
    config = queue(max_requests_per_minute=1200, sub_queues={"live": {"weight": 1}, "batch": {"weight": 1}})
    in_threads([dict(org_id=1, name="openai", config=config, seconds=1, lane="live")])  # live alone for a while

    grants = in_threads([dict(org_id=1, name="openai", config=config, seconds=1.5, lane=lane)
                         for lane in ("live", "batch")])

    # Equal weights: from the moment both contend they alternate; live's lone turns earned
    # batch no backlog of its own and cost live nothing.
    lanes = [lane for _, lane, _ in sorted(grants)]
    assert abs(lanes.count("batch") - lanes.count("live")) <= 2


def test_waiters_in_a_lane_are_served_in_the_order_they_came(store):
    config = queue(max_requests_per_minute=6000)
    queues.throttle(1, "openai", 1)  # hold everyone while the line forms
    order = []

    def wait(n):
        queues.acquire(1, "openai", config)
        order.append(n)

    threads = []
    for n in range(5):
        threads.append(threading.Thread(target=wait, args=(n,)))
        threads[-1].start()
        while sum(queues.status(1, "openai").waiting.values()) < n + 1:
            assert not order, "the pause ended before the line formed"
            time.sleep(0.005)
    for thread in threads:
        thread.join()

    assert order == [0, 1, 2, 3, 4]
    assert queues.status(1, "openai").waiting == {}
