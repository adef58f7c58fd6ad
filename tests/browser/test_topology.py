"""The run page's agent topology panel: a handoff tree A -> B -> A -> B -> A plus a side branch,
stored through the real sink, drawn as a graph of runs, agents and handoffs with the loop marked;
and the policies page editing the governance rules (Policy v2) through the API. Screenshot:
run_topology."""
from __future__ import annotations

import time

import pytest

from agentstream.stream_processors import synthetic as syn

from . import seed
from .conftest import screenshot, wait_for

pytestmark = pytest.mark.integration


def _tree(tenant: str, tag: str) -> list[dict]:
    t0 = int(time.time() * 1e6) - 600_000_000
    runs = [f"topo{i}-{tag}" for i in range(5)]
    events = []
    for i, run in enumerate(runs):
        agent = "planner" if i % 2 == 0 else "researcher"
        start = syn.run_start(tenant, run, agent_id=agent, ts_us=t0 + i * 1000)
        start["parent_run_id"] = runs[i - 1] if i else None
        events.append(start)
        to = runs[i + 1] if i + 1 < len(runs) else f"side-{tag}"
        h = syn.step(tenant, run, 1, name="handoff", step_kind="HANDOFF", args_digest=None, agent_id=agent,
                     ts_us=t0 + i * 1000 + 10)
        h["payload"]["handoff"] = {"to_agent_id": "writer" if to.startswith("side") else
                                   ("researcher" if i % 2 == 0 else "planner"), "to_run_id": to, "role": None}
        events.append(h)
        events.append(syn.run_end(tenant, run, 2, agent_id=agent, ts_us=t0 + i * 1000 + 900))
    return events


def test_run_page_draws_the_topology_and_marks_the_handoff_loop(acme, dashboard_stack):
    tenant = acme.tenant
    tag = str(int(time.time() * 1000))[-8:]
    events = _tree(tenant, tag)
    seed.produce(dashboard_stack.bootstrap, dashboard_stack.prefix, events, [])
    wait_for(lambda: dashboard_stack.rows("SELECT count() FROM events WHERE tenant_id = {t:String} AND "
                                          "run_id LIKE {p:String}", t=tenant, p=f"topo%-{tag}")[0][0] >= len(events),
             60, "the tree to be stored")
    page = acme.page
    page.goto(f"/ui/runs/topo2-{tag}")
    page.wait_for_selector("#topology-graph")
    assert page.locator("#topology-graph .topo-node").count() == 6  # 5 stored runs + the side target
    assert page.locator("#topology-graph .topo-edge").count() == 5
    summary = page.locator("#topology-summary").inner_text()
    assert "6 runs from root" in summary and "planner: 3 runs" in summary
    loops = page.locator("#topology-loops li").all_inner_texts()
    assert len(loops) == 1 and "planner -> researcher -> planner -> researcher -> planner" in loops[0]
    assert page.locator(f"#topology-graph a[data-run-id='side-{tag}']").text_content().startswith(f"writerside-{tag} · not stored")
    page.locator("#topology-panel").scroll_into_view_if_needed()
    screenshot(page, "run_topology")
    assert acme.foreign_requests() == []


def test_policies_page_edits_governance(acme):
    page = acme.page
    page.goto("/ui/policies")
    page.wait_for_selector("input[name='governance.tool_deny']")
    page.fill("input[name='governance.tool_deny']", "shell, fs_rm*")
    page.fill("input[name='governance.max_calls_per_tool']", "search:20, *:100")
    page.fill("input[name='governance.require_approval']", "pay*")
    page.fill("input[name='governance.max_fan_out']", "4")
    page.fill("input[name='loops.repeat_window']", "0")
    page.fill("input[name='budgets.warn_fraction']", "0.5")
    page.check("input[name='governance.stop_on'][value='max_tool_calls']")
    page.click("#save")
    page.wait_for_selector("#policy-saved")
    got = page.evaluate("() => fetch('/v1/policies', {credentials: 'same-origin'}).then(r => r.json())")
    g = got["governance"]
    assert g["tool_deny"] == ["shell", "fs_rm*"] and g["max_calls_per_tool"] == {"search": 20, "*": 100}
    assert g["require_approval"] == ["pay*"] and g["max_fan_out"] == 4 and "max_tool_calls" in g["stop_on"]
    assert got["loops"]["repeat_window"] == 0 and got["budgets"]["warn_fraction"] == 0.5
    # a malformed limit is refused by the API with a message, nothing saved
    page.fill("input[name='governance.max_calls_per_tool']", "search:lots")
    page.click("#save")
    page.wait_for_selector(".error-banner")
    assert "Not saved" in page.locator(".error-banner").inner_text()
