"""Every dashboard page renders with demo data, with no console errors and no request leaving the
API's origin; each page's screenshot goes to docs/screenshots/."""
from __future__ import annotations

import pytest

from .conftest import screenshot

pytestmark = pytest.mark.integration


def _check_clean(s) -> None:
    assert s.console_errors == [], s.console_errors
    assert s.foreign_requests() == [], "every asset and call must stay on the API's origin"


def _ids(page, selector: str, attr: str) -> list[str]:
    return page.locator(selector).evaluate_all(f"ns => ns.map(n => n.dataset.{attr})")


def test_fleet_page(acme):
    page = acme.page
    page.goto("/ui")
    # One row per agent and version of this tenant only, each with five sparklines.
    page.wait_for_selector("#fleet-table tbody tr[data-agent]")
    assert sorted(_ids(page, "#fleet-table tbody tr[data-agent]", "version")) == ["1.4.0", "1.5.0", "2.1.0"]
    assert page.locator("#fleet-table tbody tr[data-agent='research-agent']").count() == 0
    page.wait_for_function("document.querySelectorAll('#fleet-table .spark canvas').length === 15")
    for metric in ("runs", "failure_rate", "p95_ms", "tokens", "cost_usd"):
        assert page.locator(f"#fleet-table .spark[data-metric={metric}] canvas").count() == 3
    page.wait_for_selector("#ticker li[data-alert-id]")
    shown = set(_ids(page, "#ticker li[data-alert-id]", "alertId"))
    seeded = {a["alert_id"]: a["tenant_id"] for a in acme.stack.seeded.alerts}
    assert {a for a, t in seeded.items() if t == acme.tenant} <= shown
    assert not {a for a, t in seeded.items() if t != acme.tenant} & shown  # never another tenant's
    page.wait_for_selector("#live-dot.on")
    # Lag per stage: the sink's consumer group on events and alerts, with the under-report note.
    page.wait_for_selector("#lag table")
    stages = page.locator("#lag tbody tr").all_inner_texts()
    assert any("sink (events" in s for s in stages) and any("sink (alerts" in s for s in stages)
    assert "lower bound" in page.inner_text("#lag-note")
    screenshot(page, "fleet")
    _check_clean(acme)


def test_runs_page_filters_and_pages(acme):
    page = acme.page
    page.goto("/ui/runs")
    page.wait_for_selector("#runs-table tbody tr[data-run-id]")
    assert page.locator("#runs-table tbody tr[data-run-id]").count() == 50
    screenshot(page, "runs")
    first_page = set(_ids(page, "#runs-table tbody tr[data-run-id]", "runId"))
    page.click("#next")
    page.wait_for_url("**cursor=*")
    page.wait_for_selector("#runs-table tbody tr[data-run-id]")
    second = set(_ids(page, "#runs-table tbody tr[data-run-id]", "runId"))
    assert second and not (second & first_page)
    assert len(first_page | second) == 91  # acme's 3 x 30 runs + the looping run
    # Filter on the server: failed runs of the drifting version only.
    page.goto("/ui/runs")
    page.wait_for_selector("#runs-table tbody tr[data-run-id]")
    page.select_option("select[name=agent]", "support-agent")
    page.select_option("select[name=version]", "1.5.0")
    page.select_option("select[name=status]", "FAILURE")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**status=FAILURE*")
    page.wait_for_selector("#runs-table tbody tr[data-run-id]")
    rows = page.locator("#runs-table tbody tr[data-run-id]").all_inner_texts()
    assert rows and all("support-agent" in r and "1.5.0" in r and "FAILURE" in r for r in rows)
    _check_clean(acme)


def test_run_waterfall_one_bar_per_step_with_retries_linked(acme, dashboard_stack):
    seeded = dashboard_stack.seeded
    page = acme.page
    page.goto(f"/ui/runs/{seeded.retry_run}")
    page.wait_for_selector(".wf-bar[data-step-id]")
    step_ids = _ids(page, ".wf-bar[data-step-id]", "stepId")
    assert len(step_ids) == seeded.retry_run_steps == len(set(step_ids))
    retries = page.locator(".wf-bar[data-retry-of]:not([data-retry-of=''])")
    assert retries.count() >= 1
    page.wait_for_selector("svg.wf-links path.wf-link")
    for i in range(retries.count()):
        bar = retries.nth(i)
        retried, retry = bar.get_attribute("data-retry-of"), bar.get_attribute("data-step-id")
        assert retried in step_ids
        assert page.locator(f"svg.wf-links path.wf-link[data-from='{retried}'][data-to='{retry}']").count() == 1
    # The retry's label links to the attempt it retries.
    page.locator(".wf-retry-link").first.click()
    retried = page.locator(".wf-retry-link").first.get_attribute("data-retry-of")
    page.wait_for_selector(f".wf-row.selected[data-step-id='{retried}']")
    # Nesting, failures on their step, decisions, LLM model/tokens/cost.
    assert page.locator(".wf-row[data-step-id] .wf-label[style*='padding-left: 16px']").count() >= 2
    assert page.locator(".wf-marker.FAILURE").count() >= 1
    assert page.locator(".wf-marker.DECISION").count() == 1
    assert page.locator(".wf-bar.k-LLM .lbl").first.inner_text().count("tok") == 1
    assert page.locator(".wf-bar.k-APPROVAL.wait").count() == 1  # the human wait, drawn apart
    assert "human wait" in page.inner_text("#kpis")
    page.locator(".wf-marker.DECISION").click()
    assert "fresh_data_required" in page.inner_text("#detail")
    screenshot(page, "run_waterfall")
    _check_clean(acme)


def test_run_enforcement_loop_stop_and_budget_stop(acme, globex, dashboard_stack):
    seeded = dashboard_stack.seeded
    acme.page.goto(f"/ui/runs/{seeded.loop_run}")
    acme.page.wait_for_selector("#enforcement li.enf-ack")
    text = acme.page.inner_text("#enforcement")
    assert "STOP" in text and "applied" in text and "stopped_by_command" in text
    assert acme.page.locator("#enforcement li.enf-alert").count() >= 1  # the loop alert
    screenshot(acme.page, "run_loop_stopped")
    globex.page.goto(f"/ui/runs/{seeded.budget_run}")
    globex.page.wait_for_selector("#enforcement li.enf-failure")
    text = globex.page.inner_text("#enforcement")
    assert "run_max_cost_usd" in text and "budget_stopped" in text and "budget_breach" in text
    _check_clean(acme)
    _check_clean(globex)


def test_compare_page(acme):
    page = acme.page
    page.goto("/ui/compare?agent=support-agent&a=1.4.0&b=1.5.0")
    page.wait_for_selector("#cmp-table tbody tr")
    assert page.locator("#cmp-latency canvas, #cmp-cost canvas").count() >= 2
    assert page.locator("#cmp-tools .hb-row").count() >= 3
    table = page.inner_text("#cmp-table")
    assert "failure rate" in table and "significan" in table
    screenshot(page, "compare")
    _check_clean(acme)


def test_alerts_page(acme, dashboard_stack):
    page = acme.page
    page.goto("/ui/alerts")
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id]")
    types = _ids(page, "#alerts-table tbody tr[data-alert-id]", "type")
    assert {"loop", "drift", "retry_storm"} <= set(types) and "budget_breach" not in types
    # Linked to its run, with its evidence.
    loop_row = page.locator("#alerts-table tbody tr[data-type=loop]").first
    assert loop_row.locator(f"a[href='/ui/runs/{dashboard_stack.seeded.loop_run}']").count() == 1
    assert "repeats=" in loop_row.inner_text()
    screenshot(page, "alerts")
    page.select_option("select[name=alert_type]", "drift")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**alert_type=drift*")
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id]")
    assert set(_ids(page, "#alerts-table tbody tr[data-alert-id]", "type")) == {"drift"}
    _check_clean(acme)


def test_drift_page(acme):
    page = acme.page
    page.goto("/ui/drift")
    page.wait_for_selector("#drift-chart canvas")
    # Opens on the version with a drift alert, which is listed under the chart.
    assert page.locator("select[name=version]").input_value() == "1.5.0"
    page.wait_for_selector("#drift-alerts tr[data-alert-id]")
    assert "Band: baseline mean" in page.inner_text("#drift-note")
    screenshot(page, "drift")
    page.select_option("select[name=metric]", "latency_p95_ms")
    page.click("#drift-form button[type=submit]")
    page.wait_for_url("**metric=latency_p95_ms*")
    page.wait_for_selector("#drift-chart canvas")
    _check_clean(acme)
