"""GET /v1/runs/{id}/topology over stored runs: up to the root, down the tree, handoff steps
(to runs never stored too), loops by agent ancestry, tenant isolation, 404."""
from __future__ import annotations

from api_fleet import RunBuilder, insert_runs


def _tree(tenant, unique, agents="ABABA"):
    runs, prev = [], None
    for i, a in enumerate(agents):
        r = RunBuilder(tenant, agent=a, run_id=f"t{i}-{unique}", parent_run_id=prev.run_id if prev else "")
        runs.append(r)
        prev = r
    for i, r in enumerate(runs[:-1]):
        r.step("HANDOFF", "handoff", 1.0,
               payload={"handoff": {"to_agent_id": runs[i + 1].agent, "to_run_id": runs[i + 1].run_id}})
    # the last run planned a handoff to a run that never started
    runs[-1].step("HANDOFF", "handoff", 1.0, payload={"handoff": {"to_agent_id": "C", "to_run_id": f"ghost-{unique}"}})
    for r in runs:
        r.end()
    return runs


def test_topology_from_a_middle_run_covers_the_whole_tree(api, auth, ch, tenant, unique):
    runs = _tree(tenant, unique)
    side = RunBuilder(tenant, agent="S", run_id=f"side-{unique}", parent_run_id=runs[1].run_id)
    side.end()
    other = _tree("victim-" + unique, unique + "x")
    insert_runs(ch, runs + [side] + other)
    r = api.get(f"/v1/runs/{runs[2].run_id}/topology", headers=auth)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["root_run_id"] == runs[0].run_id and not t["truncated"]
    ids = {n["run_id"]: n for n in t["nodes"]}
    assert set(ids) == {x.run_id for x in runs} | {side.run_id, f"ghost-{unique}"}
    assert [ids[x.run_id]["depth"] for x in runs] == [0, 1, 2, 3, 4] and ids[side.run_id]["depth"] == 2
    assert ids[f"ghost-{unique}"]["stored"] is False and ids[f"ghost-{unique}"]["status"] == "NOT_STORED"
    via = {(e["from_run_id"], e["to_run_id"]): e["via"] for e in t["edges"]}
    assert via[(runs[0].run_id, runs[1].run_id)] == "handoff" and via[(runs[1].run_id, side.run_id)] == "parent_run_id"
    assert [(lp["run_id"], lp["path"]) for lp in t["loops"]] == [(runs[4].run_id, "A -> B -> A -> B -> A")]
    assert {a["agent_id"]: a["runs"] for a in t["agents"]} == {"A": 3, "B": 2, "S": 1, "C": 1}
    assert "victim" not in r.text


def test_topology_of_unknown_or_other_tenants_run_is_404(api, auth, ch, unique):
    other = _tree("victim-" + unique, unique)
    insert_runs(ch, other)
    assert api.get(f"/v1/runs/{other[0].run_id}/topology", headers=auth).status_code == 404
    assert api.get("/v1/runs/nope/topology", headers=auth).status_code == 404
