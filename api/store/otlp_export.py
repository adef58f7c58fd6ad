"""A run as an OTLP/JSON ``ExportTraceServiceRequest``. Pure.

One request per run, one JSON object per line: the shape the OpenTelemetry Collector's
``otlpjsonfile`` receiver and file exporter use, so an export loads into any OTLP tool. The run
is the root span; each step is a span under its parent step (or the root), named
``"{kind} {name}"`` with GenAI semantic-convention attributes; failures, decisions, signals and
command acknowledgements are span events. Trace and span ids are derived from the run and step
ids (SHA-256), so exporting the same run twice gives the same ids.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any

from agentstream.schemas.usage_numbers import shown_ms

SCOPE = {"name": "agentstream.export", "version": "1"}
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_OK, STATUS_ERROR = 1, 2
OP_BY_KIND = {"LLM": "chat", "TOOL": "execute_tool", "HANDOFF": "invoke_agent"}


def _hex(*parts: str, n: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:n]


def _attr(key: str, value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    v: dict[str, Any]  # one OTLP AnyValue
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # OTLP/JSON carries 64-bit ints as strings
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, (list, tuple)):
        v = {"arrayValue": {"values": [{"stringValue": str(x)} for x in value]}}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def _attrs(pairs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in (_attr(k, v) for k, v in pairs) if a is not None]


# OTLP times are fixed64 ns: a time outside 0..2^64-1 ns (or NaN, inf) has no encoding. Clamped,
# never raised: this runs inside a streamed 200 response, where an exception cuts the body off
# mid-run and with it the rest of the tenant's export.
_MAX_US = (2**64 - 1) // 1000


def _nanos(us: int | float) -> str:
    if us.__class__ is not int:
        us = int(us) if us == us and abs(us) < math.inf else 0  # NaN and infinities: 0
    return str(min(max(us, 0), _MAX_US) * 1000)


def run_to_otlp(detail: dict[str, Any]) -> dict[str, Any]:
    run = detail["run"]
    trace_id = _hex("trace", run["run_id"], n=32)
    root_id = _hex("run", run["run_id"], n=16)
    steps = sorted(detail["steps"], key=lambda s: s["seq"])
    # A step id names a span only if it is unique in the run (agents reuse ids); any other step
    # gets a span id from its event id, so no two spans share one.
    seen: dict[str, int] = {}
    for s in steps:
        seen[s["step_id"]] = seen.get(s["step_id"], 0) + 1
    span_of = {sid: _hex("step", run["run_id"], sid, n=16) for sid, k in seen.items() if sid and k == 1}
    events_by_span: dict[str, list[dict[str, Any]]] = {}

    def add_event(step_id: str, name: str, ts_us: int, pairs: list[tuple[str, Any]]) -> None:
        sid = span_of.get(step_id, root_id)
        events_by_span.setdefault(sid, []).append(
            {"timeUnixNano": _nanos(ts_us), "name": name, "attributes": _attrs(pairs)})

    for f in detail["failures"]:
        add_event(f["step_id"], "agentstream.failure", f["ts_us"],
                  [("error.type", f"{f['failure_type']}:{f['failure_code']}"),
                   ("agentstream.failure.type", f["failure_type"]),
                   ("agentstream.failure.code", f["failure_code"])])
    for d in detail["decisions"]:
        add_event(d["step_id"], "agentstream.decision", d["ts_us"],
                  [("agentstream.decision.type", d["decision_type"]),
                   ("agentstream.decision.selected", d["selected"]),
                   ("agentstream.decision.candidates", d["candidates"]),
                   ("agentstream.decision.reason_code", d["reason_code"]),
                   ("agentstream.decision.confidence", d["confidence"])])
    for q in detail["signals"]:
        add_event(q["step_id"], "agentstream.quality_signal", q["ts_us"],
                  [("agentstream.signal.type", q["signal_type"]),
                   ("agentstream.signal.code", q["signal_code"]),
                   ("agentstream.signal.value", q["value"])])
    for e in detail.get("other_events", []):
        if e["kind"] in ("COMMAND_ACK", "FEEDBACK"):
            d = e.get("details") or {}
            add_event("", f"agentstream.{e['kind'].lower()}", e["ts_us"],
                      [(f"agentstream.{k}", v) for k, v in sorted(d.items())
                       if isinstance(v, (str, int, float, bool))])

    failed_run = run["status"] == "FAILURE"
    duration = run["duration_ms"]
    end_us = run["started_us"] + shown_ms(duration) * 1000 if duration is not None else run["last_us"]
    spans = [{
        "traceId": trace_id, "spanId": root_id, "parentSpanId": "",
        "name": f"invoke_agent {run['agent_id']}", "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": _nanos(run["started_us"]), "endTimeUnixNano": _nanos(end_us),
        "attributes": _attrs([("gen_ai.operation.name", "invoke_agent"),
                              ("gen_ai.agent.id", run["agent_id"]),
                              ("gen_ai.conversation.id", run.get("session_id")),
                              ("agentstream.run.id", run["run_id"]),
                              ("agentstream.run.parent_id", run.get("parent_run_id")),
                              ("agentstream.run.status", run["status"]),
                              ("agentstream.run.outcome", run.get("outcome")),
                              ("gen_ai.usage.input_tokens", run["input_tokens"]),
                              ("gen_ai.usage.output_tokens", run["output_tokens"]),
                              ("agentstream.cost_usd", float(run["cost_usd"]))]),
        "events": events_by_span.get(root_id, []),
        "status": {"code": STATUS_ERROR if failed_run else STATUS_OK,
                   **({"message": run.get("outcome") or "failed"} if failed_run else {})},
    }]
    for s in steps:
        llm, tool = s.get("llm") or {}, s.get("tool") or {}
        sid = span_of.get(s["step_id"]) or _hex("event", run["run_id"], s["event_id"], str(s["seq"]), n=16)
        parent = span_of.get(s["parent_step_id"], root_id)
        if parent == sid:  # a step named as its own parent hangs off the run instead
            parent = root_id
        pairs: list[tuple[str, Any]] = [
            ("gen_ai.operation.name", OP_BY_KIND.get(s["step_kind"], s["step_kind"].lower())),
            ("agentstream.step.kind", s["step_kind"]), ("agentstream.step.id", s["step_id"]),
            ("agentstream.step.attempt", s["attempt"]),
            ("agentstream.step.retry_of", s["retry_of"])]
        if llm:
            pairs += [("gen_ai.provider.name", llm.get("provider")),
                      ("gen_ai.request.model", llm.get("request_model")),
                      ("gen_ai.usage.input_tokens", llm.get("input_tokens")),
                      ("gen_ai.usage.output_tokens", llm.get("output_tokens")),
                      ("agentstream.cost_usd", float(llm.get("cost_usd") or 0.0))]
        if tool:
            pairs += [("gen_ai.tool.name", tool.get("tool_name")),
                      ("agentstream.tool.args_digest", tool.get("args_digest"))]
        approval = (s.get("details") or {}).get("approval")
        if isinstance(approval, dict):
            pairs += [("agentstream.approval.decision", approval.get("decision")),
                      ("agentstream.approval.wait_ms", approval.get("approval_latency_ms"))]
        error = s["status"] != "OK"
        if error:
            pairs.append(("error.type", s["status"].lower()))
        links = []
        if s["retry_of"] in span_of:
            links.append({"traceId": trace_id, "spanId": span_of[s["retry_of"]],
                          "attributes": _attrs([("agentstream.link", "retry_of")])})
        spans.append({
            "traceId": trace_id, "spanId": sid, "parentSpanId": parent,
            "name": f"{s['step_kind'].lower()} {s['name']}",
            "kind": SPAN_KIND_CLIENT if s["step_kind"] in ("LLM", "TOOL") else SPAN_KIND_INTERNAL,
            "startTimeUnixNano": _nanos(s["started_us"]),
            "endTimeUnixNano": _nanos(s["started_us"] + shown_ms(s["latency_ms"]) * 1000),
            "attributes": _attrs(pairs), "events": events_by_span.get(sid, []), "links": links,
            "status": {"code": STATUS_ERROR if error else STATUS_OK},
        })
    resource = _attrs([("service.name", run["agent_id"]), ("service.version", run["agent_version"]),
                       ("deployment.environment.name", run.get("environment"))])
    return {"resourceSpans": [{"resource": {"attributes": resource},
                               "scopeSpans": [{"scope": SCOPE, "spans": spans}]}]}
