"""Multi-agent governance across runs: handoff loops, delegation depth and fan-out. Pure.

Runs of one tenant are linked by ``parent_run_id`` (a child's RUN_START) and by HANDOFF steps
(``to_run_id``/``to_agent_id`` of the parent's step); both arrive in the tenant's fleet deltas
(``links``: ``[child, parent, child_agent, parent_agent, ts_us]``; a root run's RUN_START
sends ``parent`` null, so its agent is known), so the per-tenant fleet state
holds the topology whatever partition each run's events took. ``apply(topo, links, gov)``
returns findings (``fleet.FleetFinding``) when a link is first seen:

- ``handoff_loop``: the child's agent already appears more than ``max_handoff_cycles`` times
  among its ancestors (A -> B -> A -> B -> A with the default 1); 0 turns it off;
- ``delegation_limit`` (``limit`` depth): the child sits more than ``max_delegation_depth``
  handoffs below its root;
- ``delegation_limit`` (``limit`` fan_out): a run hands off to more than ``max_fan_out`` children.

One alert per chain root and rule (per parent for fan-out); every run over a limit gets a STOP
when ``stop_on_multi_agent`` is set (CRITICAL), else the alert alone (WARNING). A parent that
arrives after its child is linked then: depth and ancestry are judged on what is known at the
time a link is first seen (a lower bound). A run that ended with neither parent nor child is
forgotten (``forget_ended``); the state keeps at most ``MAX_NODES`` runs per tenant, oldest first.
"""
from __future__ import annotations

from typing import Any, Mapping

from .fleet import FleetFinding

MAX_NODES = 10_000
MAX_HOPS = 64      # ancestry walked per link
MAX_SUBTREE = 256  # descendants re-judged when a link or an agent arrives late
MAX_KIDS = 64      # child ids kept per run (the fan-out count itself is exact)
MAX_RAISED = 2_048
PARENT, AGENT, DEPTH, CHILDREN, TS, KIDS = range(6)


def new_state() -> dict[str, Any]:
    return {"nodes": {}, "raised": []}


def _node(nodes: dict[str, list[Any]], run_id: str, agent: str, ts: int) -> tuple[list[Any], bool]:
    """The run's node, created if new; True when this call taught it its agent."""
    n = nodes.get(run_id)
    if n is None:
        n = nodes[run_id] = [None, agent or "", 0, 0, ts, []]
        return n, False
    if agent and not n[AGENT]:
        n[AGENT] = agent
        return n, True
    return n, False


def ancestry(nodes: Mapping[str, list[Any]], run_id: str) -> list[str]:
    """Run ids from ``run_id`` up to its root (or MAX_HOPS, or a cycle of run ids), nearest first."""
    out: list[str] = []
    seen, cur = {run_id}, nodes.get(run_id, [None])[PARENT]
    while cur is not None and cur not in seen and len(out) < MAX_HOPS:
        out.append(cur)
        seen.add(cur)
        cur = nodes.get(cur, [None])[PARENT]
    return out


def _subtree(nodes: Mapping[str, list[Any]], run_id: str) -> list[str]:
    out: list[str] = []
    seen, queue = {run_id}, [run_id]
    while queue and len(out) < MAX_SUBTREE:
        r = queue.pop(0)
        out.append(r)
        for k in nodes.get(r, [None] * 6)[KIDS]:
            if k not in seen and k in nodes:
                seen.add(k)
                queue.append(k)
    return out


def _finding(state: dict[str, Any], out: list[FleetFinding], gov: Mapping[str, Any], alert_type: str,
             title: str, evidence: dict[str, str], key: str, child: str, agent: str) -> None:
    raised = state["raised"]
    if f"{key}|{child}" in raised:
        return  # this run was already judged under this rule (a re-judged subtree)
    stop = bool(gov.get("stop_on_multi_agent", True))
    first = key not in raised
    raised.append(f"{key}|{child}")
    if first:
        raised.append(key)
    del raised[:-MAX_RAISED]
    if first or stop:
        out.append(FleetFinding(alert_type, "CRITICAL" if stop else "WARNING", title,
                                {**evidence, "run_id": child}, key, agent_id=agent or None,
                                stop_runs=[child] if stop else [], alert=first))


def forget_ended(state: dict[str, Any], ended: list[str]) -> None:
    """A run that ended alone (no parent, no child) can no longer be part of a chain worth
    keeping: most runs are, so the state stays as small as the multi-agent part of the fleet."""
    nodes = state["nodes"]
    for run_id in ended:
        n = nodes.get(run_id)
        if n is not None and n[PARENT] is None and n[CHILDREN] == 0:
            del nodes[run_id]


def _judge(state: dict[str, Any], out: list[FleetFinding], gov: Mapping[str, Any], child: str) -> None:
    """Depth and handoff-loop rules for one linked run, on its ancestry as known now."""
    nodes = state["nodes"]
    c = nodes[child]
    up = ancestry(nodes, child)
    c[DEPTH] = len(up)
    root = up[-1] if up else child
    agents = [nodes[r][AGENT] for r in up if r in nodes]
    path = " -> ".join(reversed([c[AGENT] or "?"] + [a or "?" for a in agents]))
    ev = {"parent_run_id": c[PARENT] or "", "root_run_id": root, "depth": str(c[DEPTH]), "agents": path[:900]}
    cycles = int(gov.get("max_handoff_cycles", 1) or 0)
    seen = sum(1 for a in agents if a and a == c[AGENT])
    if cycles > 0 and c[AGENT] and seen > cycles:
        _finding(state, out, gov, "handoff_loop",
                 f"handoff loop: agent {c[AGENT]} handed back to {seen} times in one chain (allowed {cycles})",
                 {**ev, "agent": c[AGENT], "reappearances": str(seen), "limit": str(cycles)},
                 f"handoff_loop:{root}:{c[AGENT]}", child, c[AGENT])
    depth_limit = gov.get("max_delegation_depth")
    if depth_limit is not None and c[DEPTH] > int(depth_limit):
        _finding(state, out, gov, "delegation_limit", f"delegation depth {c[DEPTH]} over the limit {depth_limit}",
                 {**ev, "limit_name": "max_delegation_depth", "limit": str(depth_limit)},
                 f"delegation_depth:{root}", child, c[AGENT])


def apply(state: dict[str, Any], links: list[list[Any]], gov: Mapping[str, Any]) -> list[FleetFinding]:
    nodes: dict[str, list[Any]] = state["nodes"]
    out: list[FleetFinding] = []
    for child, parent, child_agent, parent_agent, ts in links:
        if not child:
            continue
        changed: list[str] = []
        if not parent or child == parent:
            if _node(nodes, child, child_agent, ts)[1]:
                changed.append(child)  # a root's agent arrived after its chain
        else:
            p, p_learned = _node(nodes, parent, parent_agent, ts)
            if p_learned:
                changed.append(parent)
            c, c_learned = _node(nodes, child, child_agent, ts)
            if c[PARENT] is None:
                c[PARENT] = parent
                p[CHILDREN] += 1
                if len(p[KIDS]) < MAX_KIDS:
                    p[KIDS].append(child)
                changed.append(child)
                fan_limit = gov.get("max_fan_out")
                if fan_limit is not None and p[CHILDREN] > int(fan_limit):
                    _finding(state, out, gov, "delegation_limit",
                             f"run {parent} handed off to {p[CHILDREN]} runs (fan-out limit {fan_limit})",
                             {"parent_run_id": parent, "limit_name": "max_fan_out", "limit": str(fan_limit),
                              "children": str(p[CHILDREN])}, f"fan_out:{parent}", child, c[AGENT])
            elif c_learned:
                changed.append(child)
        for x in changed:
            for r in _subtree(nodes, x):
                if nodes[r][PARENT] is not None:
                    _judge(state, out, gov, r)
    if len(nodes) > MAX_NODES:
        for k in list(nodes)[: len(nodes) - MAX_NODES]:
            del nodes[k]
    return out
