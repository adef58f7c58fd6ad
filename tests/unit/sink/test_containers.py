"""Avro object containers built from framed records without decoding them (pure, no ClickHouse)."""
from __future__ import annotations

import io

import fastavro
import pytest

from agentstream.schemas import ALERT, EVENT, Codec
from agentstream.schemas.catalog import load_catalog
from agentstream.sink.containers import (MARK, STAGED_SCHEMAS, ContainerBuilder, canonical_hash, read_long,
                                         rejected_data, second_string, zigzag)

NOW = 1_750_000_000_000_000


class Msg:
    def __init__(self, value):
        self._v = value

    def value(self):
        return self._v


def _event(i: int, tenant: str) -> dict:
    return dict(event_id=f"e{i}", tenant_id=tenant, agent_id="a", agent_version="1", environment="prod",
                run_id="r", seq=i, ts_us=NOW + i, emitted_us=NOW, sdk_version="0.1", kind="STEP",
                payload={"step_id": "s", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW,
                         "latency_ms": 1.5, "llm": {"provider": "p", "request_model": "m", "input_tokens": 3}})


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -(2**31), 2**62, -(2**63)])
def test_zigzag_round_trips_and_matches_avro(n):
    assert read_long(zigzag(n), 0) == (n, len(zigzag(n)))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "record", "name": "L", "fields": [{"name": "x", "type": "long"}]}, {"x": n})
    assert buf.getvalue() == zigzag(n)


def test_containers_are_valid_avro_files_with_retention_and_mark_appended():
    codec = Codec()
    days = {"t1": 7, "t2": 400}
    msgs = [Msg(codec.encode(EVENT, _event(i, f"t{1 + i % 2}"))) for i in range(5)]
    containers, rest = ContainerBuilder(codec.resolver.schema_for_id).split(msgs, days.__getitem__)
    assert rest == [] and len(containers) == 1 and containers[0].schema_id == 5
    assert containers[0].table == "events_avro_staging_v2"
    records = list(fastavro.reader(io.BytesIO(containers[0].data())))
    assert [r["seq"] for r in records] == list(range(5))
    assert [r["sink_retention_days"] for r in records] == [7, 400, 7, 400, 7]
    assert all(r["sink_mark"] == MARK for r in records)
    assert records[1]["payload"]["llm"]["input_tokens"] == 3


def test_bad_framing_unstaged_schemas_and_corrupt_bodies_are_left_for_python():
    codec = Codec()
    good = codec.encode(EVENT, _event(1, "t"))
    alert = codec.encode(ALERT, {"alert_id": "a", "alert_type": "loop", "severity": "INFO", "tenant_id": "t",
                                 "title": "x", "detected_us": NOW})
    corrupt = good[:5] + b"\xff"  # string length varint runs off the end
    msgs = [Msg(v) for v in (good, None, b"\x01abcdef", b"\x00\x00\x00", alert, corrupt, good[:5] + b"\x7f" + good[6:])]
    containers, rest = ContainerBuilder(codec.resolver.schema_for_id).split(msgs, lambda t: 30)
    assert [len(c.msgs) for c in containers] == [1]
    assert [m.value() for m in rest] == [m.value() for m in msgs[1:]]


def test_second_string_reads_the_tenant_without_decoding():
    v = Codec().encode(EVENT, _event(1, "tenant-ü"))
    assert second_string(v) == "tenant-ü"


def test_event_v1_and_v2_are_staged_each_into_its_own_table():
    catalog = load_catalog()
    assert STAGED_SCHEMAS == {canonical_hash(catalog.by_id(1).parsed): "events_avro_staging",
                              canonical_hash(catalog.by_id(5).parsed): "events_avro_staging_v2"}


def _v1_framed(record: dict) -> bytes:
    """A record as a v1 writer (an SDK or gateway from before v2) framed it."""
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00\x01")
    fastavro.schemaless_writer(buf, load_catalog().by_id(1).parsed,
                               {**record, "payload": ("agentstream.v1.Step", record["payload"])})
    return buf.getvalue()


def test_a_range_mixing_v1_and_v2_records_splits_into_one_container_per_version():
    codec = Codec()
    v2 = {**_event(1, "t"), "end_user_id": "ab" * 32}
    v2["payload"] = {**v2["payload"], "llm": {**v2["payload"]["llm"], "request_digest": "cd" * 32}}
    msgs = [Msg(_v1_framed(_event(0, "t"))), Msg(codec.encode(EVENT, v2)), Msg(_v1_framed(_event(2, "t")))]
    containers, rest = ContainerBuilder(codec.resolver.schema_for_id).split(msgs, lambda t: 30)
    assert rest == []
    by_id = {c.schema_id: c for c in containers}
    assert sorted(by_id) == [1, 5]
    assert by_id[1].table == "events_avro_staging" and by_id[5].table == "events_avro_staging_v2"
    old = list(fastavro.reader(io.BytesIO(by_id[1].data())))
    new = list(fastavro.reader(io.BytesIO(by_id[5].data())))
    assert [r["seq"] for r in old] == [0, 2] and "end_user_id" not in old[0]
    assert new[0]["end_user_id"] == "ab" * 32
    assert new[0]["payload"]["llm"]["request_digest"] == "cd" * 32
    assert new[0]["sink_retention_days"] == 30 and new[0]["sink_mark"] == MARK


@pytest.mark.parametrize("msg,data", [
    ("Code: 395. DB::Exception: agentstream: a record does not map", True),
    ("Code: 1001. DB::Exception: std::exception. avro::Exception EOF reached", True),
    ("Code: 27. DB::Exception: Cannot parse input", True),
    ("Code: 60. DB::Exception: Target table 'default.events' of view doesn't exist", False),
    ("Code: 241. DB::Exception: Memory limit exceeded", False),
    ("HTTPConnectionPool: connection refused", False),
])
def test_only_data_errors_count_as_a_refusal(msg, data):
    assert rejected_data(RuntimeError(msg)) is data
