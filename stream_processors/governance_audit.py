"""``agentstream audit``'s evaluator: stored ``events`` rows back into the events the governance
detector reads, each run replayed through the same ``governance.observe`` the processors run in
flight, so an audit of stored runs and the live alerts can never disagree on a rule.

Pure: rows in (dicts keyed by ``COLUMNS``, any order, duplicates allowed: the events table is a
ReplacingMergeTree that may hold a row twice before a merge), violations out.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from .detectors import governance, governance_topology
from .policies import governance_of

COLUMNS = ("tenant_id", "run_id", "seq", "ts", "kind", "step_kind", "step_id", "name", "tool_name",
           "args_digest", "retry_of", "attempt", "parent_run_id", "agent_id", "payload")


def audit_sql(since_us: int, until_us: int | None = None, tenant: str | None = None) -> str:
    """The one SELECT both transports run (the query API adds its tenant wall itself). Only what
    the rules read: RUN_START rows (parent links, agents) and TOOL, APPROVAL and HANDOFF steps."""
    def at(us: int) -> str:
        return "toDateTime64('" + datetime.fromtimestamp(us / 1e6, timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S.%f") + "', 6, 'UTC')"
    window = [f"ts >= {at(since_us)}"] + ([f"ts < {at(until_us)}"] if until_us is not None else [])
    scope = [] if tenant is None else ["tenant_id = '" + tenant.replace("\\", "\\\\").replace("'", "\\'") + "'"]
    window += scope
    # A run active in the window is judged whole: an approval stored before --since still binds
    # the call after it.
    runs = f"SELECT DISTINCT run_id FROM events WHERE {' AND '.join(window)}"
    where = ["(kind = 'RUN_START' OR (kind = 'STEP' AND step_kind IN ('TOOL', 'APPROVAL', 'HANDOFF')))",
             f"run_id IN ({runs})"] + scope
    return (f"SELECT {', '.join(COLUMNS)} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY tenant_id, run_id, seq")


def _ts_us(v: Any) -> int:
    if isinstance(v, datetime):
        return int((v if v.tzinfo else v.replace(tzinfo=timezone.utc)).timestamp() * 1e6)
    if isinstance(v, (int, float)):
        return int(v)
    text = str(v).replace(" ", "T")
    dt = datetime.fromisoformat(text if ("+" in text or text.endswith("Z")) else text + "+00:00")
    return int(dt.timestamp() * 1e6)


def event_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Event dict (the fields governance reads) of one stored row."""
    try:
        rest = json.loads(row.get("payload") or "{}")
    except ValueError:
        rest = {}
    p: dict[str, Any] = {"step_id": row.get("step_id") or "", "step_kind": row.get("step_kind"),
                         "name": row.get("name") or "", "attempt": int(row.get("attempt") or 1),
                         "retry_of": row.get("retry_of") or None}
    if row.get("step_kind") == "TOOL":
        p["tool"] = {"tool_name": row.get("tool_name") or row.get("name") or "tool",
                     "args_digest": row.get("args_digest") or None}
    for k in ("approval", "handoff"):
        if isinstance(rest, dict) and isinstance(rest.get(k), dict):
            p[k] = rest[k]
    return {"tenant_id": row["tenant_id"], "run_id": row["run_id"], "seq": int(row["seq"]),
            "ts_us": _ts_us(row["ts"]), "kind": row.get("kind") or "STEP", "agent_id": row.get("agent_id") or "",
            "parent_run_id": row.get("parent_run_id") or None, "attributes": {}, "payload": p}


def _links(events: list[dict[str, Any]]) -> list[list[Any]]:
    """The fleet stage's run links (``governance_topology``) of stored events, in time order."""
    out = []
    for e in events:
        h = e["payload"].get("handoff")
        if e["kind"] == "RUN_START":
            out.append([e["run_id"], e["parent_run_id"], e["agent_id"], "", e["ts_us"]])
        elif h and h.get("to_run_id"):
            out.append([h["to_run_id"], e["run_id"], h.get("to_agent_id") or "", e["agent_id"], e["ts_us"]])
    return sorted(out, key=lambda link: link[4])


def audit(rows: Iterable[Mapping[str, Any]], policy_for: Callable[[str], Mapping[str, Any]]
          ) -> list[dict[str, Any]]:
    """Every violation in ``rows`` under ``policy_for(tenant)`` (a governance mapping), in
    (tenant, run, seq) order."""
    events: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for row in rows:
        e = event_of(row)
        events.setdefault((e["tenant_id"], e["run_id"]), {})[e["seq"]] = e
    out: list[dict[str, Any]] = []
    govs: dict[str, Mapping[str, Any]] = {}
    for (tenant, run_id), by_seq in sorted(events.items()):
        if tenant not in govs:
            govs[tenant] = governance_of(policy_for(tenant))
        st = governance.new_state()
        for seq in sorted(by_seq):
            e = by_seq[seq]
            for f in governance.observe(st, e, govs[tenant]):
                out.append({"tenant_id": tenant, "run_id": run_id, "agent_id": e["agent_id"], "seq": seq,
                            "ts_us": e["ts_us"], "alert_type": f.alert_type, "rule": f.evidence.get("rule", ""),
                            "severity": f.severity, "stop": f.stop, "title": f.title,
                            "evidence": dict(f.evidence)})
    # Across runs, per tenant: handoff loops and delegation limits, as the fleet stage judges them.
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for (tenant, _run), by_seq in events.items():
        by_tenant.setdefault(tenant, []).extend(by_seq.values())
    for tenant, evs in by_tenant.items():
        topo = governance_topology.new_state()
        for link in _links(evs):
            for ff in governance_topology.apply(topo, [link], govs[tenant]):
                if ff.alert:
                    out.append({"tenant_id": tenant, "run_id": ff.evidence["run_id"], "agent_id": ff.agent_id or "",
                                "seq": 0, "ts_us": link[4], "alert_type": ff.alert_type,
                                "rule": ff.evidence.get("limit_name") or ff.alert_type, "severity": ff.severity,
                                "stop": bool(ff.stop_runs), "title": ff.title, "evidence": dict(ff.evidence)})
    return sorted(out, key=lambda v: (v["tenant_id"], v["run_id"], v["seq"]))
