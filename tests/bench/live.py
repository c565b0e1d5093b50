"""Live run sockets: how soon a watcher sees a run start, and fan-out to many watchers.

    python -m tests.bench.live [--first-runs N] [--clients C] [--rate R] [--seconds S]
                               [--watchers W] [--worker-threads T]

PostgreSQL + Redis (channels-redis pub/sub), one daphne process and 2 Huey worker
processes on this machine; WebSocket clients (the `websockets` package) sign in with a
session cookie, as a browser does.

(a) First event: N runs one after another; each is POSTed to /api/v1/runs/ (API key), then
    a socket is opened on it with ?after=0 (its replay covers whatever happened before it
    connected); the time is from just before the POST to the arrival of the first
    step.started event (the table also shows the POST's own share).
(b) Fan-out: C clients watch runs of a streaming workflow (about 0.7 s each) while R runs a
    second are posted for S seconds. Each run is watched by W clients, in turn: a client
    opens a socket on its run when the run is posted, as the run's page would, reads to
    its terminal event and keeps the page open until it is handed its next run (every
    C / (R * W) seconds), so about C sockets stay open and R * W open each second. Every
    client's events are checked by seq against the database (missed, duplicated);
    delivery latency is from an event's created_at to its arrival, over the events that
    arrived live (after the replay); the daphne process's RSS is sampled throughout.

Prints a table, then one JSON line: first_event_p50_ms, first_event_p99_ms, clients,
events_missed, events_duplicated, delivery_p50_ms, delivery_p99_ms, server_rss_mb.
"""
import argparse
import asyncio
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime

from websockets.asyncio.client import connect

from tests.bench._deployment import ROOT, Deployment, bench_workflow, rss_mb, three_node_spec

TERMINAL = {"run.succeeded", "run.failed", "run.cancelled"}
WAIT_S = 60  # longest wait for any one message; only reached when something is broken


def streaming_spec():
    """A run of about 0.7 s: a quarter second to the first token, then about 10 streamed."""
    return {
        "version": 1, "name": "streaming",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1",
                             "options": {"latency_ms": 250, "tokens_per_second": 30}}},
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "write", "type": "llm", "source": "mock", "prompt": "Write about {{ inputs.topic }}",
             "stream": True},
            {"id": "done", "type": "output", "value": "{{ nodes.write.output }}"},
        ],
        "inputs": {"topic": {"type": "string", "default": "live pages"}},
        "edges": [{"from": "start", "to": "write"}, {"from": "write", "to": "done"}],
    }


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))]


class LiveDeployment(Deployment):
    """The bench deployment, with worker processes of several threads: (b) keeps about 15
    runs going, and a run holds its worker thread for its whole length."""

    def start_workers(self, threads=1):
        for _ in range(self.workers):
            self.procs.append(subprocess.Popen(
                [sys.executable, "manage.py", "run_worker", "--workers", str(threads)],
                cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return [p.pid for p in self.procs[-self.workers:]]


class Api:
    """POSTs runs over one keep-alive connection per thread."""

    def __init__(self, port, key):
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.local = threading.local()

    def start_run(self, workflow):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("POST", "/api/v1/runs/", json.dumps({"workflow": workflow}), self.headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /api/v1/runs/ answered {response.status}: {body[:300]!r}")
        return json.loads(body)["id"]


class Sockets:
    def __init__(self, port, cookie):
        self.base = f"ws://127.0.0.1:{port}/ws/runs/"
        self.origin = f"http://127.0.0.1:{port}"
        self.headers = {"Cookie": cookie}

    def open(self, run_id, after=0):
        return connect(f"{self.base}{run_id}/?after={after}", origin=self.origin, additional_headers=self.headers,
                       open_timeout=WAIT_S, max_queue=None)


async def first_events(api, sockets, workflow, runs, warmup=10):
    """(total, post) milliseconds per run: from before each POST to the arrival of its run's
    first step.started, and the POST's own share."""
    timings = []
    for n in range(warmup + runs):
        started = time.perf_counter()
        run_id = await asyncio.to_thread(api.start_run, workflow)
        posted = time.perf_counter()
        async with sockets.open(run_id) as ws:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
                if message["type"] == "event" and message["event"]["type"] == "step.started":
                    break
        if n >= warmup:
            timings.append(((time.perf_counter() - started) * 1000, (posted - started) * 1000))
    return timings


class Watching:
    """What (b)'s clients saw: per (client, run) the seqs received, and live latencies."""

    def __init__(self):
        self.seen = {}  # (client, run id) -> [seq, ...] in arrival order
        self.latencies_ms = []
        self.deltas = 0
        self.open = self.peak_open = 0
        self.errors = []


async def watch(sockets, client, run_id, inbox, watching):
    """Watch one run to its end, then keep the page open (still reading, so that a late
    duplicate would be counted) until the client's next run is handed to it, which is
    returned (None at the end)."""
    seqs = watching.seen.setdefault((client, run_id), [])
    next_run = asyncio.ensure_future(inbox.get())
    try:
        async with sockets.open(run_id) as ws:
            watching.open += 1
            watching.peak_open = max(watching.peak_open, watching.open)
            try:
                live = ended = False
                while not (ended and next_run.done()):
                    receiving = asyncio.ensure_future(ws.recv())
                    waiting = [receiving] if next_run.done() else [receiving, next_run]
                    done, _ = await asyncio.wait(waiting, timeout=None if ended else WAIT_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if receiving not in done:
                        receiving.cancel()  # safe: websockets keeps the frame for the next recv()
                        if not done:
                            raise TimeoutError(f"nothing for {WAIT_S} s before the run ended")
                        continue
                    arrived = time.time()
                    message = json.loads(receiving.result())
                    if message["type"] == "event":
                        event = message["event"]
                        seqs.append(event["seq"])
                        if live:
                            created = datetime.fromisoformat(event["at"]).timestamp()
                            watching.latencies_ms.append((arrived - created) * 1000)
                        ended = ended or event["type"] in TERMINAL
                    elif message["type"] == "replayed":
                        live = True
                    elif message["type"] == "delta":
                        watching.deltas += 1
            finally:
                watching.open -= 1
    except Exception as exc:  # counted as missed events below, and reported
        watching.errors.append(f"{type(exc).__name__}: {exc}")
    return await next_run


async def client_loop(sockets, client, inbox, watching):
    run_id = await inbox.get()
    while run_id is not None:
        run_id = await watch(sockets, client, run_id, inbox, watching)


async def fan_out(api, sockets, workflow, clients, rate, seconds, per_run, server_pid):
    watching = Watching()
    inboxes = [asyncio.Queue() for _ in range(clients)]
    tasks = [asyncio.create_task(client_loop(sockets, c, inboxes[c], watching)) for c in range(clients)]
    rss = []

    async def sample_rss():
        while True:
            rss.append(rss_mb(server_pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample_rss())
    posted = []

    async def post(n):
        run_id = await asyncio.to_thread(api.start_run, workflow)
        posted.append(run_id)
        for k in range(per_run):
            inboxes[(n * per_run + k) % clients].put_nowait(run_id)

    total = int(rate * seconds)
    began = time.monotonic()
    posts = []
    for n in range(total):
        await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
        posts.append(asyncio.create_task(post(n)))
    await asyncio.gather(*posts)
    post_s = time.monotonic() - began
    for inbox in inboxes:
        inbox.put_nowait(None)
    await asyncio.gather(*tasks)
    sampler.cancel()
    return watching, posted, per_run, post_s, max(rss)


def check(watching, run_ids):
    """(missed, duplicated, checked): every (client, run) against the run's events in the database."""
    from runs.models import RunEvent

    stored = {}
    for run_id, seq in RunEvent.objects.filter(run_id__in=run_ids).values_list("run_id", "seq"):
        stored.setdefault(str(run_id), set()).add(seq)
    missed = duplicated = checked = 0
    for (_, run_id), seqs in watching.seen.items():
        expected = stored.get(run_id, set())
        checked += len(expected)
        missed += len(expected - set(seqs))
        duplicated += len(seqs) - len(set(seqs))
    return missed, duplicated, checked


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=20, help="runs posted per second in (b)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--watchers", type=int, default=2, help="clients watching each run in (b)")
    parser.add_argument("--worker-threads", type=int, default=8, help="threads of each of the 2 worker processes")
    args = parser.parse_args()

    with LiveDeployment(workers=2) as deployment:
        from django.conf import settings
        from django.test import Client

        from accounts.models import User
        from workflows.models import Workflow

        quick, _, key = bench_workflow(three_node_spec())
        streaming = Workflow.create_with_spec(quick.organization, streaming_spec(), slug="streaming")
        streaming.publish()
        browser = Client()
        browser.force_login(User.objects.get(email="bench@example.com"))  # made by bench_workflow
        cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
        server_pid = deployment.start_web()
        deployment.start_workers(args.worker_threads)
        api, sockets = Api(deployment.port, key), Sockets(deployment.port, cookie)

        timings = asyncio.run(first_events(api, sockets, quick.slug, args.first_runs))
        firsts = [total for total, _ in timings]
        print(f"(a) POST -> first step.started on a socket opened after the POST, {len(firsts)} runs: "
              f"p50 {statistics.median(firsts):.1f} ms, p99 {percentile(firsts, 0.99):.1f} ms "
              f"(the POST alone: p50 {statistics.median(post for _, post in timings):.1f} ms)", flush=True)

        watching, run_ids, per_run, post_s, server_rss = asyncio.run(fan_out(
            api, sockets, streaming.slug, args.clients, args.rate, args.seconds, args.watchers, server_pid))
        missed, duplicated, checked = check(watching, run_ids)
        latencies = watching.latencies_ms or [float("nan")]
        print(f"(b) {len(run_ids)} runs posted in {post_s:.1f} s, each watched by {per_run} of {args.clients} "
              f"clients (at most {watching.peak_open} sockets open at once)")
        print(f"    events expected {checked}, missed {missed}, duplicated {duplicated}; "
              f"{watching.deltas} token deltas; {len(watching.errors)} socket errors")
        for error in sorted(set(watching.errors))[:5]:
            print(f"    error: {error}")
        print(f"    live delivery (created_at -> arrival) over {len(watching.latencies_ms)} events: "
              f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms")
        print(f"    daphne RSS at most {server_rss:.1f} MiB")
        print(json.dumps({
            "first_event_p50_ms": round(statistics.median(firsts), 1),
            "first_event_p99_ms": round(percentile(firsts, 0.99), 1),
            "clients": args.clients,
            "events_missed": missed,
            "events_duplicated": duplicated,
            "delivery_p50_ms": round(statistics.median(latencies), 1),
            "delivery_p99_ms": round(percentile(latencies, 0.99), 1),
            "server_rss_mb": round(server_rss, 1),
        }))


if __name__ == "__main__":
    main()
