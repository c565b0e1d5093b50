"""Worker memory: resident set size of a Huey worker process after 1,000 and 10,000 runs.

    python -m tests.bench.memory [--runs N]

PostgreSQL + Redis, one worker process; runs of a 3-node mock workflow are created in
batches and the worker's RSS is read from /proc when 1,000 and when all runs are done.
Prints one JSON line: rss_mb_1k, rss_mb_10k, rss_growth_pct.
"""
import argparse
import json
import time

from tests.bench._deployment import Deployment, bench_workflow, rss_mb, three_node_spec


def _wait_done(total, timeout=900):
    from runs.models import Run

    deadline = time.time() + timeout
    while time.time() < deadline:
        if Run.objects.filter(status=Run.Status.SUCCEEDED).count() >= total:
            return
        time.sleep(0.2)
    raise RuntimeError("runs did not finish in time")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=1_000)
    args = parser.parse_args()

    with Deployment(workers=1) as deployment:
        workflow, version, _ = bench_workflow(three_node_spec())
        (pid,) = deployment.start_workers()
        from runs.models import Run

        def create(count):
            for _ in range(count):
                Run.start(workflow, version, {"topic": "memory"}, mode="full")

        started = time.time()
        create(args.first)
        _wait_done(args.first)
        rss_first = rss_mb(pid)
        print(f"after {args.first} runs: {rss_first:.1f} MiB ({time.time() - started:.0f} s)", flush=True)
        done = args.first
        while done < args.runs:
            batch = min(1000, args.runs - done)
            create(batch)
            done += batch
            _wait_done(done)
            print(f"after {done} runs: {rss_mb(pid):.1f} MiB ({time.time() - started:.0f} s)", flush=True)
        rss_last = rss_mb(pid)
        result = {
            "rss_mb_1k": round(rss_first, 1),
            "rss_mb_10k": round(rss_last, 1),
            "rss_growth_pct": round((rss_last - rss_first) / rss_first * 100, 2),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
