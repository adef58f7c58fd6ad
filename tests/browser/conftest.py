"""The running embedded stack for the browser tests, in this one test process.

The session broker and topics, the session chDB client with the tables migrated, the real sink
in a thread (events and alerts topics → ClickHouse), and uvicorn serving the query API with the
dashboard mounted, on a free loopback port. Demo-like data is produced to the topics, so what the
pages show went through the sink. Headless Chromium is Debian's, driven by Playwright.
Package-scoped: the stack stops once this folder's tests are done, not at the end of the suite.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("AGENTSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    base_url: str
    bootstrap: str
    prefix: str
    keys: dict[str, str]
    tenants: tuple[str, str]
    seeded: Any
    client: Any
    settings: Any

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        return self.client.query(sql, parameters=params).result_rows


@pytest.fixture(scope="package")
def dashboard_stack(bootstrap: str, chdb_client, chdb_path, tmp_path_factory) -> Iterator[Stack]:
    import uvicorn

    from agentstream.api.app import create_app
    from agentstream.api.auth import add_key
    from agentstream.api.dashboard import mount_dashboard
    from agentstream.api.settings import ApiSettings
    from agentstream.sink import Sink, SinkSettings, apply_migrations

    from . import seed

    from agentstream.schemas.topics import create_topics

    apply_migrations(chdb_client)
    tag = uuid.uuid4().hex[:4]
    # Topics of our own on the session broker: the policy test runs a processors worker, which
    # must see only this stack's raw topic (never re-process other tests' records).
    topic_prefix = f"dash{tag}."
    create_topics(bootstrap, prefix=topic_prefix, partitions=2)
    tenants = (f"acme-{tag}", f"globex-{tag}")
    keys_file = tmp_path_factory.mktemp("dash") / "api_keys.json"
    keys = {t: add_key(keys_file, t, scopes=["read", "write"], name="browser-test") for t in tenants}

    sink = Sink(SinkSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                             group_id=f"agentstream-sink-dash-{tag}", clickhouse_dsn=f"chdb://{chdb_path}",
                             session_timeout_ms=6000, batch_max_seconds=0.2, read_policies=False),
                client=chdb_client).start()

    settings = ApiSettings(clickhouse_dsn=f"chdb://{chdb_path}", api_keys_file=keys_file,
                           bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                           alerts_poll_interval_s=0.5, sse_heartbeat_s=5.0)
    app = create_app(settings, client=chdb_client)
    if not getattr(app.state, "dashboard_sessions", None):  # create_app may already mount it
        mount_dashboard(app, settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="dashboard-api", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")

    events, alerts, info = seed.build(*tenants)
    seed.produce(bootstrap, topic_prefix, events, alerts)

    def stored() -> bool:
        n_events = chdb_client.query("SELECT count() FROM events WHERE tenant_id IN {t:Array(String)}",
                                     parameters={"t": list(tenants)}).result_rows[0][0]
        n_alerts = chdb_client.query("SELECT count() FROM alerts WHERE tenant_id IN {t:Array(String)}",
                                     parameters={"t": list(tenants)}).result_rows[0][0]
        return n_events >= info.events and n_alerts >= len(alerts)

    wait_for(stored, 120, "the sink to store the seeded events and alerts", interval=0.5)
    yield Stack(f"http://127.0.0.1:{port}", bootstrap, topic_prefix, keys, tenants, info, chdb_client, settings)
    server.should_exit = True
    thread.join(10)
    sink.stop(timeout=10)


def pytest_collection_modifyitems(config, items):
    """`make test` on a machine where Chromium cannot be installed has already said so in one
    line (.ci/ensure-chromium.sh) and asks for a skip; anywhere else a missing Chromium fails."""
    if os.environ.get("AGENTSTREAM_BROWSER_TESTS") != "skip" or Path(CHROMIUM).exists():
        return
    here = Path(__file__).parent
    mark = pytest.mark.skip(reason=f"Chromium not found at {CHROMIUM} (see make test's note)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(mark)


@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Session:
    """One logged-in browser context; collects console errors and every request's URL."""

    def __init__(self, browser, stack: Stack, tenant: str, logins: dict[str, Any] | None = None) -> None:
        self.stack = stack
        self.tenant = tenant
        # Log in through the form once per tenant; later contexts reuse that session cookie.
        state = (logins or {}).get(tenant)
        self.context = browser.new_context(base_url=stack.base_url, viewport={"width": 1440, "height": 900},
                                           storage_state=state)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        if state is None:
            self.login()
            if logins is not None:
                logins[tenant] = self.context.storage_state()

    def login(self) -> None:
        self.page.goto("/ui/login")
        self.page.fill("#api_key", self.stack.keys[self.tenant])
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui")

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if not (u.startswith(self.stack.base_url) or u.startswith("data:"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="package")
def logins() -> dict[str, Any]:
    return {}


@pytest.fixture
def acme(browser, dashboard_stack, logins) -> Iterator[Session]:
    s = Session(browser, dashboard_stack, dashboard_stack.tenants[0], logins)
    yield s
    s.close()


@pytest.fixture
def globex(browser, dashboard_stack, logins) -> Iterator[Session]:
    s = Session(browser, dashboard_stack, dashboard_stack.tenants[1], logins)
    yield s
    s.close()


def screenshot(page, name: str) -> Path:
    # The docs' screenshots are rewritten only on request (`make screenshots` points the variable
    # at docs/screenshots); a plain test run writes them to a temporary folder and never dirties
    # the checkout.
    folder = Path(os.environ.get("AGENTSTREAM_SCREENSHOT_DIR")
                  or Path(tempfile.gettempdir()) / "agentstream-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header would otherwise land mid-page
    page.screenshot(path=str(path), full_page=True)
    return path

