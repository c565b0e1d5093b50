"""End-to-end throughput: a 3-node mock workflow started through the API.

    python -m tests.bench.throughput [--runs N] [--clients C]

PostgreSQL + Redis, one daphne process and 2 Huey worker processes on this machine. Clients
POST /api/v1/runs/ as fast as they can; each run's latency is from just before its POST to
its run.succeeded event. Prints a table, then one JSON line: runs_per_s, p50_ms, p99_ms.
"""
import argparse
import http.client
import json
import statistics
import threading
import time

from tests.bench._deployment import Deployment, bench_workflow, three_node_spec


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with Deployment(workers=args.workers) as deployment:
        workflow, version, key = bench_workflow(three_node_spec())
        deployment.start_web()
        deployment.start_workers()
        path = "/api/v1/runs/"
        body = json.dumps({"workflow": workflow.slug, "inputs": {"topic": "speed"}}).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        sent = {}
        lock = threading.Lock()
        counter = iter(range(args.runs))

        def client():
            # One kept-alive connection per client, as an HTTP library's session would.
            conn = http.client.HTTPConnection("127.0.0.1", deployment.port, timeout=30)
            for _ in counter:
                started = time.time()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 201:
                    raise RuntimeError(f"POST answered {response.status}: {payload[:200]!r}")
                with lock:
                    sent[json.loads(payload)["id"]] = started
            conn.close()

        first_post = time.time()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posted = time.time()

        from runs.models import Run, RunEvent

        deadline = time.time() + 300
        while time.time() < deadline:
            pending = Run.objects.filter(status__in=Run.ACTIVE).count()
            if not pending:
                break
            time.sleep(0.2)
        done = {
            str(run_id): created.timestamp()
            for run_id, created in RunEvent.objects.filter(type="run.succeeded").values_list("run_id", "created_at")
        }
        failed = Run.objects.exclude(status=Run.Status.SUCCEEDED).count()
        latencies = sorted((done[r] - sent[r]) * 1000 for r in sent if r in done)
        last = max(done.values())
        runs_per_s = len(done) / (last - first_post)
        result = {
            "runs_per_s": round(runs_per_s, 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        }
        print(f"runs posted        {len(sent)} in {posted - first_post:.1f} s ({len(sent) / (posted - first_post):.0f}/s)")
        print(f"runs succeeded     {len(done)}, not succeeded {failed}")
        print(f"completion rate    {result['runs_per_s']} runs/s")
        print(f"POST -> succeeded  p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
