"""``agentstream runs why RUN STEP``: the causal context of one step, from the run's timeline and
detail (no model: the same data gives the same account).

For the step named by its id, its ``#seq`` or its name (the last attempt of the last step of that
name), it says:

- where it ran: the chain of steps that contain it, root first;
- what was decided before it: the latest decisions recorded before it started in the steps
  that contain it or in the run itself (their options, reason and confidence);
- its attempts: the retry chain it belongs to, each attempt's status and failures;
- what went wrong inside it: failures on it, and the root failure among the steps it contains
  (the earliest failed step with no failed step inside it);
- what it caused: the containing steps that failed after it failed.
"""
from __future__ import annotations

from typing import Any, Mapping

RECENT_DECISIONS = 3


class StepNotFound(LookupError):
    pass


def find(spans: list[Mapping[str, Any]], step: str) -> Mapping[str, Any]:
    by_id = {s["span_id"]: s for s in spans}
    if step in by_id:
        return by_id[step]
    if step.startswith("#") and step[1:].isdigit():
        hit = [s for s in spans if s["seq"] == int(step[1:])]
        if hit:
            return hit[0]
    named = [s for s in spans if s["name"] == step]
    if named:
        return max(named, key=lambda s: (s["start_ms"], s["attempt"], s["seq"]))
    raise StepNotFound(f"no step {step!r} in this run (give a step id, #seq or a step name)")


def why(timeline: Mapping[str, Any], detail: Mapping[str, Any], step: str) -> dict[str, Any]:
    spans = [s for s in timeline.get("spans") or [] if s.get("kind") != "RUN"]
    target = find(spans, step)
    by_id = {s["span_id"]: s for s in spans}
    chain, seen = [], {target["span_id"]}
    parent = target.get("parent_span_id")
    while parent and parent in by_id and parent not in seen:  # a cycle in bad data ends the walk
        seen.add(parent)
        chain.append(by_id[parent])
        parent = by_id[parent].get("parent_span_id")
    chain.reverse()
    scope = {s["span_id"] for s in chain} | {target["span_id"], ""}
    origin = int(timeline.get("started_us") or 0)
    start_us = origin + int(target["start_ms"] * 1000)
    decisions = [d for d in detail.get("decisions") or []
                 if d.get("step_id", "") in scope and int(d.get("ts_us") or 0) <= start_us]
    failures = detail.get("failures") or []
    fails_on: dict[str, list[str]] = {}
    for f in failures:
        fails_on.setdefault(f.get("step_id", ""), []).append(f"{f.get('failure_type')}:{f.get('failure_code')}")
    root = target.get("retry_root") or target["span_id"]
    attempts = sorted((s for s in spans if s["span_id"] == root or s.get("retry_root") == root),
                      key=lambda s: (s["attempt"], s["start_ms"]))
    inside = _descendants(spans, target["span_id"])
    failed_inside = [s for s in inside if _failed(s)]
    cause = min((s for s in failed_inside if not any(_failed(c) and c.get("parent_span_id") == s["span_id"]
                                                     for c in inside)),
                key=lambda s: (s["start_ms"], s["seq"]), default=None)
    consequences = [s for s in reversed(chain) if _failed(s) and s["end_ms"] >= target["end_ms"]] \
        if _failed(target) else []
    return {
        "run_id": timeline.get("run_id"), "step": _brief(target, fails_on),
        "inside": [_brief(s, fails_on) for s in chain],
        "decided_before": [{"decision_type": d.get("decision_type"), "selected": d.get("selected"),
                            "candidates": [c for c in d.get("candidates") or [] if c != d.get("selected")],
                            "reason_code": d.get("reason_code"), "confidence": d.get("confidence"),
                            "at_ms": round((int(d.get("ts_us") or 0) - origin) / 1000, 3)}
                           for d in decisions[-RECENT_DECISIONS:]],
        "attempts": [_brief(s, fails_on) for s in attempts] if len(attempts) > 1 else [],
        "root_cause_inside": _brief(cause, fails_on) if cause is not None else None,
        "caused": [_brief(s, fails_on) for s in consequences],
    }


def _failed(s: Mapping[str, Any]) -> bool:
    return str(s.get("status") or "OK") not in ("OK", "SUCCESS", "")


def _descendants(spans: list[Mapping[str, Any]], span_id: str) -> list[Mapping[str, Any]]:
    out, frontier = [], {span_id}
    while frontier:
        kids = [s for s in spans if s.get("parent_span_id") in frontier and s not in out and s["span_id"] != span_id]
        out += kids
        frontier = {s["span_id"] for s in kids} - {span_id}
    return out


def _brief(s: Mapping[str, Any], fails_on: Mapping[str, list[str]]) -> dict[str, Any]:
    return {"span_id": s["span_id"], "seq": s["seq"], "kind": s["kind"], "name": s["name"], "status": s["status"],
            "attempt": s["attempt"], "start_ms": s["start_ms"], "duration_ms": s["duration_ms"],
            "failures": fails_on.get(s["span_id"], [])}


def lines(doc: Mapping[str, Any]) -> list[str]:
    """The account in plain lines, for a terminal."""
    def name(s: Mapping[str, Any]) -> str:
        return f"{s['kind'].lower()} '{s['name']}' (#{s['seq']})"

    def state(s: Mapping[str, Any]) -> str:
        fails = f", {', '.join(s['failures'])}" if s["failures"] else ""
        return f"{s['status']} after {s['duration_ms']:.0f} ms{fails}"

    s = doc["step"]
    out = [f"Step {name(s)}, attempt {s['attempt']}, started at {s['start_ms'] / 1000:.2f} s: {state(s)}."]
    out.append("It ran inside " + " > ".join(name(p) for p in doc["inside"]) + "." if doc["inside"]
               else "It ran at the top of the run.")
    for d in doc["decided_before"]:
        others = f" over {', '.join(d['candidates'])}" if d["candidates"] else ""
        conf = f", confidence {d['confidence']:.2f}" if d["confidence"] is not None else ""
        out.append(f"Decided before it, at {d['at_ms'] / 1000:.2f} s: {d['decision_type']} chose {d['selected']}"
                   f"{others} ({d['reason_code'] or 'no reason given'}{conf}).")
    if not doc["decided_before"]:
        out.append("No decision was recorded before it in the steps that contain it.")
    if doc["attempts"]:
        out.append("Its call was attempted " + str(len(doc["attempts"])) + " times: "
                   + "; ".join(f"#{a['seq']} {state(a)}" for a in doc["attempts"]) + ".")
    cause = doc["root_cause_inside"]
    if cause is not None:
        out.append(f"The failure inside it started at {name(cause)}: {state(cause)}.")
    if doc["caused"]:
        out.append("Its failure carried up to " + ", ".join(f"{name(c)} ({c['status']})" for c in doc["caused"]) + ".")
    return out
