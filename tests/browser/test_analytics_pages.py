"""The sessions, costs and alert-lifecycle pages against the running stack (seeded data through
the real sink): what they show equals what the API answers; screenshots go to docs/screenshots/."""
from __future__ import annotations

import httpx
import pytest

from .conftest import screenshot

pytestmark = pytest.mark.integration


def _api(stack, tenant, path, **params):
    r = httpx.get(stack.base_url + path, params=params, timeout=30,
                  headers={"Authorization": f"Bearer {stack.keys[tenant]}"})
    assert r.status_code == 200, r.text
    return r.json()


def _clean(s):
    assert s.console_errors == [], s.console_errors
    assert s.foreign_requests() == []


def test_sessions_list_and_one_session(acme, dashboard_stack):
    page = acme.page
    api = _api(dashboard_stack, acme.tenant, "/v1/sessions", limit=50)
    assert api["items"], "the seed has sessions"
    page.goto("/ui/sessions")
    page.wait_for_selector("#sessions-table tbody tr[data-session-id]")
    shown = page.locator("#sessions-table tbody tr[data-session-id]").evaluate_all("ns => ns.map(n => n.dataset.sessionId)")
    assert shown == [s["session_id"] for s in api["items"]]  # same sessions, same order
    screenshot(page, "sessions")
    busiest = max(api["items"], key=lambda s: s["run_count"])
    page.click(f"#sessions-table tbody tr[data-session-id='{busiest['session_id']}'] a")
    page.wait_for_selector("#session-runs tbody tr[data-run-id]")
    detail = _api(dashboard_stack, acme.tenant, f"/v1/sessions/{busiest['session_id']}")
    runs = page.locator("#session-runs tbody tr[data-run-id]").evaluate_all("ns => ns.map(n => n.dataset.runId)")
    assert runs == [r["run_id"] for r in detail["runs"]]
    assert page.locator("#session-timeline .st-bar").count() == len(runs)
    screenshot(page, "session")
    _clean(acme)


def test_session_of_another_tenant_is_not_found(acme, globex, dashboard_stack):
    theirs = _api(dashboard_stack, globex.tenant, "/v1/sessions")["items"][0]["session_id"]
    resp = acme.page.goto(f"/ui/sessions/{theirs}")
    assert resp.status == 404


def test_costs_page_stacks_each_day_by_model(acme, dashboard_stack):
    page = acme.page
    page.goto("/ui/costs")
    page.wait_for_selector("#cost-chart .col")
    page.wait_for_selector("#by-model tbody tr")
    day_model = _api(dashboard_stack, acme.tenant, "/v1/costs", group_by="day,model", limit=10000,
                     since=page.evaluate("(() => { const d = new Date(Date.now() - 30 * 86400e3); d.setUTCHours(0,0,0,0); return d.toISOString(); })()"))
    segs = page.locator("#cost-chart .seg").count()
    assert segs == len(day_model["items"]) and segs > 0
    models = {r["group"]["model"] for r in day_model["items"]}
    assert set(page.locator("#cost-legend span").all_inner_texts()) == models
    by_model = _api(dashboard_stack, acme.tenant, "/v1/costs", group_by="model")
    assert page.locator("#by-model tbody tr").count() == len(by_model["items"])
    assert any(r["cached_tokens"] for r in by_model["items"])  # the seed reads from the prompt cache
    screenshot(page, "costs")
    _clean(acme)


def test_alert_lifecycle_acknowledge_resolve_and_silence(acme, dashboard_stack):
    page = acme.page
    page.goto("/ui/alerts")
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id] button[data-action=acknowledge]")
    row = page.locator("#alerts-table tbody tr[data-alert-id]:has(button[data-action=acknowledge])").first
    alert_id = row.get_attribute("data-alert-id")
    row.locator("button[data-action=acknowledge]").click()
    page.wait_for_selector(f"#alerts-table tbody tr[data-alert-id='{alert_id}'] button[data-action=reopen]")
    assert _api(dashboard_stack, acme.tenant, f"/v1/alerts/{alert_id}")["state"] == "acknowledged"
    # The state filter: an acknowledged alert is not among the open ones.
    page.select_option("#filters select[name=state]", "open")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**state=open*")
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id]")
    assert page.locator(f"#alerts-table tbody tr[data-alert-id='{alert_id}']").count() == 0
    page.goto("/ui/alerts?state=acknowledged")
    page.wait_for_selector(f"#alerts-table tbody tr[data-alert-id='{alert_id}']")
    page.locator(f"#alerts-table tbody tr[data-alert-id='{alert_id}'] button[data-action=resolve]").click()
    # resolved: it leaves the acknowledged listing and shows under resolved, with reopen
    page.wait_for_function(f"""() => !document.querySelector("#alerts-table tr[data-alert-id='{alert_id}']")""")
    page.goto("/ui/alerts?state=resolved")
    page.wait_for_selector(f"#alerts-table tbody tr[data-alert-id='{alert_id}'] button[data-action=reopen]")
    assert _api(dashboard_stack, acme.tenant, f"/v1/alerts/{alert_id}")["state"] == "resolved"
    # A silence on the loop alerts: listed as active, and the loop rows say they are silenced.
    page.goto("/ui/alerts")
    page.wait_for_selector("#silences")
    page.fill("#silence-form input[name=alert_type]", "loop")
    page.fill("#silence-form input[name=comment]", "known loop, fix deploying")
    page.click("#silence-form button[type=submit]")
    page.wait_for_selector("#silences tbody tr[data-silence-id] button[data-expire]")
    page.wait_for_selector("#alerts-table tbody tr[data-type=loop] .alert-state .note")
    screenshot(page, "alerts_lifecycle")
    sil = page.locator("#silences tbody tr[data-silence-id]").first.get_attribute("data-silence-id")
    page.click(f"#silences tr[data-silence-id='{sil}'] button[data-expire]")
    page.wait_for_function(f"""() => !document.querySelector("#silences tr[data-silence-id='{sil}'] button[data-expire]")""")
    assert not [s for s in _api(dashboard_stack, acme.tenant, "/v1/alerts/silences") if s["silence_id"] == sil]
    _clean(acme)
