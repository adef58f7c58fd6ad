"""Policy v2 (id 6): a v1 record (as the demo, older CLIs and APIs wrote it) reads as v2 with the
new fields at their defaults, and the processors' policy reader gets the same defaults."""
from __future__ import annotations

import io
import json
import struct

import fastavro

from agentstream.schemas import POLICY, Codec, load_catalog
from agentstream.stream_processors.policies import GOVERNANCE_DEFAULTS, TenantPolicy


def test_a_v1_policy_record_reads_as_v2_with_defaults():
    cat = load_catalog()
    v1 = next(v for v in cat.versions(POLICY) if v.version == 1)
    assert cat.latest(POLICY).id == 6 and v1.id == 4
    rec = {"tenant_id": "t", "version": "old", "updated_us": 5, "capture_mode": "REDACTED",
           "redaction_actions": {"email": "hash"}, "retention_days": 7,
           "loops": {"max_repeats": 9, "max_ping_pong": 4, "max_no_progress": 3, "max_retries": 5,
                     "stop_on_loop": False},
           "budgets": {"run_max_steps": 50, "run_max_tokens": None, "run_max_cost_usd": 1.5, "run_max_wall_s": None,
                       "tenant_usd_per_hour": None, "tenant_usd_per_day": None, "agent_usd_per_day": None,
                       "hard_limit": True}}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, rec)
    got = Codec().decode_as(POLICY, struct.pack(">bI", 0, v1.id) + buf.getvalue())
    assert got["loops"]["max_repeats"] == 9 and got["loops"]["repeat_window"] == 24
    assert got["budgets"]["warn_fraction"] == 0.8 and got["budgets"]["hard_limit"] is True
    schema_defaults = {f["name"]: f["default"] for f in json.loads(cat.latest(POLICY).text)["fields"][-1]["type"]["fields"]}
    assert schema_defaults == GOVERNANCE_DEFAULTS
    # fastavro gives a missing record field its literal default ({}), not the record with its own
    # field defaults: every reader fills them (TenantPolicy here, pydantic in the API)
    assert got["governance"] in ({}, GOVERNANCE_DEFAULTS)
    p = TenantPolicy.from_record(got)
    assert p.loops["repeat_window"] == 24 and p.governance["stop_on"] == GOVERNANCE_DEFAULTS["stop_on"]


def test_writers_write_v2():
    data = Codec().encode(POLICY, {"tenant_id": "t"})
    assert struct.unpack(">I", data[1:5])[0] == 6
