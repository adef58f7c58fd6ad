"""Builds ClickHouse rows of synthetic runs, inserted straight into the contract tables.

The tables are the contract between the sink and the API, so the API tests write rows the way
the sink would (one row per event into ``events``; ``runs`` fills through its MV) without
importing sink code.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MIGRATIONS = Path(__file__).resolve().parents[3] / "sink" / "migrations"

EVENT_COLS = [
    "tenant_id", "ts", "event_id", "agent_id", "agent_version", "environment", "run_id",
    "session_id", "parent_run_id", "parent_step_id", "seq", "kind", "step_id", "step_kind", "name",
    "status", "started_ts", "latency_ms", "attempt", "retry_of", "provider", "request_model",
    "input_tokens", "output_tokens", "cost_usd", "tool_name", "args_digest", "failure_type",
    "failure_code", "decision_type", "selected", "candidates", "reason_code", "confidence",
    "signal_type", "signal_code", "signal_value", "run_status", "outcome", "duration_ms",
    "payload", "attributes",
]

ALERT_COLS = ["tenant_id", "detected_ts", "alert_id", "alert_type", "severity", "agent_id",
              "agent_version", "run_id", "title", "evidence"]


def apply_migrations(client) -> None:
    """Executes every migration file's statements (split on lines holding only ';')."""
    for f in sorted(MIGRATIONS.glob("*.sql")):
        text = f.read_text()
        for stmt in "\n".join(text.splitlines()).split("\n;\n"):
            body = "\n".join(ln for ln in stmt.splitlines() if not ln.strip().startswith("--")).strip()
            if body.rstrip(";").strip():
                # the sink's own migration runner (sink/storage.py) passes the same setting: the
                # Avro staging table's payload Variant has two same-shaped branches
                client.command(stmt.strip().rstrip(";"),
                               settings={"allow_suspicious_variant_types": 1})


def now_us() -> int:
    return int(time.time() * 1_000_000)


def dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc)


class RunBuilder:
    """Accumulates one run's events; ``rows()`` gives them as ``events`` rows."""

    def __init__(self, tenant: str, agent: str = "agent-a", version: str = "v1",
                 environment: str = "prod", run_id: str | None = None, start_us: int | None = None,
                 parent_run_id: str = "", session_id: str = "") -> None:
        self.tenant, self.agent, self.version, self.environment = tenant, agent, version, environment
        self.run_id = run_id or "run-" + uuid.uuid4().hex[:12]
        self.parent_run_id, self.session_id = parent_run_id, session_id
        start_us = start_us if start_us is not None else now_us() - 3_600_000_000
        self.t = start_us
        self.start_us = start_us
        self.seq = 0
        self._rows: list[dict[str, Any]] = []
        self.add("RUN_START", name="main", payload={"entrypoint": "main"})

    def add(self, kind: str, advance_ms: float = 0.0, **cols: Any) -> dict[str, Any]:
        self.t += int(advance_ms * 1000)
        payload = cols.pop("payload", {})
        row = {"tenant_id": self.tenant, "ts": dt(self.t), "event_id": uuid.uuid4().hex,
               "agent_id": self.agent, "agent_version": self.version,
               "environment": self.environment, "run_id": self.run_id,
               "session_id": self.session_id, "parent_run_id": self.parent_run_id,
               "seq": self.seq, "kind": kind, "payload": json.dumps(payload), "attributes": {}}
        row.update(cols)
        if "started_ts" not in row:
            row["started_ts"] = row["ts"]
        self.seq += 1
        self._rows.append(row)
        return row

    def step(self, kind: str, name: str, latency_ms: float, status: str = "OK", attempt: int = 1,
             retry_of: str = "", parent_step_id: str = "", step_id: str | None = None,
             **cols: Any) -> str:
        sid = step_id or "s-" + uuid.uuid4().hex[:8]
        started = self.t
        self.t += int(latency_ms * 1000)
        self.add("STEP", step_id=sid, step_kind=kind, name=name, status=status,
                 started_ts=dt(started), latency_ms=latency_ms, attempt=attempt,
                 retry_of=retry_of, parent_step_id=parent_step_id, **cols)
        return sid

    def llm(self, name: str, latency_ms: float, input_tokens: int, output_tokens: int,
            cost: float, model: str = "gpt-x", **kw: Any) -> str:
        return self.step("LLM", name, latency_ms, provider="openai", request_model=model,
                         input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost, **kw)

    def tool(self, tool_name: str, latency_ms: float, **kw: Any) -> str:
        return self.step("TOOL", tool_name, latency_ms, tool_name=tool_name,
                         args_digest="d" * 16, **kw)

    def failure(self, ftype: str, code: str, step_id: str = "") -> None:
        self.add("FAILURE", failure_type=ftype, failure_code=code, step_id=step_id,
                 payload={"message": None, "retryable": False})

    def decision(self, dtype: str, selected: str, candidates: list[str], reason: str,
                 confidence: float | None = None) -> None:
        self.add("DECISION", decision_type=dtype, selected=selected, candidates=candidates,
                 reason_code=reason, confidence=confidence)

    def signal(self, stype: str, code: str, value: bool, weight: float | None = None) -> None:
        self.add("QUALITY_SIGNAL", signal_type=stype, signal_code=code, signal_value=value,
                 payload={"weight": weight})

    def end(self, status: str = "SUCCESS", outcome: str = "completed") -> "RunBuilder":
        duration = (self.t - self.start_us) / 1000.0
        self.add("RUN_END", run_status=status, outcome=outcome, duration_ms=duration,
                 payload={"started_us": self.start_us})
        return self

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)


def insert_runs(client, runs: list[RunBuilder]) -> None:
    rows = [r for run in runs for r in run.rows()]
    if not rows:
        return
    data = [[row.get(c, _DEFAULTS.get(c)) for c in EVENT_COLS] for row in rows]
    client.insert("events", data, column_names=EVENT_COLS)


_DEFAULTS: dict[str, Any] = {
    "session_id": "", "parent_run_id": "", "parent_step_id": "", "step_id": "", "step_kind": "",
    "name": "", "status": "", "latency_ms": 0.0, "attempt": 0, "retry_of": "", "provider": "",
    "request_model": "", "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "tool_name": "",
    "args_digest": "", "failure_type": "", "failure_code": "", "decision_type": "", "selected": "",
    "candidates": [], "reason_code": "", "confidence": None, "signal_type": "", "signal_code": "",
    "signal_value": None, "run_status": "", "outcome": "", "duration_ms": 0.0, "payload": "{}",
    "attributes": {},
}


def insert_alerts(client, tenant: str, alerts: list[dict[str, Any]]) -> None:
    data = []
    for a in alerts:
        row = {"tenant_id": tenant, "detected_ts": dt(a.get("detected_us") or now_us()),
               "alert_id": a.get("alert_id") or uuid.uuid4().hex, "alert_type": "loop",
               "severity": "WARNING", "agent_id": "", "agent_version": "", "run_id": "",
               "title": "an alert", "evidence": {}}
        row.update({k: v for k, v in a.items() if k in row and k != "detected_ts"})
        data.append([row[c] for c in ALERT_COLS])
    client.insert("alerts", data, column_names=ALERT_COLS)
