"""Drive queues from threads or from separate processes and check what they were granted."""
import math
import multiprocessing
import os
import threading
import time
import traceback

from workflows.spec import Queue


def queue(**fields):
    return Queue.model_validate(fields)


def peak_usage(grants, rate):
    """The most any window of the grants took beyond what the rate refilled in it:
    max over windows [t_i, t_j] of (units granted in it - rate * (t_j - t_i)). A limiter
    with bucket capacity C keeps this at or under C. `grants` are (time, units) pairs."""
    grants = sorted(grants)
    peak, lowest, total = -math.inf, math.inf, 0.0
    for at, units in grants:
        lowest = min(lowest, total - rate * at)
        total += units
        peak = max(peak, total - rate * at - lowest)
    return peak


def hammer(org_id, name, config, seconds, *, lane=None, tokens=(0,)):
    """Acquire as fast as possible for `seconds`; returns [(granted_at, lane, tokens)]."""
    from providers import queues

    deadline = time.time() + seconds
    grants = []
    for i in range(10**9):
        cost = tokens[i % len(tokens)]
        try:
            grant = queues.acquire(org_id, name, config, lane=lane, tokens=cost,
                                   should_stop=lambda: time.time() > deadline)
        except queues.QueueInterrupted:
            return grants
        grants.append((grant.granted_at, lane, cost))


def in_threads(jobs):
    """Run `hammer(**job)` for each job in its own thread; returns all grants."""
    results = []
    threads = [threading.Thread(target=lambda job=job: results.extend(hammer(**job))) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _child(conf, job, ready, go, results):
    try:
        from django.conf import settings

        settings.configure(**conf)
        job = dict(job, config=Queue.model_validate(job["config"]))
        ready.put(os.getpid())
        go.wait()
        results.put(("ok", hammer(**job)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def in_processes(conf, jobs):
    """Run `hammer(**job)` for each job in its own spawned process, all sharing the store
    described by `conf` (settings), started together once every process is ready. Returns
    all grants."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    jobs = [dict(job, config=job["config"].model_dump()) for job in jobs]
    processes = [context.Process(target=_child, args=(conf, job, ready, go, results)) for job in jobs]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=60)
        go.set()
        grants = []
        timeout = max(job["seconds"] for job in jobs) + 60
        for _ in processes:
            status, value = results.get(timeout=timeout)
            assert status == "ok", value
            grants += value
        return grants
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def start_waiter(conf, org_id, name, config):
    """A separate process, ready to wait on the queue (and never give up) once
    `process.go.set()` is called; meant to be killed."""
    context = multiprocessing.get_context("spawn")
    ready, go = context.Queue(), context.Event()
    process = context.Process(target=_wait_forever, args=(conf, org_id, name, config.model_dump(), ready, go),
                              daemon=True)
    process.start()
    ready.get(timeout=60)
    process.go = go
    return process


def _wait_forever(conf, org_id, name, config, ready, go):
    from django.conf import settings

    settings.configure(**conf)
    from providers import queues

    config = Queue.model_validate(config)
    ready.put(os.getpid())
    go.wait()
    queues.acquire(org_id, name, config)
    time.sleep(3600)
