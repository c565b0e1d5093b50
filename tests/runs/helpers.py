"""What the run API tests share: URLs, workflows to run, failing specs and error checks."""
import copy

from workflows.management.commands.load_catalog import catalog_entries, install
from workflows.models import Workflow

from tests.workflows.spec_samples import linear_spec

RUNS = "/api/v1/runs/"


def run_url(run_id, rest=""):
    return f"{RUNS}{run_id}/{rest}"


def error_of(response, status, code=None):
    """The {"code", "message", "details"} of an error response, after checking its status."""
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, error
    return error


def fast(spec):
    """The spec with its mock sources answering at once (the catalog streams slowly for demos)."""
    spec = copy.deepcopy(spec)
    for source in spec.get("sources", {}).values():
        if source.get("provider") == "mock":
            source.setdefault("options", {}).update(latency_ms=0, tokens_per_second=0)
    return spec


def catalog(slug):
    return next(entry for entry in catalog_entries() if entry["slug"] == slug)


def install_catalog(org, slug, author=None):
    entry = catalog(slug)
    workflow, _ = install(org, {**entry, "spec": fast(entry["spec"])}, author=author)
    return workflow


def make_workflow(org, spec=None, *, publish=True, **fields):
    workflow = Workflow.create_with_spec(org, spec or linear_spec(), **fields)
    if publish:
        workflow.publish()
    return workflow


def failing_spec(call_log, times=1):
    """linear_spec() whose `draft` call fails `times` times (not retryable); every call is
    logged in `call_log`, one idempotency key a line."""
    spec = linear_spec()
    spec["sources"]["writer"] = {
        "kind": "llm", "provider": "mock", "model": "mock-1",
        "options": {"latency_ms": 0, "call_log": str(call_log),
                    "fail": [{"match": "^Draft from", "error": "boom", "retryable": False, "times": times}]},
    }
    return spec


def calls_in(call_log):
    """{idempotency key: number of provider calls}."""
    if not call_log.exists():
        return {}
    counts = {}
    for key in call_log.read_text().split():
        counts[key] = counts.get(key, 0) + 1
    return counts


def body_of(response, status):
    assert response.status_code == status, response.content[:800]
    return response.json()
