"""The Avro -> RowBinary transcoder (sink/rowbinary.py, sink/_rowbinary.c) on hostile and odd
input, without ClickHouse (tests/integration/test_sink_rowbinary.py checks its rows against
ClickHouse's own reading of the same Avro).

Attack first: a Kafka value is whatever a producer wrote, so every truncation and byte flip of
real records must end in bytes or a ValueError, never a crash, a hang or an unbounded output.
"""
from __future__ import annotations

import io
import json
import random

import fastavro
import pytest

from agentstream.sink import rowbinary
from agentstream.sink.containers import STAGED_SCHEMAS
from agentstream.sink.rowbinary import Unsupported, compile_schema, transcoder_for
from tests.avro_datums import datum
from tests.staged_schemas import staged_container_schemas

pytestmark = pytest.mark.skipif(not rowbinary.AVAILABLE, reason="sink/_rowbinary.c is not built")


def _bodies(schema_json: str, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    parsed = fastavro.parse_schema(json.loads(schema_json))
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, datum(json.loads(schema_json), rng))
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module", params=range(len(STAGED_SCHEMAS)), ids=lambda i: f"staged{i}")
def staged(request):
    doc = staged_container_schemas()[request.param][0]
    return doc, transcoder_for(doc), _bodies(doc, 300, 7 + request.param)


def test_every_staged_schema_compiles(staged):
    doc, tc, _ = staged
    assert tc is not None
    names = [f["name"] for f in json.loads(doc)["fields"]]
    assert [n for n, _ in tc.columns] == names
    assert tc.columns[0] == ("sink_head", "FixedString(5)") and tc.columns[-1] == ("sink_mark", "FixedString(4)")


def test_random_records_transcode_alone_and_back_to_back(staged):
    _, tc, bodies = staged
    alone = [tc.rows(b, 1) for b in bodies]
    assert all(alone)
    assert tc.rows(b"".join(bodies), len(bodies)) == b"".join(alone)
    assert tc.rows(b"", 0) == b""


def test_every_truncation_is_refused(staged):
    _, tc, bodies = staged
    for body in bodies[:60]:
        for cut in range(len(body)):
            with pytest.raises(ValueError):
                tc.rows(body[:cut], 1)


def test_trailing_bytes_and_a_wrong_count_are_refused(staged):
    _, tc, bodies = staged
    with pytest.raises(ValueError, match="bytes left"):
        tc.rows(bodies[0] + b"\x00", 1)
    with pytest.raises(ValueError, match="record 2 of 3"):
        tc.rows(bodies[0] + bodies[1], 3)
    with pytest.raises(ValueError, match="bytes left"):
        tc.rows(bodies[0] + bodies[1], 1)


def test_byte_flips_end_in_bytes_or_a_refusal_and_stay_bounded(staged):
    _, tc, bodies = staged
    rng = random.Random(11)
    refused = 0
    for i in range(3000):
        b = bytearray(bodies[i % len(bodies)])
        for _ in range(rng.choice([1, 1, 2, 5])):
            b[rng.randrange(len(b))] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        try:
            out = tc.rows(bytes(b), 1)
        except ValueError:
            refused += 1
            continue
        # RowBinary grows at most a varint into a fixed 8 bytes and a count into 10
        assert len(out) <= 10 * len(b) + 16
    assert refused > 0


def test_hostile_counts_and_lengths_are_refused_at_once():
    tc = transcoder_for(json.dumps({"type": "record", "name": "R", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "string"}}]}))
    huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # zigzag of 2**63 - 1
    with pytest.raises(ValueError, match="past the end"):
        tc.rows(huge + b"\x00", 1)
    with pytest.raises(ValueError, match="block size"):
        tc.rows(b"\x01\x10\x00", 1)  # a negative block count (-1) whose byte size (8) runs past the end
    with pytest.raises(ValueError, match="varint longer"):
        tc.rows(b"\xff" * 11, 1)
    # an array's negative block count carries its byte size; both forms give the same rows
    assert tc.rows(b"\x04\x02\x04\x00\x00", 1) == tc.rows(b"\x03\x04\x02\x04\x00\x00", 1)


def test_scalars_enums_unions_and_counts_map_as_clickhouse_reads_them():
    doc = {"type": "record", "name": "R", "fields": [
        {"name": "i", "type": "int"}, {"name": "l", "type": "long"}, {"name": "b", "type": "boolean"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "o", "type": ["null", "string"]}, {"name": "o2", "type": ["string", "null"]},
        {"name": "v", "type": [{"type": "record", "name": "Z", "fields": [{"name": "z", "type": "long"}]},
                               {"type": "record", "name": "A", "fields": [{"name": "a", "type": "string"}]}]},
        {"name": "xs", "type": {"type": "array", "items": "int"}}]}
    compiled = compile_schema(json.dumps(doc))
    assert dict(compiled.columns) == {
        "i": "Int32", "l": "Int64", "b": "Bool", "e": "Enum8('A' = 0, 'B' = 1, 'C' = 2)", "o": "Nullable(String)",
        "o2": "Nullable(String)", "v": "Variant(Tuple(a String), Tuple(z Int64))", "xs": "Array(Int32)"}
    tc = transcoder_for(json.dumps(doc))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(doc), {
        "i": -2, "l": 300, "b": True, "e": "C", "o": None, "o2": "hé", "v": ("Z", {"z": -1}), "xs": [1, 2]})
    assert tc.rows(buf.getvalue(), 1) == (
        (-2).to_bytes(4, "little", signed=True) + (300).to_bytes(8, "little") + b"\x01" + b"\x02"
        + b"\x01"  # o: NULL
        + b"\x00" + b"\x03" + "hé".encode()  # o2: not NULL, then a String
        + b"\x01" + (-1).to_bytes(8, "little", signed=True)  # v: Tuple(z Int64) sorts second
        + b"\x02" + (1).to_bytes(4, "little") + (2).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="enum index"):
        tc.rows(b"\x00\x00\x00\x06", 1)
    with pytest.raises(ValueError, match="boolean"):
        tc.rows(b"\x00\x00\x02", 1)
    with pytest.raises(ValueError, match="int out of range"):
        tc.rows(b"\x80\x80\x80\x80\x10", 1)


@pytest.mark.parametrize("fields", [
    [{"name": "n", "type": "null"}],
    [{"name": "xs", "type": ["null", {"type": "array", "items": "long"}]}],
    [{"name": "w", "type": ["long", "null", "null"]}],
    [{"name": "u", "type": ["string", "bytes"]}],  # two branches of one ClickHouse type
    [{"name": "r", "type": ["null", "R"]}],  # recursive
    [{"name": "xs", "type": {"type": "array", "items": {"type": "fixed", "name": "F0", "size": 0}}}],
])
def test_schemas_clickhouse_would_read_otherwise_keep_the_avro_container(fields):
    doc = json.dumps({"type": "record", "name": "R", "fields": fields})
    with pytest.raises(Unsupported):
        compile_schema(doc)
    assert transcoder_for(doc) is None


def test_a_table_that_differs_in_any_column_is_not_taken(staged):
    _, tc, _ = staged
    cols = list(tc.columns)
    assert tc.matches(cols) and tc.matches([(n, t.replace(", ", ",  ")) for n, t in cols])
    for i in (0, len(cols) // 2, len(cols) - 1):
        assert not tc.matches(cols[:i] + [(cols[i][0], "String" if cols[i][1] != "String" else "Int64")] + cols[i + 1:])
    assert not tc.matches(cols[:-1]) and not tc.matches(cols + [("extra", "String")])
    assert not tc.matches(cols[1:] + cols[:1])
