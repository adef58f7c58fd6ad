"""The hand-specialised encoder must write exactly what fastavro writes for Event v2 (the
version it frames its records with), with and without v2's additions."""
from __future__ import annotations

import io
import random
import struct

import fastavro
import pytest

from agentstream.producer.wire import (STEP_KINDS, STEP_STATUSES, RunWire, enc_long,
                                       step_tuple_to_dict)
from agentstream.schemas import EVENT, Codec, load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH

V2 = next(v for v in load_catalog().versions(EVENT) if v.version == 2)
HEADER = struct.pack(">bI", 0, V2.id)
END_USER = "9f" * 32  # a keyed digest, as the tracer passes it


def _wire(session=None, parent=None, mode="METADATA_ONLY"):
    return RunWire(header=HEADER, tenant_id="acme", agent_id="agent-ü", agent_version="1.0",
                   environment="prod", run_id="11111111-2222-4333-8444-555555555555",
                   session_id=session, parent_run_id=parent, sdk_version="py/0.1",
                   capture_mode=mode, policy_version="p7",
                   event_id_seed="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                   end_user_id=END_USER if session else None)


def _fastavro(wire, seq, ts, psid, attrs, kind, payload, session, parent, mode):
    rec = {"event_id": wire.event_id(seq), "tenant_id": "acme", "agent_id": "agent-ü",
           "agent_version": "1.0", "environment": "prod",
           "run_id": "11111111-2222-4333-8444-555555555555", "session_id": session,
           "parent_run_id": parent, "parent_step_id": psid, "seq": seq, "ts_us": ts,
           "emitted_us": ts, "sdk_version": "py/0.1", "capture_mode": mode,
           "policy_version": "p7", "attributes": attrs or {}, "redaction": None, "kind": kind,
           "payload": (KIND_TO_BRANCH[kind], payload),
           "end_user_id": END_USER if session else None}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, V2.parsed, rec)
    return HEADER + buf.getvalue()


LLM = {"provider": "openai", "operation": "chat", "request_model": "gpt-4o",
       "response_model": "gpt-4o-2024", "input_tokens": 123456, "output_tokens": 7,
       "cache_read_tokens": 0, "cache_write_tokens": 99, "cost_usd": 0.0123,
       "finish_reasons": ["stop"], "tool_calls": ["a", "b"], "request_digest": "c0" * 32}
PAYLOADS = [
    ("RUN_START", {"entrypoint": "triage", "role": None, "sampled": True}),
    ("RUN_START", {"entrypoint": "t", "role": "planner", "sampled": False}),
    ("RUN_END", {"status": "PARTIAL", "outcome": "budget_stopped", "started_us": 1760000000000000,
                 "duration_ms": 12.5, "step_count": 4000, "llm_calls": 3, "input_tokens": 10**7,
                 "output_tokens": 0, "cost_usd": 1.25}),
    ("FAILURE", {"failure_type": "BUDGET", "failure_code": "steps", "step_id": "s.1",
                 "message": None, "retryable": True}),
    ("DECISION", {"decision_type": "tool", "selected": "api", "candidates": ["api", "cache"],
                  "reason_code": "fresh", "confidence": 0.85, "step_id": None}),
    ("DECISION", {"decision_type": "tool", "selected": "api", "candidates": [],
                  "reason_code": "fresh", "confidence": None, "step_id": "x"}),
    ("QUALITY_SIGNAL", {"signal_type": "schema", "signal_code": "ok", "value": False,
                        "weight": 2.0, "step_id": None}),
    ("FEEDBACK", {"interaction_id": "i1", "feedback_type": "user_rating", "value": "negative",
                  "source": "sdk"}),
    ("COMMAND_ACK", {"command_id": "c1", "command_type": "STOP", "status": "applied",
                     "detail": "stopped"}),
]
STEPS = [
    ("s.1", 3, "search", 0, 1760000000000000, 1.5, 1, None, None, None, None, None, None, None),
    ("s.2", 3, "chat", 1, 1760000000000001, 0.0, 2, "s.1", LLM,
     {"tool_name": "t", "call_id": None, "args_digest": "ab" * 32},
     {"to_agent_id": "b", "to_run_id": "r2", "role": None},
     {"action_digest": "d", "decision": "approved", "approval_latency_ms": 18420.0},
     {"source": "a", "target": "b", "reason": "down", "preserves_safety_posture": True},
     {"preview": "hi [EMAIL]", "reference": None}),
    # an LLM step without v2's request_digest (what v1-era callers build)
    ("s.3", 3, "chat", 0, 1760000000000002, 3.25, 1, None,
     {k: v for k, v in LLM.items() if k != "request_digest"}, None, None, None, None, None),
]


@pytest.mark.parametrize("session,parent,mode", [(None, None, "METADATA_ONLY"),
                                                  ("sess", "parent-run", "REDACTED")])
@pytest.mark.parametrize("kind,payload", PAYLOADS + [("STEP", s) for s in STEPS])
def test_bytes_identical_to_fastavro(kind, payload, session, parent, mode):
    w = _wire(session, parent, mode)
    attrs = {"k": "v", "ünï": "ç" * 100}
    for seq, ts, psid, a in [(0, 1760000000123456, None, None), (4097, 5, "s.9", attrs),
                             (70000, 2**62, None, attrs)]:
        mine = w.encode(seq, ts, ts, psid, a, kind, payload)
        ref_payload = step_tuple_to_dict(payload) if kind == "STEP" else payload
        assert mine == _fastavro(w, seq, ts, psid, a, kind, ref_payload, session, parent, mode)
        name, rec = Codec().decode(mine)
        assert name == EVENT and rec["seq"] == seq and rec["kind"] == kind


def test_long_encoding_matches_avro_for_edge_values():
    rng = random.Random(7)
    values = [0, 1, -1, 63, 64, -64, -65, 4095, 4096, 2**31, -2**31, 2**49, 2**55, 2**56,
              2**62, 2**63 - 1, -2**63] + [rng.randrange(-2**63, 2**63) for _ in range(500)]
    # the table path for µs timestamps (zigzag in [2**49, 2**56)), edges and today's range
    values += [2**48, 2**48 - 1, 2**55 - 1, -2**48, -2**55, 1760000000000000 + 2**27,
               1760000000000000 + 2**27 - 1] + [rng.randrange(2**48, 2**55) for _ in range(2000)]
    for v in values:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, "long", v)
        assert enc_long(v) == buf.getvalue(), v


def test_enum_tables_follow_schema_order():
    step = next(t for t in V2.parsed["fields"] if t["name"] == "payload")["type"]
    step_rec = next(b for b in step if b["name"].endswith(".Step"))
    fields = {f["name"]: f["type"] for f in step_rec["fields"]}
    assert tuple(fields["step_kind"]["symbols"]) == STEP_KINDS
    assert tuple(fields["status"]["symbols"]) == STEP_STATUSES
