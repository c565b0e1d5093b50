"""Engine overhead per step and fan-out wall time, beside LangGraph running the same graph.

    python -m tests.bench.engine

a. A 10-node and a 50-node linear workflow of mock LLM calls at zero latency, on SQLite and
   on PostgreSQL, against LangGraph 1.2 running the same graph (same mock provider) in the
   same process, with its SqliteSaver checkpointer and with none. Per-step overhead is the
   wall time of a whole run divided by its nodes, median of several runs.
b. Fan-out: 8 parallel branches of 200 ms simulated latency, then a join: wall time.

Each backend is measured in a child process with its own fresh database (a temporary
SQLite file; a `agentflow_bench` PostgreSQL database on 127.0.0.1). The last line printed is
one JSON object with every figure.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPEATS = 15
SIZES = (10, 50)
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/agentflow_bench")


def linear_spec(n):
    nodes = [{"id": "start", "type": "input"}]
    edges = []
    previous = "start"
    for i in range(1, n):
        node_id = f"n{i}"
        nodes.append({"id": node_id, "type": "llm", "source": "mock", "prompt": f"step {i}", "stream": False})
        edges.append({"from": previous, "to": node_id})
        previous = node_id
    return {
        "version": 1, "name": f"linear {n}",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1", "options": {"latency_ms": 0}}},
        "nodes": nodes, "edges": edges, "settings": {"parallelism": 8},
    }


def fanout_spec(branches=8, latency_ms=200):
    nodes = [{"id": "start", "type": "input"}]
    edges = []
    for i in range(branches):
        nodes.append({"id": f"b{i}", "type": "llm", "source": "mock", "prompt": f"branch {i}", "stream": False})
        edges.append({"from": "start", "to": f"b{i}"})
        edges.append({"from": f"b{i}", "to": "join"})
    nodes.append({"id": "join", "type": "aggregator", "mode": "list"})
    return {
        "version": 1, "name": "fan-out",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1",
                             "options": {"latency_ms": latency_ms}}},
        "nodes": nodes, "edges": edges, "settings": {"parallelism": branches},
    }


def _setup_django(backend):
    os.environ["DJANGO_SETTINGS_MODULE"] = "agentflow.settings"
    os.environ.pop("REDIS_URL", None)
    os.environ["AGENTFLOW_VAR_DIR"] = tempfile.mkdtemp(prefix="agentflow-bench-")
    if backend == "postgres":
        import psycopg

        admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
        name = PG_URL.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = PG_URL
    else:
        os.environ.pop("DATABASE_URL", None)
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _ours(spec, runs=REPEATS):
    """Median wall time (s) of engine.execute for a fresh run of `spec`."""
    from accounts.models import Organization, User
    from runs import engine
    from runs.models import Run
    from workflows.models import Workflow

    user = User.objects.filter(email="bench@example.com").first() or User.objects.create_user("bench@example.com", "x")
    org = Organization.objects.filter(slug="bench").first() or Organization.create_with_owner("Bench", user, slug="bench")
    workflow = Workflow.create_with_spec(org, spec)
    version = workflow.publish()
    inputs, _ = version.typed_spec().check_inputs({})
    times = []
    for _ in range(runs + 1):  # the first run warms caches and is not counted
        run = Run.start(workflow, version, inputs, mode="full")
        started = time.perf_counter()
        status = engine.execute(run.pk)
        times.append(time.perf_counter() - started)
        assert status == "succeeded", status
    return statistics.median(times[1:])


def _langgraph(n, checkpointer):
    """Median wall time (s) of LangGraph invoking the same linear graph of mock calls."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from providers.base import ChatRequest
    from providers.mock import MockProvider

    provider = MockProvider(model="mock-1", options={"latency_ms": 0})

    class State(TypedDict, total=False):
        outputs: dict

    def make(i):
        def node(state):
            text = provider.complete(ChatRequest(model="mock-1", prompt=f"step {i}")).text
            return {"outputs": {**state.get("outputs", {}), f"n{i}": text}}

        return node

    graph = StateGraph(State)
    graph.add_node("start", lambda state: {"outputs": {}})
    graph.add_edge(START, "start")
    previous = "start"
    for i in range(1, n):
        graph.add_node(f"n{i}", make(i))
        graph.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    graph.add_edge(previous, END)

    saver_cm = None
    if checkpointer:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        path = os.path.join(tempfile.mkdtemp(prefix="lg-bench-"), "checkpoints.sqlite")
        saver_cm = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
        app = graph.compile(checkpointer=saver_cm)
    else:
        app = graph.compile()
    times = []
    for run in range(REPEATS + 1):
        config = {"configurable": {"thread_id": f"t{run}"}}
        started = time.perf_counter()
        app.invoke({"outputs": {}}, config)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def child(backend):
    _setup_django(backend)
    result = {}
    for n in SIZES:
        result[f"ours_ms_per_node_{n}"] = _ours(linear_spec(n)) / n * 1000
    if backend == "sqlite":
        for n in SIZES:
            result[f"langgraph_sqlitesaver_ms_per_node_{n}"] = _langgraph(n, True) / n * 1000
            result[f"langgraph_memory_ms_per_node_{n}"] = _langgraph(n, False) / n * 1000
        result["fanout_8x200_wall_ms"] = _ours(fanout_spec(), runs=5) * 1000
    print(json.dumps(result))


def _run_child(backend):
    proc = subprocess.run([sys.executable, "-m", "tests.bench.engine", "--child", backend],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    sqlite = _run_child("sqlite") or {}
    postgres = _run_child("postgres") or {}
    for key, value in sorted({**{f"sqlite.{k}": v for k, v in sqlite.items()},
                              **{f"postgres.{k}": v for k, v in postgres.items()}}.items()):
        print(f"{key:48} {value:9.3f}")

    def mean(data, prefix):
        values = [data[f"{prefix}_{n}"] for n in SIZES if f"{prefix}_{n}" in data]
        return round(statistics.mean(values), 3) if values else None

    ours_sqlite = mean(sqlite, "ours_ms_per_node")
    lg_saver = mean(sqlite, "langgraph_sqlitesaver_ms_per_node")
    summary = {
        "step_overhead_ms_sqlite": ours_sqlite,
        "step_overhead_ms_postgres": mean(postgres, "ours_ms_per_node"),
        "langgraph_sqlitesaver_ms_per_node": lg_saver,
        "langgraph_memory_ms_per_node": mean(sqlite, "langgraph_memory_ms_per_node"),
        "ratio_vs_langgraph_sqlitesaver": round(ours_sqlite / lg_saver, 3) if ours_sqlite and lg_saver else None,
        "fanout_8x200_wall_ms": round(sqlite["fanout_8x200_wall_ms"], 1) if "fanout_8x200_wall_ms" in sqlite else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
