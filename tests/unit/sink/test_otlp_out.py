"""The events → OTLP/JSON mapping (sink/otlp_out.py), broadly: every event kind, ids stable."""
from __future__ import annotations

import json
import random

from agentstream.sink.otlp_out import event_span, export_request, root_span_id, span_id, trace_id

KINDS = ["RUN_START", "STEP", "FAILURE", "DECISION", "QUALITY_SIGNAL", "FEEDBACK", "COMMAND_ACK", "RUN_END"]


def _event(rnd, kind, tenant="t", run="r"):
    payload = {
        "RUN_START": {"entrypoint": "main"},
        "STEP": {"step_id": f"s{rnd.randint(0, 5)}", "step_kind": rnd.choice(["LLM", "TOOL", "PLAN", "CUSTOM"]),
                 "name": "n", "status": rnd.choice(["OK", "ERROR"]), "started_us": 1_000,
                 "latency_ms": rnd.uniform(0, 50), "attempt": 1,
                 "llm": rnd.choice([None, {"provider": "p", "request_model": "m", "input_tokens": 3,
                                           "output_tokens": 4, "finish_reasons": []}]),
                 "tool": rnd.choice([None, {"tool_name": "x", "call_id": None}])},
        "FAILURE": {"failure_type": "TOOL", "failure_code": "c", "step_id": rnd.choice([None, "s1"])},
        "DECISION": {"decision_type": "d", "selected": "a", "reason_code": "r", "confidence": None},
        "QUALITY_SIGNAL": {"signal_type": "q", "signal_code": "c", "value": True, "weight": 0.5},
        "FEEDBACK": {"feedback_type": "thumbs", "source": "user", "interaction_id": "i", "value": "up"},
        "COMMAND_ACK": {"command_type": "STOP", "status": "APPLIED", "command_id": "c"},
        "RUN_END": {"status": rnd.choice(["SUCCESS", "FAILURE"]), "started_us": 1_000, "duration_ms": 9.0},
    }[kind]
    return {"tenant_id": tenant, "agent_id": "a", "agent_version": "1", "environment": "e", "run_id": run,
            "event_id": f"e{rnd.random()}", "seq": 0, "ts_us": 2_000, "kind": kind,
            "session_id": None, "parent_step_id": rnd.choice([None, "s0"]), "attributes": {"k": "v"},
            "payload": (kind, payload) if rnd.random() < 0.5 else payload}


def test_every_kind_maps_to_a_valid_span_or_none():
    rnd = random.Random(7)
    for _ in range(300):
        kind = rnd.choice(KINDS)
        ev = _event(rnd, kind)
        span = event_span(ev)
        if kind == "RUN_START":
            assert span is None
            continue
        assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
        assert span["traceId"] == trace_id("t", "r")
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        if kind == "RUN_END":
            assert span["spanId"] == root_span_id("t", "r") and "parentSpanId" not in span
        else:
            assert span["parentSpanId"] in {root_span_id("t", "r"), span_id("t", "r", "s0"), span_id("t", "r", "s1")}
        json.dumps(span)  # JSON-serialisable as OTLP/JSON requires
        for a in span["attributes"]:
            (vtype, v), = a["value"].items()
            assert vtype in ("stringValue", "intValue", "doubleValue", "boolValue", "arrayValue")
            assert not (vtype == "intValue" and not isinstance(v, str))  # 64-bit ints as strings


def test_ids_are_stable_and_tenant_scoped():
    assert trace_id("t1", "r") != trace_id("t2", "r")
    assert span_id("t", "r", "s") == span_id("t", "r", "s") != span_id("t", "r2", "s")


def test_one_resource_per_agent_identity():
    rnd = random.Random(3)
    evs = [_event(rnd, "RUN_END", tenant=t, run=f"r{i}") for i, t in enumerate(["a", "a", "b"])]
    body, n = export_request(evs)
    assert n == 3 and len(body["resourceSpans"]) == 2
