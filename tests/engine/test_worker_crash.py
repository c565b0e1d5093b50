"""A real worker process (`manage.py run_worker`) drives runs against the test database;
the tests kill it, stop it and start another, as an operator or a crash would."""
import os
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from huey.contrib.djhuey import HUEY
from huey.storage import RedisStorage, SqliteStorage

from runs.models import Run, Step

from .helpers import assert_events_consistent, linear, llm, mock_source, read_calls, spec, start_run, steps_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 60  # the longest any single wait may take
LEASE_TTL_S = 2


def _database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Starts worker processes sharing this test's database and a queue of its own."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.processes = []
        self.env = {**os.environ, "DATABASE_URL": _database_url(), "RUN_LEASE_TTL_S": str(LEASE_TTL_S),
                    "RUN_POLL_S": "0.2", "MEDIA_ROOT": str(tmp_path / "media"), "LOG_LEVEL": "INFO"}
        if settings.REDIS_URL:
            name = f"agentflow-test-{uuid.uuid4().hex[:12]}"
            self.env["HUEY_NAME"] = name
            self.storage = RedisStorage(name=name, url=settings.REDIS_URL)
        else:
            self.env.pop("REDIS_URL", None)
            self.env["HUEY_FILENAME"] = str(tmp_path / "huey.sqlite3")
            self.storage = SqliteStorage(name=HUEY.name, filename=self.env["HUEY_FILENAME"])

    def start(self):
        log = open(self.tmp_path / f"worker-{len(self.processes) + 1}.log", "wb")
        process = subprocess.Popen([sys.executable, "manage.py", "run_worker", "--workers", "2"],
                                   cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def logs(self):
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.tmp_path.glob("worker-*.log")))

    def stop_all(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
        if settings.REDIS_URL:
            self.storage.flush_all()


@pytest.fixture
def workers(tmp_path, monkeypatch):
    pool = Workers(tmp_path)
    # Runs started and decisions taken in this process enqueue on the workers' queue.
    monkeypatch.setattr(HUEY, "storage", pool.storage)
    try:
        yield pool
    finally:
        pool.stop_all()


def chain(call_log, count=5):
    ids = [f"s{i}" for i in range(1, count + 1)]
    return spec([llm(i) for i in ids], linear(*ids),
                sources={"model": mock_source(latency_ms=500, call_log=call_log)})


def step_running(run, node_id):
    return lambda: Step.objects.filter(run=run, node_id=node_id, status=Step.Status.RUNNING).exists()


def run_finished(run):
    return lambda: Run.objects.get(pk=run.pk).is_terminal


def wait(workers, predicate, message):
    try:
        return wait_for(predicate, timeout=WAIT_S, interval=0.05, message=message)
    except AssertionError:
        print(workers.logs())
        raise


def assert_each_step_called_once_but(run, call_log, interrupted):
    steps = steps_of(run)
    calls = read_calls(call_log)
    for node_id, step in steps.items():
        if step.node_type != "llm":
            continue
        expected = (1, 2) if node_id == interrupted else (1,)
        assert calls.get(step.idempotency_key) in expected, (node_id, calls)
    assert set(calls) <= {s.idempotency_key for s in steps.values()}


def test_it_resumes_after_worker_kill(acme, workers, call_log):
    run = start_run(acme, chain(call_log))
    first = workers.start()
    wait(workers, step_running(run, "s3"), "s3 to run on the first worker")

    first.kill()  # SIGKILL: no chance to hand anything back
    first.wait(10)
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.lease_owner
    # The lease runs out; a worker that starts then reaps the run and resumes it.
    wait(workers, lambda: Run.objects.get(pk=run.pk).lease_expires_at < timezone.now(), "the lease to expire")
    workers.start()
    wait(workers, run_finished(run), "the second worker to finish the run")

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, workers.logs())
    steps = steps_of(run)
    assert all(s.status == Step.Status.SUCCEEDED for s in steps.values())
    assert [steps[n].attempt for n in ("s1", "s2", "s4", "s5")] == [1, 1, 1, 1]
    assert steps["s3"].attempt == 2
    assert_each_step_called_once_but(run, call_log, "s3")
    assert read_calls(call_log)[steps["s3"].idempotency_key] <= 2
    assert_events_consistent(run)


def test_sigterm_hands_the_run_back(acme, workers, call_log):
    run = start_run(acme, chain(call_log))
    first = workers.start()
    wait(workers, step_running(run, "s3"), "s3 to run on the first worker")

    terminated = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(15)
    assert time.monotonic() - terminated < 5, workers.logs()
    assert first.returncode == 0, workers.logs()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING, run.error
    assert run.lease_owner == "" and run.lease_expires_at is None
    assert run.events.filter(type="log", data__message="worker shutting down; run handed back").exists()

    workers.start()  # picks up the task the first worker enqueued when it handed the run back
    wait(workers, run_finished(run), "the second worker to finish the run")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, workers.logs())
    assert_each_step_called_once_but(run, call_log, "s3")
    assert_events_consistent(run)


def test_waiting_run_survives_restart(acme, alice, workers, call_log):
    document = spec(
        [llm("draft"), {"id": "review", "type": "human"}, llm("publish")],
        linear("draft", "review", "publish"),
        sources={"model": mock_source(latency_ms=100, call_log=call_log)},
    )
    run = start_run(acme, document)
    first = workers.start()
    wait(workers, lambda: Run.objects.get(pk=run.pk).status == Run.Status.WAITING, "the run to wait")
    first.send_signal(signal.SIGTERM)
    first.wait(15)
    assert first.returncode == 0, workers.logs()

    run.decide("review", True, "ship it", alice)
    workers.start()
    wait(workers, run_finished(run), "the second worker to finish the run")

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, workers.logs())
    steps = steps_of(run)
    assert steps["review"].output["decision"] == "approved"
    assert_each_step_called_once_but(run, call_log, None)
    assert_events_consistent(run)
