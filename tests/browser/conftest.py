"""The product started the way a user starts it, and Chromium driving it.

One product for the whole session: `manage.py start` (migrate, demo organization, admin,
catalog, daphne and a worker) in a subprocess with a temporary AGENTFLOW_VAR_DIR on a free
port. It runs on the embedded default (SQLite, no Redis), unless the tests themselves run
with DATABASE_URL / REDIS_URL set (CI runs the suite once that way): then it gets a fresh
PostgreSQL database `agentflow_browser` and Redis db 14 of its own, dropped afterwards, so
both deployments are exercised.

Chromium is Debian's (/usr/bin/chromium, package `chromium`); Playwright's own browser
download does not work here. Without it the tests skip, except under CI=true, where they fail.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from .helpers import unavailable

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DATABASE = "agentflow_browser"
REDIS_DB = 14
CATALOG = ROOT / "workflows" / "catalog"
CHARLIE = ("charlie@globex.test", "globex-charlie-password-1")
START_TIMEOUT_S = 120


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_path(url, path):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class Product:
    url: str
    var_dir: Path
    env: dict
    process: subprocess.Popen
    log: Path
    admin_email: str = "admin@example.com"
    admin_password: str = ""
    cleanups: list = field(default_factory=list)

    def manage(self, *args, check=True):
        """Run a management command in the product's environment; returns its stdout."""
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _postgres(env):
    """Point `env` at a fresh database of the PostgreSQL server the tests use; returns its dropper."""
    import psycopg

    server = _with_path(os.environ["DATABASE_URL"], "/postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    env["DATABASE_URL"] = _with_path(os.environ["DATABASE_URL"], f"/{DATABASE}")

    def drop():
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    return drop


def _redis(env):
    """Point `env` at Redis db 14, emptied first; returns what empties it again."""
    import redis

    url = _with_path(os.environ["REDIS_URL"], f"/{REDIS_DB}")
    redis.Redis.from_url(url).flushdb()
    env["REDIS_URL"] = url
    return lambda: redis.Redis.from_url(url).flushdb()


def _wait_until_up(product):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if product.process.poll() is not None:
            raise AssertionError(f"manage.py start exited with {product.process.returncode}:\n{product.log_tail()}")
        try:
            with urllib.request.urlopen(product.url + "accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the product did not answer within {START_TIMEOUT_S} s:\n{product.log_tail()}")


def _stop(process):
    """`manage.py start` stops its web server and worker on SIGTERM and then exits."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        # It started its children in its own session: end that group, found by its id.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="package")
def product(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("product-var")
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "SQLITE_TEST_NAME", "HUEY_FILENAME", "MEDIA_ROOT",
                          "CHANNEL_LAYER_FILE", "HUEY_NAME", "PORT", "HOST")}
    env.update(AGENTFLOW_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="agentflow.settings", LOG_LEVEL="WARNING",
               PYTHONUNBUFFERED="1")
    cleanups = []
    if os.environ.get("DATABASE_URL"):
        cleanups.append(_postgres(env))
    if os.environ.get("REDIS_URL"):
        cleanups.append(_redis(env))
    port = _free_port()
    log = var_dir / "product.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "start", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    running = Product(url=f"http://127.0.0.1:{port}/", var_dir=var_dir, env=env, process=process, log=log,
                      cleanups=cleanups)
    try:
        _wait_until_up(running)
        running.admin_password = (var_dir / "admin_password").read_text().strip()
        yield running
    finally:
        _stop(process)
        for cleanup in cleanups:
            cleanup()


# Package scope: Playwright's sync API keeps an event loop running in the main thread until it
# stops, which would break tests elsewhere that run their own loops (async_to_sync).
@pytest.fixture(scope="package")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def charlie(product):
    """Charlie, owner of Globex: another organization than the demo one."""
    product.manage("create_org", "globex", "--owner", CHARLIE[0], "--password", CHARLIE[1], "--name", "Globex")
    return CHARLIE


@pytest.fixture(scope="package")
def slow_workflow(product, tmp_path_factory):
    """"slow-notes": learn-a-topic with a mock that answers after 0.6 s and streams 15 tokens a
    second, so a run lasts long enough to watch (about ten seconds), published in the demo org."""
    entry = json.loads((CATALOG / "learn-a-topic.json").read_text())
    spec = entry["spec"]
    spec["name"] = "Slow notes"
    spec["sources"]["tutor"]["options"].update(latency_ms=600, tokens_per_second=15)
    path = tmp_path_factory.mktemp("specs") / "slow-notes.json"
    path.write_text(json.dumps(spec))
    product.manage("import_workflow", str(path), "--org", "demo", "--slug", "slow-notes", "--publish")
    return "slow-notes"


@pytest.fixture
def sign_in(browser, product):
    """sign_in(email=admin, password=…) -> a Page signed in through the login form, 1280×900.

    Every page reports JavaScript errors; a test fails when its pages had any."""
    contexts, errors = [], []

    def make(email=None, password=None):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=product.url)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(email or product.admin_email)
        page.get_by_label("Password").fill(password or product.admin_password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"
