"""The contract: every payload the Event schema admits, built from the schema itself (not from
hand-written fixtures), goes through every codec, the redaction and detector chain, and every
row mapper, and comes out whole.

Each payload branch is tried twice: once with every optional field null and once with every
optional field filled, so a new field in the .avsc that one part forgot shows up here first.
"""
from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import orjson
import pytest

from agentstream.api.gateway.validation import EventValidator
from agentstream.producer.wire import (CAPTURE_INDEX, STEP_FIELDS, STEP_KIND_INDEX, STEP_STATUS_INDEX,
                                       RunWire)
from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
from agentstream.schemas.catalog import load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.schemas.compatibility import example_record
from agentstream.schemas.digests import end_user_digest
from agentstream.sink.containers import MARK, ContainerBuilder
from agentstream.sink.rows import ALERT_COLUMNS, EVENT_COLUMNS, alert_row, event_row
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.redaction.engine import MAP_FIELDS, SKIP_FIELDS
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.summary_patch import SummaryPatcher

NOW = 1_760_000_000_000_000
SECRET = "AKIAIOSFODNN7EXAMPLE"
codec = Codec()
V1 = load_catalog().latest(EVENT)
SCHEMA = json.loads(V1.text)


def _named() -> dict[str, Any]:
    """Every named type in the schema, by short and full name (all union branches included)."""
    named: dict[str, Any] = {}

    def walk(t: Any, ns: str) -> None:
        if isinstance(t, list):
            for b in t:
                walk(b, ns)
        elif isinstance(t, dict):
            if t.get("type") in ("record", "enum", "fixed"):
                ns = t.get("namespace", ns)
                named[t["name"]] = named[f"{ns}.{t['name']}"] = t
            for f in t.get("fields", ()):
                walk(f["type"], ns)
            for key in ("items", "values"):
                if key in t:
                    walk(t[key], ns)

    walk(SCHEMA, SCHEMA.get("namespace", ""))
    return named


NAMED = _named()


def example_event(kind: str, filled: bool) -> dict[str, Any]:
    """A schema-generated event of ``kind``: optional fields null (branch 0) or filled (1)."""
    named = dict(NAMED)
    branch = 1 if filled else 0
    ev = example_record({**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] != "payload"]},
                        named, branch)
    ev.update(event_id=f"ev-{kind}-{branch}", tenant_id="acme", agent_id="agent", agent_version="1.0",
              environment="prod", run_id=f"run-{kind}-{branch}", seq=1, ts_us=NOW, emitted_us=NOW,
              sdk_version="contract", kind=kind, redaction=None)
    ev["payload"] = example_record(named[KIND_TO_BRANCH[kind]], named, branch)
    if kind == "FEEDBACK":  # a bounded label, not free text (schemas/feedback_values.py)
        ev["payload"].update(feedback_type="user_rating", value="positive")
    for record, name in (("llm", "request_digest"), ("tool", "args_digest"), ("approval", "action_digest")):
        if (ev["payload"].get(record) or {}).get(name):
            ev["payload"][record][name] = "9f" * 32  # a digest field holds a digest (hex)
    return ev


CASES = [(k, f) for k in KIND_TO_BRANCH for f in (False, True)]
IDS = [f"{k}-{'filled' if f else 'nulls'}" for k, f in CASES]


def _jsonable(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v))


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_codec_round_trips_every_payload(kind, filled):
    ev = example_event(kind, filled)
    data = codec.encode(EVENT, ev)
    assert data[0] == 0 and codec.schema_id(data) == V1.id
    name, back = codec.decode(data)
    assert name == EVENT and back == ev


def test_every_kind_and_optional_field_is_exercised():
    symbols = next(f for f in SCHEMA["fields"] if f["name"] == "kind")["type"]["symbols"]
    assert sorted(symbols) == sorted(KIND_TO_BRANCH)
    nulls, filled = example_event("STEP", False), example_event("STEP", True)
    assert nulls["payload"]["llm"] is None and filled["payload"]["llm"] is not None
    assert nulls["session_id"] is None and filled["session_id"] is not None


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_sdk_wire_encoder_gives_the_codecs_bytes(kind, filled):
    ev = example_event(kind, filled)
    w = RunWire(header=codec.encode(EVENT, ev)[:5], tenant_id=ev["tenant_id"], agent_id=ev["agent_id"],
                agent_version=ev["agent_version"], environment=ev["environment"], run_id=ev["run_id"],
                session_id=ev["session_id"], parent_run_id=ev["parent_run_id"],
                sdk_version=ev["sdk_version"], capture_mode=ev["capture_mode"],
                policy_version=ev["policy_version"], event_id_seed="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                end_user_id=ev["end_user_id"])
    assert ev["capture_mode"] in CAPTURE_INDEX
    p = ev["payload"]
    if kind == "STEP":
        p = tuple(STEP_KIND_INDEX[p[f]] if f == "step_kind" else STEP_STATUS_INDEX[p[f]] if f == "status"
                  else p[f] for f in STEP_FIELDS)
    attrs = {k: str(v) for k, v in ev["attributes"].items()}
    mine = w.encode(ev["seq"], ev["ts_us"], ev["emitted_us"], ev["parent_step_id"], attrs, kind, p)
    assert mine == codec.encode(EVENT, {**ev, "event_id": w.event_id(ev["seq"]), "attributes": attrs})


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_gateway_json_validation_accepts_every_payload_unchanged(kind, filled):
    ev = example_event(kind, filled)
    out, issues = EventValidator(end_user_key=b"contract-key").validate(_jsonable(ev), "acme")
    assert issues == []
    # the one field the gateway rewrites: an end user's id is stored as its keyed digest only
    digest = ev["end_user_id"] and end_user_digest(b"contract-key", ev["end_user_id"])
    assert codec.encode(EVENT, out) == codec.encode(EVENT, {**ev, "end_user_id": digest})


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_summary_patch_equals_a_re_encode(kind, filled):
    ev = example_event(kind, filled)
    patcher = SummaryPatcher(V1.text, V1.id)
    expect = codec.encode(EVENT, {**ev, "redaction": {"policy_version": "pv", "rule_counts": {}}})
    assert patcher.patch(codec.encode(EVENT, ev), "pv") == expect


class _Msg:
    def __init__(self, value: bytes) -> None:
        self._v = value

    def value(self) -> bytes:
        return self._v


def test_sink_avro_container_carries_every_payload():
    events = [example_event(k, f) for k, f in CASES]
    containers, rest = ContainerBuilder(codec.resolver.schema_for_id).split(
        [_Msg(codec.encode(EVENT, e)) for e in events], lambda tenant: 9)
    assert rest == [] and len(containers) == 1
    got = list(fastavro.reader(io.BytesIO(containers[0].data())))
    assert [{k: v for k, v in r.items() if not k.startswith("sink_")} for r in got] == events
    assert all(r["sink_retention_days"] == 9 and r["sink_mark"] == MARK for r in got)


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_row_mapper_maps_every_payload(kind, filled):
    ev = example_event(kind, filled)
    row = dict(zip(EVENT_COLUMNS, event_row(codec.decode_as(EVENT, codec.encode(EVENT, ev)), retention_days=5)))
    assert len(row) == len(EVENT_COLUMNS)
    assert (row["event_id"], row["tenant_id"], row["run_id"], row["kind"], row["retention_days"]) == \
        (ev["event_id"], "acme", ev["run_id"], kind, 5)
    json.loads(row["payload"])  # what has no column of its own stays as valid JSON


def _plant(v: Any, t: Any, named: dict[str, Any]) -> Any:
    """Every string the schema types as free ``string`` (not enums) gets a secret appended."""
    if isinstance(t, str) and t in named:
        t = named[t]
    if isinstance(t, list):
        if v is None:
            return None
        branch = next(b for b in t if b != "null")
        return _plant(v, branch, named)
    kind = t if isinstance(t, str) else t["type"]
    if kind == "record":
        return {f["name"]: _plant(v[f["name"]], f["type"], named) for f in t["fields"]}
    if kind == "array":
        return [_plant(x, t["items"], named) for x in v]
    if kind == "map":
        return {k: _plant(x, t["values"], named) for k, x in v.items()}
    return f"{v} {SECRET}" if kind == "string" else v


def _chain() -> Chain:
    book = PolicyBook()
    book.set(TenantPolicy("acme", budgets={"run_max_steps": 1, "run_max_cost_usd": 0.5, "hard_limit": True}))
    return Chain(ProcessorsSettings(topic_prefix="c."), codec, Redactor(b"contract-key"), book, "c.fleet")


@pytest.mark.parametrize("kind,filled", CASES, ids=IDS)
def test_chain_redacts_detects_and_emits_every_payload(kind, filled):
    ev = example_event(kind, filled)
    planted = copy.deepcopy(ev)
    planted["payload"] = _plant(ev["payload"], NAMED[KIND_TO_BRANCH[kind]], NAMED)
    planted["attributes"] = {k: f"{v} {SECRET}" for k, v in ev["attributes"].items()}
    chain, state = _chain(), {}
    out = chain.process([InRecord("c.raw", 0, 0, ev["run_id"].encode(), codec.encode(EVENT, e))
                         for e in (ev, {**planted, "event_id": "planted", "seq": 2})],
                        lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    topics = [o.topic for o in out]
    assert "c.dlq" not in topics
    for o in out:
        assert SECRET.encode() not in (o.value or b""), f"secret reached {o.topic}"
    emitted = [codec.decode_as(EVENT, o.value) for o in out if o.topic == "c.events"]
    # an event either passes (redacted, with a summary) or is quarantined whole; none vanish
    assert len(emitted) + topics.count("c.quarantine") == 2
    assert all(e["redaction"] is not None and e["kind"] == kind for e in emitted)
    for o in out:
        if o.topic == "c.alerts":
            al = codec.decode_as(ALERT, o.value)
            assert al["tenant_id"] == "acme" and len(alert_row(al)) == len(ALERT_COLUMNS)
        elif o.topic == "c.commands":
            assert codec.decode_as(COMMAND, o.value)["run_id"] == ev["run_id"]
    fleet = [InRecord("c.fleet", 0, i, o.key, o.value) for i, o in enumerate(out) if o.topic == "c.fleet"]
    fleet_state: dict = {}
    for o in chain.process_fleet(fleet, lambda p, k: fleet_state.get(k),
                                 lambda p, k, v: fleet_state.__setitem__(k, v)):
        assert o.topic != "c.dlq" and SECRET.encode() not in (o.value or b"")


def test_redaction_skips_only_fields_that_are_enums_everywhere():
    types: dict[str, set[str]] = {}
    for t in NAMED.values():
        for f in t.get("fields", ()):
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            for b in branches:
                if b != "null":
                    b = NAMED.get(b, b) if isinstance(b, str) else b
                    types.setdefault(f["name"], set()).add(b if isinstance(b, str) else b["type"])
    enum_only = {name for name, kinds in types.items() if kinds == {"enum"}}
    assert SKIP_FIELDS - {"redaction"} == enum_only
    assert MAP_FIELDS == {n for n, kinds in types.items() if "map" in kinds} - {"rule_counts"}


@pytest.mark.parametrize("key", sorted(SKIP_FIELDS))
def test_an_attribute_named_like_an_enum_field_is_still_redacted(key):
    ev = example_event("STEP", False)
    ev["attributes"] = {key: f"token {SECRET}"}
    out = Redactor(b"k").redact_event(codec.decode_as(EVENT, codec.encode(EVENT, ev)), {}, "p")
    assert SECRET not in str(out) and out["redaction"]["rule_counts"] == {"aws_access_key_id": 1}
