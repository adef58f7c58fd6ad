"""A run explained in plain words, computed from its data alone (no model in the loop).

``explain_run`` is pure: it takes a run detail (``store.runs.run_detail``) and the run's alerts
and returns structured sections plus the sentences that say them. The same input always gives
the same text, so the account can be diffed, tested against golden files and trusted.

Time accounting keeps three things apart: agent time (a step's own time, without its children
and without a human's approval wait), human waits (``approval_latency_ms``), and untracked
time (wall time of the run not inside any top-level step: the agent's own code between steps).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from agentstream.schemas.usage_numbers import shown_ms

ENFORCEMENT_OUTCOMES = {
    "stopped_by_command": "a stop command",
    "budget_stopped": "a budget",
    "no_progress_stopped": "the lack-of-progress guard",
}
ENFORCEMENT_ALERTS = {"loop", "ping_pong", "no_progress", "retry_storm", "budget_warning",
                      "budget_breach", "manual_stop", "manual_throttle"}
TOP_N = 3


def _ms(x: float) -> str:
    if x >= 60_000:
        return f"{x / 60_000:.1f} min"
    if x >= 1000:
        return f"{x / 1000:.2f} s"
    return f"{x:.0f} ms"


def _usd(x: float) -> str:
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "0%"


def _wait_ms(step: dict[str, Any]) -> float:
    approval = (step.get("details") or {}).get("approval")
    if isinstance(approval, dict) and isinstance(approval.get("approval_latency_ms"), (int, float)):
        return shown_ms(approval["approval_latency_ms"])  # a stored -1e308 is none, 1e308 30 days
    return 0.0


def _retry_root(step: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cur, seen = step, set()
    while cur.get("retry_of") and cur["retry_of"] in by_id and cur["retry_of"] not in seen:
        seen.add(cur["retry_of"])
        cur = by_id[cur["retry_of"]]
    return cur


def _time_section(run: dict[str, Any], steps: list[dict[str, Any]],
                  by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    child_ms: dict[str, float] = defaultdict(float)
    for s in steps:
        if s["parent_step_id"] in by_id:
            child_ms[s["parent_step_id"]] += s["latency_ms"]
    by_kind: dict[str, float] = defaultdict(float)
    own: list[tuple[float, dict[str, Any]]] = []
    waits = []
    for s in steps:
        wait = _wait_ms(s)
        self_ms = max(0.0, s["latency_ms"] - child_ms.get(s["step_id"], 0.0) - wait)
        by_kind[s["step_kind"]] += self_ms
        own.append((self_ms, s))
        if wait or s["step_kind"] == "APPROVAL":
            approval = (s.get("details") or {}).get("approval") or {}
            waits.append({"step_id": s["step_id"], "seq": s["seq"], "name": s["name"],
                          "wait_ms": round(wait, 3),
                          "decision": approval.get("decision") if isinstance(approval, dict) else None})
    top = [s for s in steps if s["parent_step_id"] not in by_id]
    in_steps = sum(s["latency_ms"] for s in top)
    wall = run["duration_ms"] if run["duration_ms"] is not None else (run["last_us"] - run["started_us"]) / 1000
    wait_total = sum(w["wait_ms"] for w in waits)
    agent = sum(by_kind.values())
    own.sort(key=lambda x: (-x[0], x[1]["seq"]))
    return {
        "wall_ms": round(wall, 3),
        "agent_ms": round(agent, 3),
        "human_wait_ms": round(wait_total, 3),
        "untracked_ms": round(max(0.0, wall - in_steps), 3),
        "by_kind": [{"step_kind": k, "ms": round(v, 3), "share": round(v / agent, 4) if agent else 0.0}
                    for k, v in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))],
        "slowest": [{"step_id": s["step_id"], "seq": s["seq"], "step_kind": s["step_kind"],
                     "name": s["name"], "self_ms": round(ms, 3)} for ms, s in own[:TOP_N] if ms > 0],
        "waits": waits,
    }


def _cost_section(run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    by_model: dict[str, dict[str, float]] = {}
    for s in steps:
        llm = s.get("llm")
        if not llm:
            continue
        m = by_model.setdefault(llm["request_model"] or "(unknown model)",
                                {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        m["calls"] += 1
        m["input_tokens"] += llm["input_tokens"]
        m["output_tokens"] += llm["output_tokens"]
        m["cost_usd"] += llm["cost_usd"]
    costly = sorted((s for s in steps if s.get("llm") and s["llm"]["cost_usd"] > 0),
                    key=lambda s: (-s["llm"]["cost_usd"], s["seq"]))
    return {
        "cost_usd": round(run["cost_usd"], 8),
        "input_tokens": run["input_tokens"],
        "output_tokens": run["output_tokens"],
        "by_model": [{"model": k, **{f: (round(v, 8) if f == "cost_usd" else int(v)) for f, v in m.items()}}
                     for k, m in sorted(by_model.items(), key=lambda kv: (-kv[1]["cost_usd"], kv[0]))],
        "costliest": [{"step_id": s["step_id"], "seq": s["seq"], "name": s["name"],
                       "model": s["llm"]["request_model"], "cost_usd": round(s["llm"]["cost_usd"], 8)}
                      for s in costly[:TOP_N]],
    }


def _failure_section(steps: list[dict[str, Any]], failures: list[dict[str, Any]],
                     by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    failed = [s for s in steps if s["status"] != "OK"]
    failed_ids = {s["step_id"] for s in failed}
    # A failed step whose failed child explains it is a consequence; the root is the earliest
    # failed step with no failed child (the origin of the chain), else the first FAILURE event.
    has_failed_child = {s["parent_step_id"] for s in failed if s["parent_step_id"] in failed_ids}
    leaves = [s for s in failed if s["step_id"] not in has_failed_child]
    root = min(leaves, key=lambda s: s["seq"]) if leaves else None
    codes: dict[str, list[str]] = defaultdict(list)
    for f in failures:
        codes[f["step_id"]].append(f"{f['failure_type']}:{f['failure_code']}")
    chain: list[dict[str, Any]] = []
    if root is not None:
        cur: dict[str, Any] | None = root
        seen: set[str] = set()
        while cur is not None and cur["step_id"] not in seen:
            seen.add(cur["step_id"])
            chain.append({"step_id": cur["step_id"], "seq": cur["seq"], "step_kind": cur["step_kind"],
                          "name": cur["name"], "status": cur["status"],
                          "failures": codes.get(cur["step_id"], [])})
            parent = by_id.get(cur["parent_step_id"])
            cur = parent if parent is not None and parent["status"] != "OK" else None
    unlinked = [f"{f['failure_type']}:{f['failure_code']}" for f in failures if f["step_id"] not in by_id]
    root_out = chain[0] if chain else None
    if root_out is None and failures:
        f = failures[0]
        root_out = {"step_id": f["step_id"], "seq": f["seq"], "step_kind": "", "name": "",
                    "status": "", "failures": [f"{f['failure_type']}:{f['failure_code']}"]}
    return {"failed_steps": len(failed), "failure_events": len(failures), "root": root_out,
            "chain": chain, "unlinked_failures": unlinked}


def _retry_section(steps: list[dict[str, Any]], failures: list[dict[str, Any]],
                   by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in steps:
        groups[_retry_root(s, by_id)["step_id"] if s["retry_of"] else s["step_id"]].append(s)
    codes: dict[str, list[str]] = defaultdict(list)
    for f in failures:
        codes[f["step_id"]].append(f"{f['failure_type']}:{f['failure_code']}")
    out = []
    for root_id, attempts in groups.items():
        if len(attempts) < 2:
            continue
        attempts.sort(key=lambda s: (s["attempt"], s["seq"]))
        last = attempts[-1]
        wasted = attempts[:-1]
        out.append({
            "root_step_id": root_id, "step_kind": last["step_kind"], "name": last["name"],
            "attempts": len(attempts), "statuses": [a["status"] for a in attempts],
            "recovered": last["status"] == "OK",
            "failure_codes": sorted({c for a in attempts for c in codes.get(a["step_id"], [])}),
            "retried_ms": round(sum(a["latency_ms"] for a in wasted), 3),
            "retried_cost_usd": round(sum((a.get("llm") or {}).get("cost_usd", 0.0) for a in wasted), 8),
            "first_seq": attempts[0]["seq"],
        })
    out.sort(key=lambda r: r["first_seq"])
    return out


def _enforcement_section(run: dict[str, Any], failures: list[dict[str, Any]],
                         others: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in others:
        if e["kind"] == "COMMAND_ACK":
            d = e.get("details") or {}
            out.append({"source": "command", "what": str(d.get("command_type", "")).lower(),
                        "detail": f"{d.get('status', '')}" + (f": {d['detail']}" if d.get("detail") else ""),
                        "ts_us": e["ts_us"]})
    for f in failures:
        if f["failure_type"] in ("BUDGET", "POLICY"):
            out.append({"source": "sdk", "what": f["failure_type"].lower(), "detail": f["failure_code"],
                        "ts_us": f["ts_us"]})
    for a in alerts:
        if a["alert_type"] in ENFORCEMENT_ALERTS or a["alert_type"].startswith("budget"):
            ev = a.get("evidence") or {}
            who = ev.get("actor")
            detail = a["title"] + (f" (by {who}" + (f": {ev['reason']}" if ev.get("reason") else "") + ")"
                                   if who else "")
            out.append({"source": "alert", "what": a["alert_type"], "detail": detail,
                        "ts_us": a["detected_us"]})
    out.sort(key=lambda x: (x["ts_us"], x["source"], x["what"]))
    for x in out:  # offsets from the run's start read better than epoch micros
        x["at_ms"] = round((x.pop("ts_us") - run["started_us"]) / 1000, 3)
    return out


def explain_run(detail: dict[str, Any], alerts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pure: the run's account, as sections and as plain sentences (``summary``)."""
    run = detail["run"]
    steps = sorted(detail["steps"], key=lambda s: s["seq"])
    failures = sorted(detail["failures"], key=lambda f: f["seq"])
    decisions = sorted(detail["decisions"], key=lambda d: d["seq"])
    by_id = {s["step_id"]: s for s in steps if s["step_id"]}
    time_s = _time_section(run, steps, by_id)
    cost_s = _cost_section(run, steps)
    fail_s = _failure_section(steps, failures, by_id)
    retries = _retry_section(steps, failures, by_id)
    enforcement = _enforcement_section(run, failures, detail.get("other_events", []), alerts or [])
    decision_out = [{"seq": d["seq"], "decision_type": d["decision_type"], "selected": d["selected"],
                     "candidates": d["candidates"], "reason_code": d["reason_code"],
                     "confidence": d["confidence"]} for d in decisions]

    lines: list[str] = []
    status = run["status"]
    ended = "is still running" if status == "RUNNING" else f"ended {status} ({run['outcome'] or 'no outcome'})"
    lines.append(f"Run {run['run_id']} of {run['agent_id']} {run['agent_version']} {ended} after "
                 f"{_ms(time_s['wall_ms'])}: {run['step_count']} steps, {run['llm_calls']} LLM calls, "
                 f"{run['tool_calls']} tool calls, {_usd(cost_s['cost_usd'])}."
                 + (f" {run['failure_count']} failure event{'s' * (run['failure_count'] != 1)}, "
                    f"{run['retry_count']} retr{'ies' if run['retry_count'] != 1 else 'y'}."
                    if run["failure_count"] or run["retry_count"] else ""))
    if run["outcome"] in ENFORCEMENT_OUTCOMES:
        lines.append(f"It was stopped by {ENFORCEMENT_OUTCOMES[run['outcome']]}.")
    if time_s["by_kind"]:
        parts = ", ".join(f"{k['step_kind'].lower()} {_ms(k['ms'])} ({_pct(k['ms'], time_s['agent_ms'])})"
                          for k in time_s["by_kind"][:4])
        lines.append(f"Agent time {_ms(time_s['agent_ms'])} went to {parts}.")
    if time_s["slowest"]:
        s = time_s["slowest"][0]
        lines.append(f"The slowest step was {s['step_kind'].lower()} '{s['name']}' (#{s['seq']}) "
                     f"at {_ms(s['self_ms'])} of its own time.")
    if time_s["untracked_ms"] >= 1:
        lines.append(f"{_ms(time_s['untracked_ms'])} of wall time was outside any step.")
    if time_s["waits"]:
        n = len(time_s["waits"])
        lines.append(f"Humans kept it waiting {_ms(time_s['human_wait_ms'])} over "
                     f"{n} approval{'s' * (n != 1)}, not counted as agent time: "
                     + "; ".join(f"'{w['name']}' {_ms(w['wait_ms'])} {w['decision'] or ''}".rstrip()
                                 for w in time_s["waits"]) + ".")
    if cost_s["by_model"]:
        parts = ", ".join(f"{m['model']} {_usd(m['cost_usd'])} ({m['calls']} call{'s' * (m['calls'] != 1)})"
                          for m in cost_s["by_model"])
        lines.append(f"Cost by model: {parts}; {cost_s['input_tokens']} input and "
                     f"{cost_s['output_tokens']} output tokens.")
    if cost_s["costliest"]:
        c = cost_s["costliest"][0]
        lines.append(f"The costliest step was '{c['name']}' (#{c['seq']}, {c['model']}) at "
                     f"{_usd(c['cost_usd'])} ({_pct(c['cost_usd'], cost_s['cost_usd'])} of the run).")
    if fail_s["root"] is not None:
        r = fail_s["root"]
        codes = ", ".join(r["failures"]) or r["status"]
        where = f"{r['step_kind'].lower()} '{r['name']}' (#{r['seq']})" if r["name"] else f"event #{r['seq']}"
        lines.append(f"The failure started at {where}: {codes}.")
        if len(fail_s["chain"]) > 1:
            lines.append("It propagated through " + " → ".join(
                f"'{c['name']}' {c['status']}" + (f" ({', '.join(c['failures'])})" if c["failures"] else "")
                for c in fail_s["chain"][1:]) + ".")
    elif status == "FAILURE":
        lines.append("It failed without a failed step or failure event recorded.")
    for r in retries:
        outcome = "then succeeded" if r["recovered"] else f"and still ended {r['statuses'][-1]}"
        why = f" after {', '.join(r['failure_codes'])}" if r["failure_codes"] else ""
        lines.append(f"{r['step_kind'].lower().capitalize()} '{r['name']}' was tried {r['attempts']} times{why} "
                     f"{outcome}; the retried attempts took {_ms(r['retried_ms'])}"
                     + (f" and {_usd(r['retried_cost_usd'])}" if r["retried_cost_usd"] else "") + ".")
    for d in decision_out:
        others = [c for c in d["candidates"] if c != d["selected"]]
        conf = f", confidence {d['confidence']:.2f}" if d["confidence"] is not None else ""
        lines.append(f"Decision {d['decision_type']}: chose {d['selected']}"
                     + (f" over {', '.join(others)}" if others else "") + f" ({d['reason_code']}{conf}).")
    for e in enforcement:
        lines.append(f"Enforcement at +{_ms(max(0.0, e['at_ms']))} ({e['source']}): {e['what']} - {e['detail']}.")
    return {
        "run_id": run["run_id"],
        "outcome": {"status": status, "outcome": run["outcome"], "duration_ms": run["duration_ms"],
                    "steps": run["step_count"], "failures": run["failure_count"],
                    "retries": run["retry_count"]},
        "time": time_s,
        "cost": cost_s,
        "failure": fail_s,
        "retries": retries,
        "decisions": decision_out,
        "enforcement": enforcement,
        "summary": lines,
    }
