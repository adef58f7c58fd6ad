"""bench/e2e.py's OTLP load: traces posted to the gateway's /v1/traces during the throughput
phase (``--otlp-traces``), as an OpenTelemetry exporter would, under tenant ``e2e-otlp``."""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from e2e import Bench

OTLP_TENANT = "e2e-otlp"


def otlp_traces(b: "Bench", traces: int, spans: int, per_request: int = 20) -> dict:
    """``traces`` OTLP/JSON traces (a root span and ``spans - 1`` children: one RUN_START, one
    RUN_END and a STEP per child) posted to the gateway's /v1/traces; every 2xx counts as
    accepted (the gateway answers only after Kafka acked). Returns the events expected."""
    key = b.write_key
    url = f"{b.stack.gateway_url}/v1/traces"
    accepted = rejected = 0
    client = httpx.Client(timeout=60.0)
    t0 = time.time_ns()
    try:
        for start in range(0, traces, per_request):
            out = []
            for n in range(start, min(traces, start + per_request)):
                tid, t = os.urandom(16).hex(), t0 + n * 1_000_000
                root = os.urandom(8).hex()
                out.append({"traceId": tid, "spanId": root, "name": "invoke_agent bench", "kind": 1,
                            "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 900_000)})
                for c in range(spans - 1):
                    out.append({"traceId": tid, "spanId": os.urandom(8).hex(), "parentSpanId": root,
                                "name": "chat gpt-4o", "kind": 3,
                                "startTimeUnixNano": str(t + c * 1000 + 1),
                                "endTimeUnixNano": str(t + c * 1000 + 500),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(100 + c)}}]})
            body = {"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "otlp-bench-agent"}}]},
                "scopeSpans": [{"scope": {"name": "bench"}, "spans": out}]}]}
            r = client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
            if r.status_code // 100 == 2:
                accepted += len(out) // spans
                rejected += int((r.json().get("partialSuccess") or {}).get("rejectedSpans") or 0)
            else:
                print(f"OTLP request refused: {r.status_code} {r.text[:200]}", flush=True)
    finally:
        client.close()
    return {"traces_accepted": accepted, "spans_rejected": rejected,
            "events_expected": accepted * (spans + 1)}
