"""Synthetic Event records for the bench and the tests (the producer SDK is another part)."""
from __future__ import annotations

import time
import uuid
from typing import Any


def event(tenant: str, run_id: str, seq: int, kind: str, payload: dict[str, Any], *,
          agent_id: str = "agent", agent_version: str = "1.0", attributes: dict[str, str] | None = None,
          ts_us: int | None = None) -> dict[str, Any]:
    now = ts_us or int(time.time() * 1_000_000)
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": tenant, "agent_id": agent_id,
        "agent_version": agent_version, "environment": "test", "run_id": run_id, "seq": seq,
        "ts_us": now, "emitted_us": now, "sdk_version": "synthetic", "attributes": attributes or {},
        "kind": kind, "payload": payload,
    }


def run_start(tenant: str, run_id: str, **kw: Any) -> dict[str, Any]:
    return event(tenant, run_id, 0, "RUN_START", {"entrypoint": "main"}, **kw)


def step(tenant: str, run_id: str, seq: int, name: str = "search", step_kind: str = "TOOL",
         args_digest: str | None = "d0", status: str = "OK", latency_ms: float = 12.0, attempt: int = 1,
         llm: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    # the step ends at its event's time and started latency_ms before it, so a waterfall built
    # from these never puts a step outside its run
    ends = kw.get("ts_us") or int(time.time() * 1_000_000)
    payload: dict[str, Any] = {"step_id": f"{run_id}-s{seq}", "step_kind": step_kind, "name": name,
                               "status": status, "started_us": ends - int(latency_ms * 1000),
                               "latency_ms": latency_ms, "attempt": attempt}
    if step_kind == "TOOL":
        payload["tool"] = {"tool_name": name, "args_digest": args_digest}
    if llm is not None:
        payload["llm"] = {"provider": "openai", "request_model": "gpt-4o", **llm}
    return event(tenant, run_id, seq, "STEP", payload, **kw)


def llm_step(tenant: str, run_id: str, seq: int, cost_usd: float, tokens: int = 1000, **kw: Any) -> dict[str, Any]:
    return step(tenant, run_id, seq, name="chat", step_kind="LLM", args_digest=None,
                llm={"input_tokens": tokens // 2, "output_tokens": tokens - tokens // 2, "cost_usd": cost_usd}, **kw)


def run_end(tenant: str, run_id: str, seq: int, status: str = "SUCCESS", duration_ms: float = 1000.0,
            step_count: int = 3, cost_usd: float = 0.01, **kw: Any) -> dict[str, Any]:
    ends = kw.get("ts_us") or int(time.time() * 1_000_000)
    return event(tenant, run_id, seq, "RUN_END", {
        "status": status, "outcome": "completed" if status == "SUCCESS" else "error",
        "started_us": ends - int(duration_ms * 1000), "duration_ms": duration_ms,
        "step_count": step_count, "cost_usd": cost_usd}, **kw)


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:12]
