"""A run's multi-agent topology: every stored run of its handoff tree (up to the root through
``parent_run_id``, then down level by level), the handoffs between them (HANDOFF steps, which
also name children that never started or were not stored) and, per agent, where it reappears in
its own ancestry (a handoff loop, the same rule the processors apply in flight)."""
from __future__ import annotations

import json
from typing import Any

from ..db import Db
from .runs import RUN_COLUMNS

MAX_HOPS = 32
MAX_RUNS = 500
MAX_HANDOFFS = 2_000


def _runs(db: Db, tenant: str, having: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    return db.rows(f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = {{tenant:String}} GROUP BY run_id "
                   f"HAVING {having} ORDER BY started_us LIMIT {int(limit)}", {"tenant": tenant, **params})


def _node(r: dict[str, Any], stored: bool = True) -> dict[str, Any]:
    return {"run_id": r["run_id"], "agent_id": r.get("agent_id") or "", "status": r.get("status") or "RUNNING",
            "parent_run_id": r.get("parent_run_id") or None, "started_us": r.get("started_us"),
            "duration_ms": r.get("duration_ms"), "cost_usd": float(r.get("cost_usd") or 0.0),
            "step_count": int(r.get("step_count") or 0), "stored": stored}


def run_topology(db: Db, tenant: str, run_id: str) -> dict[str, Any] | None:
    first = _runs(db, tenant, "run_id = {run_id:String}", {"run_id": run_id}, 1)
    if not first:
        return None
    nodes: dict[str, dict[str, Any]] = {run_id: _node(first[0])}
    cur, hops = nodes[run_id]["parent_run_id"], 0
    root = run_id
    while cur and cur not in nodes and hops < MAX_HOPS:
        hops += 1
        up = _runs(db, tenant, "run_id = {run_id:String}", {"run_id": cur}, 1)
        if not up:
            break  # the parent was not stored: the tree starts at the highest stored run
        nodes[cur] = _node(up[0])
        root, cur = cur, nodes[cur]["parent_run_id"]
    frontier, truncated, expanded = [root], hops >= MAX_HOPS, {root}
    for _ in range(MAX_HOPS):
        if not frontier:
            break
        room = MAX_RUNS - len(nodes)
        if room <= 0:
            truncated = True
            break
        kids = _runs(db, tenant, "has({ids:Array(String)}, parent_run_id)", {"ids": frontier}, room + 1)
        if len(kids) > room:
            truncated, kids = True, kids[:room]
        frontier = [k["run_id"] for k in kids if k["run_id"] not in expanded]
        expanded.update(frontier)
        for k in kids:
            nodes.setdefault(k["run_id"], _node(k))
    steps = db.rows(
        "SELECT run_id, seq, payload FROM events WHERE tenant_id = {tenant:String} AND kind = 'STEP' "
        "AND step_kind = 'HANDOFF' AND has({ids:Array(String)}, run_id) ORDER BY run_id, seq "
        f"LIMIT {MAX_HANDOFFS}", {"tenant": tenant, "ids": list(nodes)})
    return build_topology(run_id, root, nodes, steps, truncated)


def build_topology(run_id: str, root: str, nodes: dict[str, dict[str, Any]], handoff_steps: list[dict[str, Any]],
                   truncated: bool) -> dict[str, Any]:
    """Pure: stored runs and handoff steps -> nodes with depths, edges, agents and loops."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for r in list(nodes.values()):
        p = r["parent_run_id"]
        if p and p in nodes:
            edges[(p, r["run_id"])] = {"from_run_id": p, "to_run_id": r["run_id"], "to_agent_id": r["agent_id"],
                                       "seq": None, "via": "parent_run_id"}
    for s in handoff_steps:
        try:
            h = (json.loads(s.get("payload") or "{}") or {}).get("handoff") or {}
        except (ValueError, AttributeError):
            continue
        to = h.get("to_run_id")
        if not to or s["run_id"] not in nodes:
            continue
        if to not in nodes:  # handed off to a run that never started (or was not stored)
            nodes[to] = {**_node({"run_id": to, "agent_id": h.get("to_agent_id") or ""}, stored=False),
                         "parent_run_id": s["run_id"], "status": "NOT_STORED"}
        e = edges.setdefault((s["run_id"], to), {"from_run_id": s["run_id"], "to_run_id": to,
                                                 "to_agent_id": h.get("to_agent_id") or "", "via": "handoff"})
        e["seq"], e["via"] = int(s["seq"]), "handoff"
    depth: dict[str, int] = {}

    def depth_of(r: str) -> int:
        seen = []
        cur = r
        while cur not in depth and cur in nodes and nodes[cur]["parent_run_id"] in nodes and cur not in seen:
            seen.append(cur)
            cur = nodes[cur]["parent_run_id"]
        base = depth.get(cur, 0)
        for i, x in enumerate(reversed(seen)):
            depth[x] = base + i + 1
        return depth.setdefault(r, base)

    for rid in nodes:
        nodes[rid]["depth"] = depth_of(rid)
    loops = []
    for rid, n in nodes.items():
        agents, cur, hops = [], n["parent_run_id"], 0
        while cur in nodes and hops < MAX_HOPS:
            agents.append(nodes[cur]["agent_id"])
            cur, hops = nodes[cur]["parent_run_id"], hops + 1
        back = sum(1 for a in agents if a and a == n["agent_id"])
        n["reappearance"] = back
        if back > 1:
            loops.append({"run_id": rid, "agent_id": n["agent_id"], "reappearances": back,
                          "path": " -> ".join(reversed([n["agent_id"]] + agents))})
    per_agent: dict[str, dict[str, Any]] = {}
    for n in nodes.values():
        a = per_agent.setdefault(n["agent_id"], {"agent_id": n["agent_id"], "runs": 0, "handoffs_out": 0})
        a["runs"] += 1
    for e in edges.values():
        src = nodes.get(e["from_run_id"])
        if src is not None:
            per_agent[src["agent_id"]]["handoffs_out"] += 1
    ordered = sorted(nodes.values(), key=lambda n: (n["depth"], n["started_us"] or 0, n["run_id"]))
    return {"run_id": run_id, "root_run_id": root, "truncated": truncated, "nodes": ordered,
            "edges": sorted(edges.values(), key=lambda e: (e["from_run_id"], e["seq"] or 0, e["to_run_id"])),
            "agents": sorted(per_agent.values(), key=lambda a: -a["runs"]), "loops": loops}
