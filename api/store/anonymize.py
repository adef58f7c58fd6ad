"""Anonymised run records: stable keyed pseudonyms for ids and names. Pure.

Safe by construction: the output is *built* from an explicit list of fields, each with a rule
(keep it: categorical or numeric metadata; or replace it with a pseudonym), so a field this
module does not know about (a new payload key, a failure message, a content preview, a custom
attribute) never reaches an anonymised export. Pseudonyms are HMAC-SHA256 under the caller's
key, per namespace: the same run id gives the same pseudonym in every export made with the same
key (so links between runs, steps and retries survive), and nobody without the key can map a
pseudonym back or test a guessed name.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

MIN_KEY_BYTES = 16
# Attribute keys whose values are model/usage metadata (OpenTelemetry GenAI conventions).
SAFE_ATTRIBUTES = frozenset({
    "gen_ai.provider.name", "gen_ai.system", "gen_ai.operation.name", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
})


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._memo: dict[tuple[str, str], str] = {}

    def __call__(self, ns: str, value: Any) -> str:
        if value is None or value == "":
            return ""
        value = str(value)
        hit = self._memo.get((ns, value))
        if hit is None:
            mac = hmac.new(self._key, f"{ns}\x00{value}".encode(), hashlib.sha256).digest()
            hit = f"{ns}_" + base64.b32encode(mac[:10]).decode().lower()
            if len(self._memo) < 100_000:  # a bounded cache: exports stream without limit
                self._memo[(ns, value)] = hit
        return hit


def _run(r: dict[str, Any], p: Pseudonymizer) -> dict[str, Any]:
    out: dict[str, Any] = {k: r[k] for k in ("agent_version", "environment", "status", "outcome", "started_us",
                             "last_us", "duration_ms", "event_count", "step_count", "llm_calls",
                             "tool_calls", "retry_count", "failure_count", "input_tokens",
                             "output_tokens", "cost_usd") if k in r}
    out.update(run_id=p("run", r["run_id"]), agent_id=p("agent", r["agent_id"]),
               session_id=p("session", r.get("session_id")),
               parent_run_id=p("run", r.get("parent_run_id")),
               entrypoint=p("name", r.get("entrypoint")))
    return out


def _step_details(d: dict[str, Any], p: Pseudonymizer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    approval = d.get("approval")
    if isinstance(approval, dict):
        out["approval"] = {"decision": str(approval.get("decision", "")),
                           "approval_latency_ms": approval.get("approval_latency_ms")}
    handoff = d.get("handoff")
    if isinstance(handoff, dict):
        out["handoff"] = {"to_agent_id": p("agent", handoff.get("to_agent_id")),
                          "to_run_id": p("run", handoff.get("to_run_id"))}
    llm = d.get("llm")
    if isinstance(llm, dict) and isinstance(llm.get("finish_reasons"), list):
        out["llm"] = {"finish_reasons": [str(x) for x in llm["finish_reasons"]]}
    return out


def _step(s: dict[str, Any], p: Pseudonymizer) -> dict[str, Any]:
    llm = s.get("llm")
    tool = s.get("tool")
    return {
        "seq": s["seq"], "event_id": p("event", s["event_id"]), "step_id": p("step", s["step_id"]),
        "step_kind": s["step_kind"], "name": p("name", s["name"]), "status": s["status"],
        "parent_step_id": p("step", s["parent_step_id"]), "started_us": s["started_us"],
        "ts_us": s["ts_us"], "latency_ms": s["latency_ms"], "attempt": s["attempt"],
        "retry_of": p("step", s["retry_of"]),
        "llm": dict(llm) if llm else None,  # provider, model, tokens, cost: metadata only
        "tool": {"tool_name": p("tool", tool["tool_name"]), "args_digest": p("args", tool.get("args_digest"))}
        if tool else None,
        "details": _step_details(s.get("details") or {}, p),
        "attributes": {k: v for k, v in (s.get("attributes") or {}).items() if k in SAFE_ATTRIBUTES},
    }


def _other(e: dict[str, Any], p: Pseudonymizer) -> dict[str, Any]:
    d = e.get("details") or {}
    kind = e["kind"]
    if kind == "COMMAND_ACK":
        details = {"command_id": p("command", d.get("command_id")),
                   "command_type": str(d.get("command_type", "")), "status": str(d.get("status", ""))}
    elif kind == "FEEDBACK":
        details = {"interaction_id": p("interaction", d.get("interaction_id")),
                   "feedback_type": str(d.get("feedback_type", "")), "value": str(d.get("value", ""))}
    else:
        details = {}
    return {"seq": e["seq"], "event_id": p("event", e["event_id"]), "ts_us": e["ts_us"],
            "kind": kind, "details": details}


def anonymize_detail(detail: dict[str, Any], p: Pseudonymizer) -> dict[str, Any]:
    """A run detail (``store.runs.run_detail``'s shape) with only allow-listed fields, ids and
    names replaced by pseudonyms."""
    def base(x: dict[str, Any]) -> dict[str, Any]:
        return {"seq": x["seq"], "event_id": p("event", x["event_id"]), "ts_us": x["ts_us"],
                "step_id": p("step", x.get("step_id"))}

    return {
        "run": _run(detail["run"], p),
        "steps": [_step(s, p) for s in detail["steps"]],
        "failures": [{**base(f), "failure_type": f["failure_type"], "failure_code": f["failure_code"],
                      "details": {"retryable": bool((f.get("details") or {}).get("retryable"))}}
                     for f in detail["failures"]],
        "decisions": [{**base(d), "decision_type": d["decision_type"],
                       "selected": p("option", d["selected"]),
                       "candidates": [p("option", c) for c in d["candidates"]],
                       "reason_code": d["reason_code"], "confidence": d["confidence"]}
                      for d in detail["decisions"]],
        "signals": [{**base(q), "signal_type": q["signal_type"], "signal_code": q["signal_code"],
                     "value": q["value"], "weight": q["weight"]} for q in detail["signals"]],
        "other_events": [_other(e, p) for e in detail.get("other_events", [])],
    }
