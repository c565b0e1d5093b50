"""Rate-limited queues under load: do the limits hold across worker processes?

    python -m tests.bench.queues [--store redis|sqlite] [--seconds 60] [--processes 4]

Worker processes (4 by default, each a separate Python with Django set up) call
`providers.queues.acquire` on one shared queue as fast as they can, three times over:

1. requests: 600 a minute, burst 10;
2. tokens: 120,000 tokens a minute, no request limit (so the bucket holds one second of
   tokens, 2,000), calls of 200, 400 and 600 estimated tokens in turn;
3. lanes: 600 a minute, burst 10, lanes weighted 3:1, half the processes in each lane;
   shares are counted after the first full bucket, which goes to whoever asks first.

Rates are measured from the first grant to the last, after the first full bucket (a full
bucket may go at once). Every window between two grants is also checked: a limiter with
bucket capacity C grants at most C + rate * length in it (grant times are the store's
clock, so the check is exact). Then the overhead of one acquire with free capacity,
measured in this process.

`--store redis` (default) uses Redis at $BENCH_QUEUES_REDIS_URL (redis://127.0.0.1:6379/12);
`--store sqlite` the embedded default (a SQLite file in a fresh VAR_DIR). Prints a table,
then one JSON line: store, rpm_measured, rpm_error_pct, burst_exceeded, tpm_measured,
tpm_error_pct, lane_shares, acquire_p50_ms, acquire_p99_ms, load_1m.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import traceback

REDIS_URL = os.environ.get("BENCH_QUEUES_REDIS_URL", "redis://127.0.0.1:6379/12")

REQUESTS = {"max_requests_per_minute": 600, "burst_size": 10}
TOKENS = {"max_tokens_per_minute": 120_000}
TOKEN_SIZES = (200, 400, 600)
TOKEN_BUCKET = 2_000  # one second of 120,000 a minute
LANES = {"max_requests_per_minute": 600, "burst_size": 10, "sub_queues": {"a": {"weight": 3}, "b": {"weight": 1}}}
FREE = {"max_requests_per_minute": 100_000_000, "burst_size": 1_000_000}


def _setup():
    import django

    django.setup()
    from workflows.spec import Queue

    return Queue


def _worker(org, name, config, lane, tokens, seconds, ready, go, results):
    try:
        Queue = _setup()
        from tests.queues.helpers import hammer

        config = Queue.model_validate(config)
        ready.put(os.getpid())
        go.wait()
        results.put(("ok", hammer(org, name, config, seconds, lane=lane, tokens=tokens)))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _hammer(org, name, config, jobs, seconds):
    """Run one worker process per (lane, tokens) job against the queue; returns all grants."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=_worker, args=(org, name, config, lane, tokens, seconds, ready, go, results))
                 for lane, tokens in jobs]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    grants = []
    for _ in processes:
        status, value = results.get(timeout=seconds + 120)
        if status != "ok":
            raise RuntimeError(value)
        grants += value
    for process in processes:
        process.join()
    return sorted(grants)


def _rate_per_minute(grants, bucket):
    """Units a minute from the first grant to the last, not counting the first full bucket."""
    span = grants[-1][0] - grants[0][0]
    return (sum(units for _, units in grants) - bucket) / span * 60


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--overhead-calls", type=int, default=5000)
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="agentflow-bench-queues-")
    os.environ.update({"DJANGO_SETTINGS_MODULE": "agentflow.settings", "AGENTFLOW_VAR_DIR": var,
                       "REDIS_URL": REDIS_URL if args.store == "redis" else "", "LOG_LEVEL": "WARNING"})
    os.environ.pop("DATABASE_URL", None)  # no database is touched; keep the default out of the way
    org = f"bench{os.getpid()}"
    try:
        Queue = _setup()
        from providers import queues
        from tests.queues.helpers import peak_usage

        load_1m = os.getloadavg()[0]
        n = args.processes

        grants = _hammer(org, "requests", REQUESTS, [(None, (0,))] * n, args.seconds)
        requests = [(at, 1) for at, _, _ in grants]
        rpm = _rate_per_minute(requests, REQUESTS["burst_size"])
        request_peak = peak_usage(requests, rate=10)

        grants = _hammer(org, "tokens", TOKENS, [(None, TOKEN_SIZES)] * n, args.seconds)
        tokens = [(at, cost) for at, _, cost in grants]
        tpm = _rate_per_minute(tokens, TOKEN_BUCKET)
        token_peak = peak_usage(tokens, rate=2000)

        grants = _hammer(org, "lanes", LANES, [("a" if i < n / 2 else "b", (0,)) for i in range(n)], args.seconds)
        # The first full bucket goes to whichever processes ask first; from then on both
        # lanes always have a waiter.
        lanes = [lane for _, lane, _ in grants[LANES["burst_size"]:]]
        shares = {lane: round(100 * lanes.count(lane) / len(lanes), 1) for lane in ("a", "b")}

        free = Queue.model_validate(FREE)
        for _ in range(50):  # connect, load the script
            queues.acquire(org, "free", free)
        took = []
        for _ in range(args.overhead_calls):
            started = time.perf_counter()
            queues.acquire(org, "free", free)
            took.append((time.perf_counter() - started) * 1000)
        took.sort()

        result = {
            "store": args.store,
            "rpm_measured": round(rpm, 1),
            "rpm_error_pct": round((rpm - 600) / 600 * 100, 2),
            "burst_exceeded": request_peak > REQUESTS["burst_size"] + 1e-6 or token_peak > TOKEN_BUCKET + 1e-3,
            "request_peak": round(request_peak, 3),
            "tpm_measured": round(tpm),
            "tpm_error_pct": round((tpm - 120_000) / 120_000 * 100, 2),
            "token_peak": round(token_peak, 1),
            "lane_shares": shares,
            "acquire_p50_ms": round(statistics.median(took), 3),
            "acquire_p99_ms": round(took[int(len(took) * 0.99) - 1], 3),
            "load_1m": round(load_1m, 2),
        }
        print(f"store                  {args.store}, {n} worker processes, {args.seconds:g} s a test, "
              f"{os.cpu_count()} cores, load {load_1m:.2f}")
        print(f"requests (600/min, 10) {len(requests)} grants, {rpm:.1f}/min ({result['rpm_error_pct']:+.2f}%), "
              f"worst window {request_peak:.3f} of burst 10")
        print(f"tokens (120,000/min)   {sum(c for _, c in tokens)} tokens, {tpm:.0f}/min "
              f"({result['tpm_error_pct']:+.2f}%), worst window {token_peak:.1f} of bucket {TOKEN_BUCKET}")
        print(f"lanes 3:1              a {shares['a']}%, b {shares['b']}% of {len(lanes)} grants")
        print(f"acquire, free queue    p50 {result['acquire_p50_ms']} ms, p99 {result['acquire_p99_ms']} ms")
        print(json.dumps(result))
    finally:
        if args.store == "redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"agentflow:queue:{org}:*"))
            if keys:
                client.delete(*keys)
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
