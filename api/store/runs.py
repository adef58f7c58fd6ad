"""Runs: the per-run rollup (``runs``, AggregatingMergeTree) and a run's events (``events``)."""
from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable

from agentstream.schemas.avro_binary import read_varint
from agentstream.schemas.usage_numbers import shown_ms

from ..db import Db, RowReader
from ..errors import ApiError
from ..pagination import decode_cursor, page_of
from .read_priority import read_first
from .search import SearchFilters

# One row per run. ``runs`` holds partial aggregate rows until background merges, so every read
# re-aggregates by run_id with the functions the table declares.
RUN_COLUMNS = """
    run_id,
    anyLast(agent_id) AS agent_id,
    anyLast(agent_version) AS agent_version,
    anyLast(environment) AS environment,
    max(session_id) AS session_id,
    max(parent_run_id) AS parent_run_id,
    max(entrypoint) AS entrypoint,
    toUnixTimestamp64Micro(min(started_ts)) AS started_us,
    toUnixTimestamp64Micro(max(last_ts)) AS last_us,
    max(status) AS status,
    max(outcome) AS outcome,
    max(duration_ms) AS duration_ms,
    sum(event_count) AS event_count,
    sum(step_count) AS step_count,
    sum(llm_calls) AS llm_calls,
    sum(tool_calls) AS tool_calls,
    sum(retry_count) AS retry_count,
    sum(failure_count) AS failure_count,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd
"""


@dataclass
class RunFilters:
    agent: str | None = None
    version: str | None = None
    status: str | None = None  # SUCCESS / FAILURE / PARTIAL / RUNNING
    environment: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    search: SearchFilters = field(default_factory=SearchFilters)

    def where(self, params: dict[str, Any]) -> str:
        """Conditions on ``runs`` rows before aggregation (the search filters: api/store/search.py)."""
        return self.search.where(params, self.since_us)

    def having(self, params: dict[str, Any]) -> str:
        """HAVING clauses over the aggregated run columns; binds values into ``params``."""
        parts = [self.search.having(params)]
        if self.agent is not None:
            parts.append("agent_id = {f_agent:String}")
            params["f_agent"] = self.agent
        if self.version is not None:
            parts.append("agent_version = {f_version:String}")
            params["f_version"] = self.version
        if self.environment is not None:
            parts.append("environment = {f_env:String}")
            params["f_env"] = self.environment
        if self.status is not None:
            parts.append("status = {f_status:String}")
            params["f_status"] = "" if self.status == "RUNNING" else self.status
        if self.since_us is not None:
            parts.append("started_us >= {f_since:Int64}")
            params["f_since"] = self.since_us
        if self.until_us is not None:
            parts.append("started_us < {f_until:Int64}")
            params["f_until"] = self.until_us
        return " AND ".join(parts)


def runs_subquery(filters: RunFilters, params: dict[str, Any]) -> str:
    """SELECT of one aggregated row per run of the tenant, filtered; ``params`` needs ``tenant``."""
    return (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = {{tenant:String}} "
        f"AND {filters.where(params)} GROUP BY run_id HAVING {filters.having(params)}"
    )


def shape_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    finished = bool(row["status"])
    out["status"] = row["status"] or "RUNNING"
    # shown_ms: a NaN, infinite or negative duration stored before the sink refused them must
    # not fail the response (JSON has no NaN) or every reader computing with it
    out["duration_ms"] = shown_ms(row["duration_ms"]) if finished else None
    return out


def list_runs(db: Db, tenant: str, filters: RunFilters, limit: int, cursor: str | None):
    """Newest first; the cursor is the last row's (started_us, run_id)."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    after = decode_cursor("runs", cursor, (int, str))
    having = filters.having(params)
    if after is not None:
        having += " AND (started_us, run_id) < ({c_ts:Int64}, {c_id:String})"
        params["c_ts"], params["c_id"] = after
    sql = (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = {{tenant:String}} "
        f"AND {filters.where(params)} GROUP BY run_id HAVING {having} "
        "ORDER BY started_us DESC, run_id DESC LIMIT {limit:UInt32}"
    )
    rows, next_cursor = page_of("runs", db.rows(sql, params), limit, ["started_us", "run_id"])
    return [shape_run(r) for r in rows], next_cursor


def get_run(db: Db, tenant: str, run_id: str) -> dict[str, Any] | None:
    row = db.one(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = {{tenant:String}} "
        "AND run_id = {run_id:String} GROUP BY run_id",
        {"tenant": tenant, "run_id": run_id},
    )
    return shape_run(row) if row else None


# What the run export reads of each event from ``events`` (api/store/export.py): what the
# response shows. RUN_END's status/outcome/duration come from the run's header instead.
DETAIL_COLUMNS = """
    kind, seq, event_id,
    toUnixTimestamp64Micro(ts) AS ts_us,
    step_id, step_kind, name, status, parent_step_id,
    toUnixTimestamp64Micro(started_ts) AS started_us,
    latency_ms, attempt, retry_of,
    provider, request_model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    cost_usd, tool_name, args_digest,
    failure_type, failure_code,
    decision_type, selected, candidates, reason_code, confidence,
    signal_type, signal_code, signal_value,
    payload, attributes
"""
# The run's non-additive header fields, as ``runs`` aggregates them (RUN_COLUMNS).
HEADER = ("agent_id", "agent_version", "environment", "session_id", "parent_run_id", "entrypoint",
          "status", "outcome", "duration_ms")

# ``run_events.detail`` (0010_run_events.sql): RowBinary of a layout version byte, then these
# fields, each cast to the type named here (s String, u UInt64, i Int64, f Float64, nf
# Nullable(Float64), nb Nullable(Bool), as Array(String), m Map(String, String)). A later layout
# only appends fields, so a reader takes the fields it knows from any version.
RUN_EVENT_LAYOUT = (
    ("kind", "s"), ("seq", "u"), ("event_id", "s"), ("ts_us", "i"), ("step_id", "s"),
    ("step_kind", "s"), ("name", "s"), ("status", "s"), ("parent_step_id", "s"),
    ("started_us", "i"), ("latency_ms", "f"), ("attempt", "u"), ("retry_of", "s"),
    ("provider", "s"), ("request_model", "s"), ("input_tokens", "u"), ("output_tokens", "u"),
    ("cache_read_tokens", "u"), ("cache_write_tokens", "u"), ("cost_usd", "f"),
    ("tool_name", "s"), ("args_digest", "s"), ("failure_type", "s"), ("failure_code", "s"),
    ("decision_type", "s"), ("selected", "s"), ("candidates", "as"), ("reason_code", "s"),
    ("confidence", "nf"), ("signal_type", "s"), ("signal_code", "s"), ("signal_value", "nb"),
    ("payload", "s"), ("attributes", "m"), ("agent_id", "s"), ("agent_version", "s"),
    ("environment", "s"), ("session_id", "s"), ("parent_run_id", "s"), ("run_status", "s"),
    ("outcome", "s"), ("duration_ms", "f"), ("inserted_ms", "i"),
)
RUN_EVENT_FIELDS = tuple(name for name, _ in RUN_EVENT_LAYOUT)
# One column, the run's own granule(s), no FINAL: a fraction of the plan the 35-column read of
# ``events`` FINAL cost (bench/run_read_live.py). Copies of one event are folded by the reader.
# base64: the column is bytes, and the client decodes a String as text.
RUN_EVENTS_SQL = ("SELECT base64Encode(detail) AS detail FROM run_events "
                  "WHERE tenant_id = {tenant:String} AND run_id = {run_id:String}")
_FIXED = {"u": struct.Struct("<Q").unpack_from, "i": struct.Struct("<q").unpack_from,
          "f": struct.Struct("<d").unpack_from}


# The reader is straight-line code generated from RUN_EVENT_LAYOUT (so the layout stays the one
# contract): a run of 200 steps is ~9,000 fields per request, and a loop over the layout paid a
# tuple unpack, a kind test and a dict store per field, a function call per string; unrolled,
# each field is a few local operations and the event one dict display (bench/api_request_cpu.py).
# A string: a LEB128 length (one byte under 128, so that case is inline), then its UTF-8.
def _field_source(var: str, kind: str) -> list[str]:
    if kind == "s":  # about half of an event's strings are empty: those skip the slice and decode
        return ["n = data[pos]", "if n == 0:", f"    {var} = ''", "    pos += 1", "else:",
                "    if n < 0x80:", "        pos += 1", "    else:", "        n, pos = _size(data, pos)",
                "    end = pos + n", "    if end > size:", "        raise ValueError(_CUT)",
                f"    {var} = data[pos:end].decode('utf-8', 'replace')", "    pos = end"]
    if kind in _FIXED:
        return [f"{var}, = _FIXED[{kind!r}](data, pos)", "pos += 8"]
    if kind in ("nf", "nb"):  # a null byte, then the value unless it is null
        value = "_FIXED['f'](data, pos + 1)[0]" if kind == "nf" else "bool(data[pos + 1])"
        return ["if data[pos]:", f"    {var} = None", "    pos += 1", "else:",
                f"    {var} = {value}", f"    pos += {9 if kind == 'nf' else 2}"]
    if kind == "as":
        return ["count, pos = _size(data, pos)", f"{var} = []", "for _ in range(count):",
                "    item, pos = _text(data, pos)", f"    {var}.append(item)"]
    if kind == "m":
        return ["count, pos = _size(data, pos)", f"{var} = {{}}", "for _ in range(count):",
                "    key, pos = _text(data, pos)", f"    {var}[key], pos = _text(data, pos)"]
    raise ValueError(f"RUN_EVENT_LAYOUT: unknown field type {kind!r}")


def layout_reader(layout: tuple[tuple[str, str], ...]) -> Any:
    """``read(data, pos) -> (fields, pos)``: the layout's fields from ``pos`` of ``data``."""
    body = ["size = len(data)"]
    for i, (_, kind) in enumerate(layout):
        body += _field_source(f"f{i}", kind)
    fields = ", ".join(f"{name!r}: f{i}" for i, (name, _) in enumerate(layout))
    body.append(f"return {{{fields}}}, pos")
    source = "def read(data, pos):\n" + "".join(f"    {line}\n" for line in body)
    scope: dict[str, Any] = {"_size": _size, "_text": _text, "_FIXED": _FIXED, "_CUT": _CUT}
    exec(compile(source, "<run_events.detail reader>", "exec"), scope)  # our own source, made from RUN_EVENT_LAYOUT
    return scope["read"]


# A LEB128 length or count (as RowBinary writes them) at ``pos``: (value, next pos).
_size = read_varint
_CUT = "run_events.detail ends inside a field"


def _text(data: bytes, pos: int) -> tuple[str, int]:
    n = data[pos]
    if n < 0x80:  # under 128 bytes: the length is one byte
        pos += 1
    else:
        n, pos = _size(data, pos)
    end = pos + n
    if end > len(data):
        raise ValueError(_CUT)
    return data[pos:end].decode("utf-8", "replace"), end


_read_layout = layout_reader(RUN_EVENT_LAYOUT)


def decode_run_event(detail: str) -> dict[str, Any]:
    """Pure: one ``run_events.detail`` (base64, as ``RUN_EVENTS_SQL`` reads it) as the event's
    fields; ValueError if it is not a layout this reader knows."""
    data = base64.b64decode(detail, validate=True)
    if not data:
        raise ValueError("run_events.detail is empty")
    version = data[0]
    if version < 1:
        raise ValueError(f"run_events.detail has layout {version}, which no writer writes")
    try:
        ev, pos = _read_layout(data, 1)
    except (IndexError, struct.error) as exc:
        raise ValueError(_CUT) from exc
    if version == 1 and pos != len(data):
        raise ValueError("run_events.detail holds bytes after its last field")
    return ev


def run_event_rows(details: Iterable[str]) -> list[dict[str, Any]]:
    """Pure: the run's events, one per event_id, in order (seq, then time).

    An event delivered twice is stored twice until a merge; the copy kept is the one inserted
    last, as the merge (ReplacingMergeTree(inserted_at)) and ``events FINAL`` keep."""
    latest: dict[str, dict[str, Any]] = {}
    for detail in details:
        ev = decode_run_event(detail)
        seen = latest.get(ev["event_id"])
        if seen is None or ev["inserted_ms"] >= seen["inserted_ms"]:
            latest[ev["event_id"]] = ev
    return sorted(latest.values(), key=lambda e: (e["seq"], e["ts_us"], e["event_id"]))


def header_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: the run's header fields from its events, by ``runs_mv``'s rules (0002_runs.sql):
    identity from the last event, the rest the max over events (a live run's status is '')."""
    last = events[-1]
    return {
        "agent_id": last["agent_id"], "agent_version": last["agent_version"],
        "environment": last["environment"],
        "session_id": max(e["session_id"] for e in events),
        "parent_run_id": max(e["parent_run_id"] for e in events),
        "entrypoint": max(e["name"] if e["kind"] == "RUN_START" else "" for e in events),
        "status": max(e["run_status"] for e in events),
        "outcome": max(e["outcome"] for e in events),
        "duration_ms": max(e["duration_ms"] for e in events),
    }


def run_events(db: RowReader, tenant: str, run_id: str) -> list[dict[str, Any]]:
    """The run's events in order, deduplicated, each with its header fields: one statement,
    ahead of the sink's inserts (``read_priority``). [] for a run the tenant does not have."""
    rows = read_first(db, RUN_EVENTS_SQL, {"tenant": tenant, "run_id": run_id})
    try:
        return run_event_rows(r["detail"] for r in rows)
    except (ValueError, TypeError, KeyError) as exc:  # a layout or field this reader cannot read
        raise ApiError(500, "stored_event_unreadable",
                       "a stored event of this run is not in a layout this server reads") from exc


def run_header(run_id: str, events: list[dict[str, Any]], head: dict[str, Any]) -> dict[str, Any]:
    """Pure: the run's row, shaped like ``get_run``'s, from its events and ``head`` (the
    ``HEADER`` fields: ``header_of(events)``, or a ``runs`` row).

    The additive totals are counted from the events themselves, by the same rules as
    ``runs_mv`` (0002_runs.sql); the events are deduplicated, so a redelivery counts once."""
    # Key order as get_run's (RUN_COLUMNS): identity, time span, outcome, totals.
    out: dict[str, Any] = {"run_id": run_id, **{k: head[k] for k in HEADER[:6]},
                           "started_us": min(e["ts_us"] for e in events),
                           "last_us": max(e["ts_us"] for e in events),
                           **{k: head[k] for k in HEADER[6:]}}
    steps = [e for e in events if e["kind"] == "STEP"]
    out.update(
        event_count=len(events), step_count=len(steps),
        llm_calls=sum(e["step_kind"] == "LLM" for e in steps),
        tool_calls=sum(e["step_kind"] == "TOOL" for e in steps),
        retry_count=sum(e["attempt"] > 1 for e in steps),
        failure_count=sum(e["kind"] == "FAILURE" for e in events),
        input_tokens=sum(e["input_tokens"] for e in events),
        output_tokens=sum(e["output_tokens"] for e in events),
        cost_usd=sum(e["cost_usd"] for e in events),
    )
    return shape_run(out)


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(row.get("payload") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {"value": data}


def _step_ref(row: dict[str, Any]) -> str:
    # The sink may map a failure's/decision's linked step into step_id or leave it in payload.
    ref = row.get("step_id") or _payload(row).get("step_id") or ""
    return ref if isinstance(ref, str) else str(ref)


def _step(row: dict[str, Any]) -> dict[str, Any]:
    llm = None
    if row["step_kind"] == "LLM" or row["request_model"]:
        llm = {k: row[k] for k in ("provider", "request_model", "input_tokens", "output_tokens",
                                   "cache_read_tokens", "cache_write_tokens", "cost_usd")}
    tool = {"tool_name": row["tool_name"], "args_digest": row["args_digest"]} if row["tool_name"] else None
    return {
        "seq": row["seq"], "event_id": row["event_id"], "step_id": row["step_id"],
        "step_kind": row["step_kind"], "name": row["name"], "status": row["status"],
        "parent_step_id": row["parent_step_id"], "started_us": row["started_us"],
        "ts_us": row["ts_us"], "latency_ms": shown_ms(row["latency_ms"]), "attempt": row["attempt"],
        "retry_of": row["retry_of"], "llm": llm, "tool": tool, "details": _payload(row),
        "attributes": dict(row["attributes"] or {}),
    }


def run_detail(db: RowReader, tenant: str, run_id: str) -> dict[str, Any] | None:
    """GET /v1/runs/{id}: the run and its events, or None if the tenant has no such run."""
    events = run_events(db, tenant, run_id)
    return detail_of(run_id, events, header_of(events)) if events else None


def detail_of(run_id: str, events: list[dict[str, Any]], head: dict[str, Any]) -> dict[str, Any]:
    """Pure: the run detail of ``events`` (in order, one per event) under ``head``."""
    run = run_header(run_id, events, head)
    steps, failures, decisions, signals, other = [], [], [], [], []
    for r in events:
        base = {"seq": r["seq"], "event_id": r["event_id"], "ts_us": r["ts_us"]}
        kind = r["kind"]
        if kind == "STEP":
            steps.append(_step(r))
        elif kind == "FAILURE":
            failures.append({**base, "failure_type": r["failure_type"],
                             "failure_code": r["failure_code"], "step_id": _step_ref(r),
                             "details": _payload(r)})
        elif kind == "DECISION":
            decisions.append({**base, "decision_type": r["decision_type"],
                              "selected": r["selected"], "candidates": list(r["candidates"]),
                              "reason_code": r["reason_code"], "confidence": r["confidence"],
                              "step_id": _step_ref(r)})
        elif kind == "QUALITY_SIGNAL":
            p = _payload(r)
            weight = p.get("weight")
            signals.append({**base, "signal_type": r["signal_type"],
                            "signal_code": r["signal_code"], "value": r["signal_value"],
                            "weight": weight if isinstance(weight, (int, float)) else None,
                            "step_id": _step_ref(r)})
        else:
            other.append({**base, "kind": kind, "details": _payload(r)})
    return {"run": run, "steps": steps, "failures": failures, "decisions": decisions,
            "signals": signals, "other_events": other}
