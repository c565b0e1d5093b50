"""What the browser tests do on the pages, named the way a user would say it."""
import os
import re
from pathlib import Path

import pytest

LIVE_TIMEOUT_MS = 60_000  # a slow run lasts about ten seconds; a loaded CI machine may take longer

# Opens the run's socket from the page and reports what happened: {opened, code, types}.
SOCKET_PROBE = """
(path) => new Promise((resolve) => {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + path);
  const types = [];
  const timer = setTimeout(() => resolve({opened: false, code: null, types, timeout: true}), 15000);
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    types.push(data.type);
    if (data.type === "replayed") { clearTimeout(timer); ws.close(1000); resolve({opened: true, code: null, types}); }
  };
  ws.onclose = (event) => { clearTimeout(timer); resolve({opened: false, code: event.code, types}); };
})
"""


def unavailable(what):
    """Skip, or fail under CI=true, where nothing may be skipped for a missing browser."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (required under CI=true)", pytrace=False)
    pytest.skip(what)


def start_run(page, slug):
    """Submit the Run form of workflow `slug` with its defaults; returns the run id."""
    page.goto(f"/workflows/{slug}/")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def run_status(page):
    return page.locator("[data-run-status]").get_attribute("data-run-status")


def wait_for_status(page, *statuses, timeout=LIVE_TIMEOUT_MS):
    page.wait_for_function(
        "(wanted) => wanted.includes(document.querySelector('[data-run-status]')?.dataset.runStatus)",
        arg=list(statuses), timeout=timeout)


def node_label(page, node):
    """The accessible name of a node of the graph (its id, status, duration and cost)."""
    return page.locator(f"#graph-node-{node}").get_attribute("aria-label") or ""


def wait_for_node(page, node, status_label, timeout=LIVE_TIMEOUT_MS):
    page.wait_for_function(
        "([node, label]) => (document.getElementById('graph-node-' + node)?.getAttribute('aria-label') || '')"
        ".includes(': ' + label)",
        arg=[node, status_label], timeout=timeout)


def api_run(page, run_id):
    """The run as the REST API returns it, read with the page's session."""
    response = page.request.get(f"/api/v1/runs/{run_id}/")
    assert response.ok, response.status
    return response.json()


def mark_page(page):
    """Marks the current document; `is_same_page` is False once it was reloaded or left."""
    page.evaluate("window.__notReloaded = true")


def is_same_page(page):
    return page.evaluate("window.__notReloaded === true")


def screenshot(page, name):
    """Saves a full-page screenshot under $SCREENSHOT_DIR when set (to look at the layout)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
