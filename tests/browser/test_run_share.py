"""`agentstream runs share` opened in a browser from a file: the run page renders from the data
inside it, requests nothing, operates nothing, and a run whose stored names are markup shows
them as text. Screenshot: run_share."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from .conftest import screenshot, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "api"))
from api_fleet import RunBuilder, insert_runs

pytestmark = pytest.mark.integration
EVIL = "</script><script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"


def _share(stack, tenant, run_id, out: Path):
    from agentstream.cli.runs import runs_app

    env = {"AGENTSTREAM_API_URL": stack.base_url, "AGENTSTREAM_API_KEY": stack.keys[tenant],
           "XDG_CONFIG_HOME": str(out.parent / "xdg")}
    r = CliRunner().invoke(runs_app, ["share", run_id, "-o", str(out)], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def _open(browser, path: Path):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    seen: dict[str, list[str]] = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(f"pageerror: {e}"))
    page.goto(path.as_uri())
    return ctx, page, seen


def test_a_shared_run_renders_offline_and_operates_nothing(browser, dashboard_stack, tmp_path):
    tenant = dashboard_stack.tenants[0]
    run_id = dashboard_stack.seeded.retry_run
    out = _share(dashboard_stack, tenant, run_id, tmp_path / "run.html")
    ctx, page, seen = _open(browser, out)
    try:
        page.wait_for_selector(".wf-bar[data-step-id]")
        page.wait_for_selector("#explain li")
        assert f"Run {run_id}" in page.inner_text("#explain")
        banner = page.inner_text("#shared-banner")
        assert "Shared snapshot" in banner and tenant in banner
        assert page.locator("#stop-run").count() == 0 and page.locator("#throttle-run").count() == 0
        rows = page.locator(".wf-row[data-step-id]").count()
        assert rows == dashboard_stack.seeded.retry_run_steps
        page.click("#play-step")
        assert float(page.get_attribute("#waterfall", "data-play-at")) < 100
        page.click("#play-reset")
        screenshot(page, "run_share")
        # nothing but the file itself was ever requested, and nothing failed
        assert seen["requests"] == [out.as_uri()]
        assert seen["errors"] == []
    finally:
        ctx.close()


def test_markup_in_a_stored_run_stays_text(browser, dashboard_stack, tmp_path):
    tenant = dashboard_stack.tenants[0]
    run = RunBuilder(tenant, agent=EVIL, version="v<1>", run_id=f"run <x>&\"'/ü#-{uuid.uuid4().hex[:8]}")
    run.llm(EVIL, 120, 100, 10, 0.01)
    run.tool("lookup</script>", 30)
    run.failure("tool_error", EVIL)
    insert_runs(dashboard_stack.client, [run.end("FAILURE", outcome=EVIL)])
    out = _share(dashboard_stack, tenant, run.run_id, tmp_path / "evil.html")
    ctx, page, seen = _open(browser, out)
    try:
        page.wait_for_selector(".wf-bar[data-step-id]")
        assert page.evaluate("window.pwned") is None
        assert EVIL in page.inner_text("#waterfall")  # the name, shown as text
        assert run.run_id in page.inner_text("#run-title")
        wait_for(lambda: page.evaluate("document.images.length") == 0, 2, "no image element from stored text")
        assert seen["requests"] == [out.as_uri()]
        assert seen["errors"] == []
    finally:
        ctx.close()
