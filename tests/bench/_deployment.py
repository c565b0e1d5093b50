"""A throwaway real deployment for benchmarks: a fresh PostgreSQL database, a Redis database
of its own, a daphne web server and Huey worker processes, all on this machine."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/agentflow_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def rss_mb(pid):
    """Resident memory of a process and its children, in MiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Deployment:
    def __init__(self, workers=2, web=True, port=8765):
        self.workers = workers
        self.web = web
        self.port = port
        self.var = tempfile.mkdtemp(prefix="agentflow-bench-")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "agentflow.settings",
            "DATABASE_URL": PG_URL,
            "REDIS_URL": REDIS_URL,
            "AGENTFLOW_VAR_DIR": self.var,
            "LOG_LEVEL": "WARNING",
            "HUEY_NAME": f"bench-{os.getpid()}",
        }
        self.procs = []

    def __enter__(self):
        import psycopg
        import redis

        admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
        name = PG_URL.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        redis.Redis.from_url(REDIS_URL).flushdb()
        os.environ.update(self.env)
        import django

        django.setup()
        import logging

        logging.disable(logging.INFO)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return self

    def start_workers(self):
        command = "run_worker" if (ROOT / "runs/management/commands/run_worker.py").exists() else "run_huey"
        for _ in range(self.workers):
            self.procs.append(subprocess.Popen(
                [sys.executable, "manage.py", command, "--workers", "1"],
                cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return [p.pid for p in self.procs[-self.workers:]]

    def start_web(self):
        proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                 "agentflow.asgi:application"], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/spec/schema", timeout=1)
                return proc.pid
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the web server did not start")

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.var, ignore_errors=True)


def three_node_spec():
    return {
        "version": 1, "name": "three nodes",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1", "options": {"latency_ms": 0}}},
        "nodes": [
            {"id": "start", "type": "input"},
            {"id": "write", "type": "llm", "source": "mock", "prompt": "Write about {{ inputs.topic }}", "stream": False},
            {"id": "done", "type": "output", "value": "{{ nodes.write.output }}"},
        ],
        "inputs": {"topic": {"type": "string", "default": "benchmarks"}},
        "edges": [{"from": "start", "to": "write"}, {"from": "write", "to": "done"}],
    }


def bench_workflow(spec):
    from accounts.models import ApiKey, Organization, User
    from workflows.models import Workflow

    user = User.objects.create_user("bench@example.com", "x")
    org = Organization.create_with_owner("Bench", user, slug="bench")
    workflow = Workflow.create_with_spec(org, spec, slug="bench")
    version = workflow.publish()
    _, key = ApiKey.issue(org, "bench", ["read", "write", "execute"])
    return workflow, version, key
