"""Redacted events as OTLP/JSON trace data (GenAI semantic conventions). Pure: event dicts in,
an ``ExportTraceServiceRequest`` body out.

A run is a trace: its id is derived from (tenant, run_id), so every exporter replica, and a
replay, gives the same ids. Each STEP is a span the moment it arrives (a step event carries its
start and latency), parented on its parent step or on the run's root span; RUN_END emits the
root span (``invoke_agent {agent}``) from its start and duration. Failures, decisions, quality
signals, feedback and command acknowledgements are zero-length child spans carrying their codes
(a span event would need the parent span to be held until the run ends, and a run may never end).
Nothing is buffered across events, so an offset is safe to commit once its batch is acknowledged.

What crosses is only what the events topic holds: redacted upstream, content absent unless the
tenant's capture policy let a redacted preview through (which is not exported either).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Iterable

SCOPE = {"name": "agentstream.export.otlp", "version": "1"}
KIND_INTERNAL, KIND_CLIENT = 1, 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
STEP_OPERATION = {"LLM": "chat", "TOOL": "execute_tool", "HANDOFF": "invoke_agent"}


def trace_id(tenant: str, run_id: str) -> str:
    return hashlib.sha256(f"{tenant}\x00{run_id}".encode()).hexdigest()[:32]


def span_id(tenant: str, run_id: str, ident: str) -> str:
    return hashlib.sha256(f"{tenant}\x00{run_id}\x00{ident}".encode()).hexdigest()[:16]


def root_span_id(tenant: str, run_id: str) -> str:
    return span_id(tenant, run_id, "\x00run")


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # OTLP/JSON: 64-bit integers as strings
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def attrs(pairs: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in pairs if v is not None and v != "" and v != []]


def _payload(ev: dict[str, Any]) -> dict[str, Any]:
    p = ev.get("payload")
    if isinstance(p, tuple):  # fastavro's (branch name, record) form
        p = p[1]
    return p if isinstance(p, dict) else {}


def _ns(us: int | float) -> str:
    return str(int(us) * 1000)


def _common(ev: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("gen_ai.agent.name", ev["agent_id"]), ("gen_ai.conversation.id", ev.get("session_id")),
            ("agentstream.run_id", ev["run_id"]), ("agentstream.event_id", ev["event_id"])]


def _step_span(ev: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    tenant, run = ev["tenant_id"], ev["run_id"]
    kind = p.get("step_kind") or "CUSTOM"
    op = STEP_OPERATION.get(kind)
    pairs: list[tuple[str, Any]] = [("gen_ai.operation.name", op), ("agentstream.step.kind", kind),
                                    ("agentstream.step.name", p.get("name")),
                                    ("agentstream.step.attempt", p.get("attempt"))]
    name = f"{kind.lower()} {p.get('name') or ''}".strip()
    llm, tool = p.get("llm") or None, p.get("tool") or None
    if llm:
        model = llm.get("request_model")
        name = f"{llm.get('operation') or 'chat'} {model}".strip()
        pairs += [("gen_ai.operation.name", llm.get("operation") or "chat"),
                  ("gen_ai.provider.name", llm.get("provider")), ("gen_ai.system", llm.get("provider")),
                  ("gen_ai.request.model", model), ("gen_ai.response.model", llm.get("response_model")),
                  ("gen_ai.usage.input_tokens", llm.get("input_tokens")),
                  ("gen_ai.usage.output_tokens", llm.get("output_tokens")),
                  ("gen_ai.usage.cache_read.input_tokens", llm.get("cache_read_tokens") or None),
                  ("gen_ai.usage.cache_creation.input_tokens", llm.get("cache_write_tokens") or None),
                  ("gen_ai.response.finish_reasons", list(llm.get("finish_reasons") or [])),
                  ("agentstream.cost_usd", llm.get("cost_usd"))]
    if tool:
        name = f"execute_tool {tool.get('tool_name')}"
        pairs += [("gen_ai.tool.name", tool.get("tool_name")), ("gen_ai.tool.call.id", tool.get("call_id")),
                  ("agentstream.tool.args_digest", tool.get("args_digest"))]
    # One value per key: the event's own attributes first, then the typed fields over them (the
    # llm record's operation, set after the step kind's default, wins too).
    dedup: dict[str, Any] = {}
    for k, v in sorted((ev.get("attributes") or {}).items()) + pairs + _common(ev):
        if v is not None and v != "" and v != []:
            dedup[k] = v
    start = int(p.get("started_us") or ev["ts_us"])
    end = start + int(float(p.get("latency_ms") or 0) * 1000)
    status = p.get("status") or "OK"
    parent = ev.get("parent_step_id")
    return {
        "traceId": trace_id(tenant, run), "spanId": span_id(tenant, run, p.get("step_id") or ev["event_id"]),
        "parentSpanId": span_id(tenant, run, parent) if parent else root_span_id(tenant, run),
        "name": name, "kind": KIND_CLIENT if (llm or tool) else KIND_INTERNAL,
        "startTimeUnixNano": _ns(start), "endTimeUnixNano": _ns(max(end, start)),
        "attributes": attrs(dedup.items()),
        "status": {"code": STATUS_OK} if status == "OK" else
                  {"code": STATUS_ERROR, "message": status},
    }


def _root_span(ev: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    tenant, run = ev["tenant_id"], ev["run_id"]
    start = int(p.get("started_us") or ev["ts_us"])
    end = start + int(float(p.get("duration_ms") or 0) * 1000)
    ok = p.get("status") == "SUCCESS"
    parent_run = ev.get("parent_run_id")
    span = {
        "traceId": trace_id(tenant, run), "spanId": root_span_id(tenant, run),
        "name": f"invoke_agent {ev['agent_id']}", "kind": KIND_INTERNAL,
        "startTimeUnixNano": _ns(start), "endTimeUnixNano": _ns(max(end, start)),
        "attributes": attrs([("gen_ai.operation.name", "invoke_agent"), *_common(ev),
                             ("agentstream.run.status", p.get("status")),
                             ("agentstream.run.outcome", p.get("outcome")),
                             ("agentstream.run.step_count", p.get("step_count")),
                             ("agentstream.run.llm_calls", p.get("llm_calls")),
                             ("gen_ai.usage.input_tokens", p.get("input_tokens")),
                             ("gen_ai.usage.output_tokens", p.get("output_tokens")),
                             ("agentstream.cost_usd", p.get("cost_usd")),
                             ("agentstream.parent_run_id", parent_run)]),
        "status": {"code": STATUS_OK} if ok else {"code": STATUS_ERROR, "message": p.get("status") or ""},
    }
    if parent_run:  # a sub-agent's run links to the run that handed off to it
        span["links"] = [{"traceId": trace_id(tenant, parent_run), "spanId": root_span_id(tenant, parent_run)}]
    return span


_MARK_FIELDS = {
    "FAILURE": ("failure_type", "failure_code", "retryable"),
    "DECISION": ("decision_type", "selected", "reason_code", "confidence"),
    "QUALITY_SIGNAL": ("signal_type", "signal_code", "value", "weight"),
    "FEEDBACK": ("feedback_type", "source", "interaction_id"),
    "COMMAND_ACK": ("command_type", "status", "command_id"),
}


def _mark_span(ev: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """A zero-length span for a point-in-time event, under its linked step (or the root)."""
    tenant, run, kind = ev["tenant_id"], ev["run_id"], ev["kind"]
    fields = _MARK_FIELDS.get(kind, ())
    pairs = [(f"agentstream.{kind.lower()}.{f}", p.get(f)) for f in fields]
    step = p.get("step_id") or ev.get("parent_step_id")
    label = p.get(fields[0]) if fields else ""
    span: dict[str, Any] = {
        "traceId": trace_id(tenant, run), "spanId": span_id(tenant, run, ev["event_id"]),
        "parentSpanId": span_id(tenant, run, step) if step else root_span_id(tenant, run),
        "name": f"{kind.lower()} {label}".strip(), "kind": KIND_INTERNAL,
        "startTimeUnixNano": _ns(ev["ts_us"]), "endTimeUnixNano": _ns(ev["ts_us"]),
        "attributes": attrs([("agentstream.kind", kind), *pairs, *_common(ev)]),
        "status": {"code": STATUS_UNSET},
    }
    if kind == "FAILURE":
        span["status"] = {"code": STATUS_ERROR, "message": str(p.get("failure_code") or "")}
        span["attributes"] += attrs([("error.type", p.get("failure_code") or p.get("failure_type"))])
        span["events"] = [{"timeUnixNano": _ns(ev["ts_us"]), "name": "exception",
                           "attributes": attrs([("exception.type", p.get("failure_type")),
                                                ("exception.message", p.get("failure_code"))])}]
    return span


def event_span(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The span an event becomes; None for RUN_START (the root span is sent at RUN_END)."""
    kind, p = ev["kind"], _payload(ev)
    if kind == "STEP":
        return _step_span(ev, p)
    if kind == "RUN_END":
        return _root_span(ev, p)
    if kind == "RUN_START":
        return None
    return _mark_span(ev, p)


def resource_key(ev: dict[str, Any]) -> tuple[str, str, str, str]:
    return (ev["tenant_id"], ev["agent_id"], ev["agent_version"], ev["environment"])


def export_request(events: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """One ``ExportTraceServiceRequest`` (OTLP/JSON) for the events, grouped into one resource per
    (tenant, agent, version, environment); returns it with its span count."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        span = event_span(ev)
        if span is not None:
            groups[resource_key(ev)].append(span)
    body = {"resourceSpans": [
        {"resource": {"attributes": attrs([("service.name", agent), ("service.version", version),
                                           ("deployment.environment.name", env),
                                           ("agentstream.tenant_id", tenant)])},
         "scopeSpans": [{"scope": SCOPE, "spans": spans}]}
        for (tenant, agent, version, env), spans in groups.items()]}
    return body, sum(len(s) for s in groups.values())
