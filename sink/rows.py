"""Pure row mappers: a decoded Event/Alert record -> one row of the ``events``/``alerts`` table.

No I/O. A record that cannot be mapped raises ``RowError`` with a reason for the DLQ headers.
Timestamps stay integers (µs since epoch): clickhouse-connect writes ints into DateTime64(6)
as raw ticks, which is both exact and cheaper than building datetime objects.
"""
from __future__ import annotations

from typing import Any, Callable

import orjson

from agentstream.schemas.id_format import is_storable_id
from agentstream.schemas.stored_ranges import ATTEMPT_MAX, SEQ_MAX
from agentstream.schemas.usage_numbers import TOKENS_MAX, is_cost, is_duration_ms, is_token_count

EVENT_COLUMNS: tuple[str, ...] = (
    "tenant_id", "ts", "event_id", "agent_id", "agent_version", "environment", "run_id",
    "session_id", "parent_run_id", "parent_step_id", "end_user_id", "seq", "kind",
    "step_id", "step_kind", "name", "status", "started_ts", "latency_ms", "attempt", "retry_of",
    "provider", "request_model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "cost_usd", "request_digest", "tool_name", "args_digest",
    "failure_type", "failure_code",
    "decision_type", "selected", "candidates", "reason_code", "confidence",
    "signal_type", "signal_code", "signal_value",
    "run_status", "outcome", "duration_ms",
    "payload", "attributes", "capture_mode", "policy_version", "redaction_counts", "retention_days",
)

ALERT_COLUMNS: tuple[str, ...] = (
    "tenant_id", "detected_ts", "alert_id", "alert_type", "severity", "agent_id", "agent_version",
    "run_id", "title", "evidence", "source_offsets", "retention_days",
)

# Column defaults of the events table, so a row is complete whatever the payload branch.
_EVENT_DEFAULTS: dict[str, Any] = {
    "step_id": "", "step_kind": "", "name": "", "status": "", "latency_ms": 0.0, "attempt": 0,
    "retry_of": "", "provider": "", "request_model": "", "input_tokens": 0, "output_tokens": 0,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0, "request_digest": "",
    "tool_name": "",
    "args_digest": "", "failure_type": "", "failure_code": "", "decision_type": "", "selected": "",
    "candidates": [], "reason_code": "", "confidence": None, "signal_type": "", "signal_code": "",
    "signal_value": None, "run_status": "", "outcome": "", "duration_ms": 0.0,
}


def payload_json(rest: dict[str, Any]) -> str:
    """The payload column's JSON text: sorted keys, no spaces, and U+2028/U+2029 escaped as
    ClickHouse's toJSONString writes them (orjson leaves them raw), so the Avro fast path's view
    and this mapper store the same text."""
    text = orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode()
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


class RowError(ValueError):
    """A decoded record that does not fit the table; ``reason`` goes to the DLQ headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drops absent optionals so ``payload`` holds only what the event said."""
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


# The envelope's ids (api/gateway/validation.py checks them at the edge, by ID_FORMAT): a run id
# holding a newline or 10 KB long, written around the gateway, was stored and then unreadable
# through the API (which routes by id). Stored ids need only be storable
# (schemas/id_format.is_storable_id); _eventrows_read.h checks the same fields alike.
ID_FIELDS = ("event_id", "run_id", "session_id", "parent_run_id", "parent_step_id")


def _duration(p: dict[str, Any], name: str, what: str) -> float:
    """A duration in ms (schemas/usage_numbers.py): -1e308 or inf failed every read of the run."""
    v = float(p[name])
    if not is_duration_ms(v):
        raise RowError(f"{what} is not a duration of 0 to 30 days in ms ({v})")
    return v


def _rule_counts(counts: dict[str, Any]) -> dict[str, int]:
    out = {k: int(v) for k, v in counts.items()}
    if any(v < 0 for v in out.values()):
        raise RowError("redaction rule count is negative")
    return out


def _run_start(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row["name"] = p["entrypoint"]
    return {"role": p.get("role"), "sampled": p.get("sampled")}


def _run_end(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row["run_status"] = p["status"]
    row["outcome"] = p.get("outcome") or ""
    row["duration_ms"] = _duration(p, "duration_ms", "run duration_ms")
    row["started_ts"] = int(p["started_us"])
    # Totals stay in payload only: token/cost columns belong to LLM steps, so sums never double.
    return {k: p.get(k) for k in ("step_count", "llm_calls", "input_tokens", "output_tokens", "cost_usd")}


def _step(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row.update(
        step_id=p["step_id"], step_kind=p["step_kind"], name=p["name"], status=p["status"],
        started_ts=int(p["started_us"]), latency_ms=_duration(p, "latency_ms", "step latency_ms"),
        attempt=int(p.get("attempt") or 0), retry_of=p.get("retry_of") or "",
    )
    if not 0 <= row["attempt"] <= ATTEMPT_MAX:
        raise RowError(f"step attempt {row['attempt']} is outside 0..{ATTEMPT_MAX}")
    rest: dict[str, Any] = {}
    llm = p.get("llm")
    if llm:
        row.update(
            provider=llm["provider"], request_model=llm["request_model"],
            input_tokens=int(llm.get("input_tokens") or 0),
            output_tokens=int(llm.get("output_tokens") or 0),
            cache_read_tokens=int(llm.get("cache_read_tokens") or 0),
            cache_write_tokens=int(llm.get("cache_write_tokens") or 0),
            cost_usd=float(llm.get("cost_usd") or 0.0),
            request_digest=llm.get("request_digest") or "",  # Event v2; absent in v1
        )
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            if not is_token_count(row[k]):  # past it, the tenant's UInt64 sums wrap
                raise RowError(f"llm {k} is outside 0..{TOKENS_MAX} ({row[k]})")
        if not is_cost(row["cost_usd"]):  # a NaN here made every sum over the tenant's costs NaN
            raise RowError(f"llm cost_usd is not a finite cost >= 0 ({row['cost_usd']})")
        rest["llm"] = _compact({k: llm.get(k) for k in
                                ("operation", "response_model", "finish_reasons", "tool_calls")})
    tool = p.get("tool")
    if tool:
        row["tool_name"] = tool["tool_name"]
        row["args_digest"] = tool.get("args_digest") or ""
        rest["tool"] = _compact({"call_id": tool.get("call_id")})
    approval = p.get("approval")
    if approval:
        _duration(approval, "approval_latency_ms", "approval_latency_ms")
    for k in ("handoff", "approval", "fallback", "content"):
        if p.get(k):
            rest[k] = _compact(p[k])
    return _compact(rest)


def _failure(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row.update(failure_type=p["failure_type"], failure_code=p["failure_code"],
               step_id=p.get("step_id") or "")
    return {"message": p.get("message"), "retryable": p.get("retryable")}


def _decision(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row.update(decision_type=p["decision_type"], selected=p["selected"],
               candidates=list(p.get("candidates") or []), reason_code=p["reason_code"],
               confidence=p.get("confidence"), step_id=p.get("step_id") or "")
    return {}


def _quality(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    row.update(signal_type=p["signal_type"], signal_code=p["signal_code"],
               signal_value=bool(p["value"]), step_id=p.get("step_id") or "")
    return {"weight": p.get("weight")}


def _as_payload(p: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return dict(p)


_BRANCHES: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "RUN_START": _run_start, "RUN_END": _run_end, "STEP": _step, "FAILURE": _failure,
    "DECISION": _decision, "QUALITY_SIGNAL": _quality, "FEEDBACK": _as_payload,
    "COMMAND_ACK": _as_payload,
}


def event_row(ev: dict[str, Any], retention_days: int = 30) -> tuple[Any, ...]:
    """The ``events`` row (in ``EVENT_COLUMNS`` order) of one decoded Event."""
    try:
        kind = ev["kind"]
        branch = _BRANCHES.get(kind)
        if branch is None:
            raise RowError(f"unknown event kind {kind!r}")
        payload = ev["payload"]
        if isinstance(payload, tuple):  # fastavro's (branch name, record) form
            payload = payload[1]
        if not isinstance(payload, dict):
            raise RowError(f"{kind} event has no payload record")
        seq = int(ev["seq"])
        if not 0 <= seq <= SEQ_MAX:
            raise RowError(f"seq {seq} is outside 0..{SEQ_MAX}")
        if not ev["tenant_id"] or not ev["run_id"] or not ev["event_id"]:
            raise RowError("tenant_id, run_id and event_id must be non-empty")
        for k in ID_FIELDS:
            v = ev.get(k)
            if v and not is_storable_id(v):  # the reason never quotes it: it may be 10 KB
                raise RowError(f"{k} is not an id (at most 1,024 bytes, no blank or control "
                               "character)")
        ts = int(ev["ts_us"])
        row: dict[str, Any] = dict(_EVENT_DEFAULTS)
        row["started_ts"] = ts
        rest = _compact(branch(payload, row))
        red = ev.get("redaction") or {}
        row.update(
            tenant_id=ev["tenant_id"], ts=ts, event_id=ev["event_id"], agent_id=ev["agent_id"],
            agent_version=ev["agent_version"], environment=ev["environment"], run_id=ev["run_id"],
            session_id=ev.get("session_id") or "", parent_run_id=ev.get("parent_run_id") or "",
            parent_step_id=ev.get("parent_step_id") or "",
            end_user_id=ev.get("end_user_id") or "",  # Event v2; absent in v1
            seq=seq, kind=kind,
            payload=payload_json(rest),
            attributes=dict(ev.get("attributes") or {}),
            capture_mode=ev.get("capture_mode") or "METADATA_ONLY",
            policy_version=ev.get("policy_version") or "",
            redaction_counts=_rule_counts(red.get("rule_counts") or {}),
            retention_days=retention_days,
        )
    except RowError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError(f"event does not map to the events table: {type(exc).__name__}: {exc}") from exc
    return tuple(row[c] for c in EVENT_COLUMNS)


def alert_row(al: dict[str, Any], retention_days: int = 90) -> tuple[Any, ...]:
    """The ``alerts`` row (in ``ALERT_COLUMNS`` order) of one decoded Alert."""
    try:
        if not al["tenant_id"] or not al["alert_id"]:
            raise RowError("tenant_id and alert_id must be non-empty")
        offsets = [{"topic": o["topic"], "partition": int(o["partition"]), "offset": int(o["offset"])}
                   for o in al.get("source_offsets") or []]
        return (
            al["tenant_id"], int(al["detected_us"]), al["alert_id"], al["alert_type"],
            al["severity"], al.get("agent_id") or "", al.get("agent_version") or "",
            al.get("run_id") or "", al["title"], {str(k): str(v) for k, v in (al.get("evidence") or {}).items()},
            orjson.dumps(offsets).decode(), retention_days,
        )
    except RowError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError(f"alert does not map to the alerts table: {type(exc).__name__}: {exc}") from exc
