"""The live alert ticker, policy edits reaching the policies topic, and tenant isolation."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from . import seed

pytestmark = pytest.mark.integration

# The bar: an alert injected into the pipeline shows on the fleet page within 5 s.
TICKER_DEADLINE_S = float(os.environ.get("AGENTSTREAM_TICKER_DEADLINE_S", "5"))


def test_injected_alert_appears_on_fleet_page_without_reload(acme, dashboard_stack):
    page = acme.page
    page.goto("/ui")
    page.wait_for_selector("#live-dot.on")  # the EventSource is connected
    page.wait_for_selector("#fleet-table tbody tr[data-agent]")
    page.evaluate("window.__noReload = 'still the same document'")
    now_us = int(time.time() * 1e6)
    alert = seed.alert(acme.tenant, "loop", "CRITICAL", f"injected loop {uuid.uuid4().hex[:6]}", now_us,
                       agent="support-agent", version="1.5.0", run_id=dashboard_stack.seeded.loop_run,
                       evidence={"repeats": "9"})
    started = time.monotonic()
    # alerts topic -> sink -> ClickHouse -> SSE (/v1/alerts/stream) -> the ticker
    seed.produce(dashboard_stack.bootstrap, dashboard_stack.prefix, [], [alert])
    page.wait_for_selector(f"#ticker li[data-alert-id='{alert['alert_id']}']",
                           timeout=TICKER_DEADLINE_S * 1000)
    took = time.monotonic() - started
    assert page.evaluate("window.__noReload") == "still the same document"
    item = page.locator(f"#ticker li[data-alert-id='{alert['alert_id']}']")
    assert alert["title"] in item.inner_text()
    assert item.locator(f"a[href='/ui/runs/{dashboard_stack.seeded.loop_run}']").count() == 1
    print(f"alert on the fleet page {took:.2f}s after it was produced")
    assert acme.console_errors == []


def test_one_tenant_cannot_open_another_tenants_run(acme, globex, dashboard_stack):
    seeded = dashboard_stack.seeded
    theirs = seeded.budget_run  # a globex run
    resp = acme.page.goto(f"/ui/runs/{theirs}")
    assert resp.status == 404
    assert "Not found" in acme.page.inner_text("main")
    assert acme.page.locator(".wf-bar").count() == 0
    # The same answer as for an id that does not exist at all.
    resp = acme.page.goto("/ui/runs/run-does-not-exist")
    assert resp.status == 404
    # The API behind it, with the same session cookie.
    for path in (f"/v1/runs/{theirs}", f"/v1/runs/{theirs}/timeline"):
        assert acme.page.request.get(path).status == 404
    listed = acme.page.request.get("/v1/runs?limit=500").json()["items"]
    assert listed and theirs not in {r["run_id"] for r in listed}
    assert {r["agent_id"] for r in listed} == {"support-agent", "billing-agent"}
    alerts = acme.page.request.get("/v1/alerts?limit=500").json()["items"]
    assert "budget_breach" not in {a["alert_type"] for a in alerts}
    # The owner does see it.
    resp = globex.page.goto(f"/ui/runs/{theirs}")
    assert resp.status == 200
    globex.page.wait_for_selector(".wf-bar[data-step-id]")


def test_login_is_required_and_checked(browser, dashboard_stack):
    ctx = browser.new_context(base_url=dashboard_stack.base_url)
    try:
        page = ctx.new_page()
        page.goto("/ui/runs")
        assert "/ui/login" in page.url  # redirected, with the page to come back to
        assert ctx.request.get("/v1/runs").status == 401
        assert ctx.request.get("/ui/api/fleet/series").status == 401
        page.fill("#api_key", "ask_" + "x" * 40)
        page.click("button[type=submit]")
        assert "not valid" in page.inner_text("main")
        page.fill("#api_key", dashboard_stack.keys[dashboard_stack.tenants[0]])
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/runs")
        cookie = next(c for c in ctx.cookies() if c["name"] == "as_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert dashboard_stack.keys[dashboard_stack.tenants[0]] not in cookie["value"]
        assert ctx.request.get("/v1/runs?limit=1").status == 200
        # Log out: the cookie is gone and the pages ask for a key again.
        page.click("header form button[type=submit]")
        page.wait_for_url("**/ui/login")
        assert not [c for c in ctx.cookies() if c["name"] == "as_session"]
        assert ctx.request.get("/v1/runs").status == 401
        # A forged cookie (another tenant's name, re-encoded) is refused.
        body, sig = cookie["value"].rsplit(".", 1)
        ctx.add_cookies([{**cookie, "value": body[:-2] + "AA." + sig}])
        assert ctx.request.get("/v1/runs").status == 401
    finally:
        ctx.close()


def test_cookie_writes_need_the_csrf_header(acme):
    r = acme.page.request.put("/v1/policies", data={"retention_days": 7})
    assert r.status == 403
    assert r.json()["error"]["code"] == "csrf_header_missing"
