"""The field reader, differentially: the C interpreter, its Python twin and fastavro's full decode.

On random valid Events of both schema versions (every optional field present or absent, unicode
of every width, long arrays and maps, extreme longs) the two interpreters give the same dict,
equal to fastavro's decode cut down to the selection (and to the whole decode when everything
is selected). On truncated, mutated and garbage bytes they refuse the same records, and nothing
they accept is read differently by fastavro: a record the reader passes on as bytes is one the
full decode would have read the same way.
"""
from __future__ import annotations

import copy
import io
import json
import math
import random
import shutil
import struct

import fastavro
import pytest

from agentstream.schemas import EVENT, Codec, DecodeError, load_catalog
from agentstream.stream_processors import _fieldreader_ops as ops
from agentstream.stream_processors._fieldreader_py import MAX_DEPTH, PyReader
from agentstream.stream_processors.event_reader import DETECTOR_FIELDS, EventReader, compile_reader

try:
    from agentstream.stream_processors import _fieldreader
except ImportError:  # optional where there is no compiler; see the first test
    _fieldreader = None

codec = Codec()
VERSIONS = load_catalog().versions(EVENT)
NEWEST = load_catalog().latest(EVENT).parsed
COMPILER = shutil.which("cc") or shutil.which("gcc")


def test_the_extension_is_built_wherever_a_compiler_is():
    # setup.py builds it optional=True: a broken build would otherwise only skip the tests below
    assert _fieldreader is not None or not COMPILER, "stream_processors/_fieldreader.c did not build: " \
        "reinstall (make install) and read the compiler's output"


needs_c = pytest.mark.skipif(_fieldreader is None, reason="the C field reader is not built (no compiler)")

TEXT = ["", "a", "tenant-1", "é", "✓", "\U0001f600", "\u2028", "\x00", "\\\"'", "agentstream.args_digest",
        "agentstream.progress_fingerprint"]


def _text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 3, 20, 130, 1000])
    return "".join(rng.choice(TEXT[1:]) for _ in range(n // 4 + 1))[:n] if n else ""


def _long(rng: random.Random) -> int:
    return rng.choice([0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63),
                       rng.randrange(-(2**63), 2**63)])


def _int(rng: random.Random) -> int:
    return rng.choice([0, 1, -1, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])


def _value(t, named: dict, rng: random.Random, depth: int = 0):
    """A random valid value of Avro type ``t`` (fastavro's parsed form), unions in tuple notation."""
    if isinstance(t, str):
        if t in named:
            return _value(named[t], named, rng, depth)
        return {"null": lambda: None, "boolean": lambda: rng.random() < 0.5, "int": lambda: _int(rng),
                "long": lambda: _long(rng), "float": lambda: rng.choice([0.0, -1.5, 3.25, 1e30]),
                "double": lambda: rng.choice([0.0, -0.0, 1e-300, 1e300, math.inf, -math.inf, rng.random()]),
                "string": lambda: _text(rng), "bytes": lambda: rng.randbytes(rng.choice([0, 3, 40]))}[t]()
    if isinstance(t, list):
        branch = rng.choice(t)
        v = _value(branch, named, rng, depth)
        if isinstance(branch, str) and branch in named and named[branch]["type"] == "record":
            return (branch, v)
        return v
    kind = t["type"]
    if kind == "record":
        return {f["name"]: _value(f["type"], named, rng, depth + 1) for f in t["fields"]}
    if kind == "enum":
        return rng.choice(t["symbols"])
    if kind == "array":
        n = rng.choice([0, 1, 2, 300]) if depth < 4 else 0
        return [_value(t["items"], named, rng, depth + 1) for _ in range(n)]
    if kind == "map":
        n = rng.choice([0, 1, 5, 200]) if depth < 4 else 0
        keys = [rng.choice(TEXT + [_text(rng)]) for _ in range(n)]
        return {k: _value(t["values"], named, rng, depth + 1) for k in keys}
    return _value(kind, named, rng, depth)


def _encode(version, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.parsed, record)
    return struct.pack(">bI", 0, version.id) + buf.getvalue()


def _random_records(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        version = VERSIONS[i % len(VERSIONS)]
        named = version.parsed["__named_schemas"]
        out.append(_encode(version, _value(version.parsed, named, rng)))
    return out


def selected(value, sel):
    if sel is True or value is None:
        return value
    if isinstance(sel, tuple):
        return {k: v for k, v in value.items() if k in sel}
    if isinstance(value, list):
        return [selected(v, sel) for v in value]
    return {k: selected(value[k], s) for k, s in sel.items() if k in value}


def _readers(selection):
    return EventReader(codec, selection), EventReader(codec, selection, native=False)


RECORDS = _random_records(300, 18)


@needs_c
@pytest.mark.parametrize("selection", [DETECTOR_FIELDS, True], ids=["detector-fields", "everything"])
def test_both_interpreters_read_what_fastavro_reads(selection):
    c, py = _readers(selection)
    assert c.is_native and not py.is_native
    for raw in RECORDS:
        got = c.read(raw)
        assert got is not None
        assert py.read(raw) == got
        assert got[0] == selected(codec.decode_as(EVENT, raw), selection)
        assert raw[got[1]] in (0, 2)  # the redaction union's branch byte


def _agree_and_never_accept_what_fastavro_reads_otherwise(c, py, raw: bytes) -> bool:
    got = c.read(raw)
    assert py.read(raw) == got, raw
    if got is None:
        return False
    assert got[0] == selected(codec.decode_as(EVENT, raw), DETECTOR_FIELDS), raw
    return True


@needs_c
def test_truncated_mutated_and_garbage_bytes_are_refused_alike():
    c, py = _readers(DETECTOR_FIELDS)
    rng = random.Random(1818)
    accepted = refused = 0
    for raw in RECORDS[:40]:
        for cut in range(5, len(raw), max(1, len(raw) // 60)):
            assert c.read(raw[:cut]) is None and py.read(raw[:cut]) is None
        for _ in range(40):
            b = bytearray(raw)
            for _ in range(rng.choice([1, 1, 2, 5])):
                b[rng.randrange(5, len(b))] = rng.choice([0, 1, 2, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            ok = _agree_and_never_accept_what_fastavro_reads_otherwise(c, py, bytes(b))
            accepted, refused = accepted + ok, refused + (not ok)
    for _ in range(2000):
        garbage = raw[:5] + rng.randbytes(rng.choice([1, 2, 10, 100, 1000]))
        ok = _agree_and_never_accept_what_fastavro_reads_otherwise(c, py, garbage)
        accepted, refused = accepted + ok, refused + (not ok)
    assert accepted > 100 and refused > 100  # both outcomes were exercised


@needs_c
def test_invalid_utf8_in_a_skipped_string_is_refused():
    c, py = _readers(DETECTOR_FIELDS)
    v2 = VERSIONS[-1]
    rec = _value(v2.parsed, v2.parsed["__named_schemas"], random.Random(3))
    rec["environment"] = "prod-XY"  # a string the detectors never read
    raw = _encode(v2, rec)
    assert c.read(raw) is not None
    for bad in (b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0", b"\xf4\x90"):  # invalid, overlong, surrogate, > U+10FFFF
        broken = raw.replace(b"prod-XY", b"prod-" + bad)
        with pytest.raises(DecodeError):  # the full path sends it to the DLQ
            codec.decode_as(EVENT, broken)
        assert c.read(broken) is None and py.read(broken) is None


@needs_c
def test_every_utf8_sequence_is_judged_as_python_judges_it():
    """The C validator against bytes.decode() on every 1-4 byte lead/continuation pattern."""
    prog = ops.compile_program({"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]},
                               {"s": False})
    c, py = _fieldreader.Reader(prog.bodies, prog.names, prog.consts, prog.top), PyReader(prog)
    samples = [bytes([a]) for a in range(256)]
    samples += [bytes([a, b]) for a in range(0xC0, 0x100, 3) for b in range(0x70, 0xC5, 5)]
    samples += [bytes([a, b, 0x80]) for a in (0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5) for b in range(0x70, 0xC5, 3)]
    samples += [bytes([a, b, 0x80, 0x80]) for a in (0xF0, 0xF4) for b in range(0x70, 0xC5, 3)]
    samples += [b"abcdefgh" * 3 + s for s in (b"\xe2\x9c\x93", b"\xe2\x9c", b"\x80")]
    for s in samples:
        raw = bytes([len(s) * 2]) + s
        try:
            s.decode()
            valid = True
        except UnicodeDecodeError:
            valid = False
        assert (c.read(raw, 0) is not None) == valid == (py.read(raw, 0) is not None), s


@needs_c
def test_blocks_with_byte_sizes_map_key_filter_and_depth():
    schema = {"type": "record", "name": "Node", "fields": [
        {"name": "m", "type": {"type": "map", "values": "long"}},
        {"name": "next", "type": ["null", "Node"]}]}
    parsed = fastavro.parse_schema(schema)
    assert _fieldreader.MAX_DEPTH == MAX_DEPTH
    for sel in ({"m": ("b",), "next": True}, True):
        prog = ops.compile_program(schema, sel)
        readers = (_fieldreader.Reader(prog.bodies, prog.names, prog.consts, prog.top), PyReader(prog))
        for depth in (1, 5, MAX_DEPTH, MAX_DEPTH + 1):
            rec: dict = {"m": {"a": 1, "b": -2}, "next": None}
            for _ in range(depth - 1):
                rec = {"m": {"b": 3}, "next": rec}
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, rec)
            raw = buf.getvalue()
            got = [r.read(raw, 0) for r in readers]
            assert got[0] == got[1]
            if depth > MAX_DEPTH:  # the innermost map is nested one deeper than its record: refused
                assert got[0] is None
            else:
                assert got[0] == (selected(fastavro.schemaless_reader(io.BytesIO(raw), parsed), sel), -1)
        # one map as a block with a negative count and its byte size (the spec allows it)
        plain = b"\x04\x02a\x02\x02b\x03\x00\x00"
        blocked = b"\x03\x0c\x02a\x02\x02b\x03\x00\x00"
        assert readers[0].read(blocked, 0) == readers[1].read(blocked, 0) == readers[0].read(plain, 0)
        huge = b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"  # a count of -2**63: refused, not negated
        assert readers[0].read(huge + b"\x00\x00", 0) is None and readers[1].read(huge + b"\x00\x00", 0) is None


@needs_c
def test_a_bad_program_is_refused_at_construction():
    prog = ops.compile_program(NEWEST, DETECTOR_FIELDS, NEWEST, "redaction")
    bodies = list(prog.bodies)
    bodies[prog.top] = bodies[prog.top] + ((ops.RECORD, -1, len(bodies) + 5, 0),)
    with pytest.raises(ValueError):
        _fieldreader.Reader(bodies, prog.names, prog.consts, prog.top)
    with pytest.raises(ValueError):
        _fieldreader.Reader(prog.bodies, prog.names, prog.consts, len(prog.bodies))
    enum_at = next(i for i, ins in enumerate(prog.bodies[prog.top]) if ins[0] == ops.ENUM)
    bodies = list(prog.bodies)
    bad = list(bodies[prog.top])
    bad[enum_at] = (ops.ENUM, bad[enum_at][1], len(prog.consts), 0)  # symbols past the consts
    bodies[prog.top] = tuple(bad)
    with pytest.raises(ValueError):
        _fieldreader.Reader(bodies, prog.names, prog.consts, prog.top)
    blank = _fieldreader.Reader.__new__(_fieldreader.Reader)
    with pytest.raises(ValueError):
        blank.read(b"\x00", 0)  # never initialised: refused, not a crash
    r = _fieldreader.Reader(prog.bodies, prog.names, prog.consts, prog.top)
    with pytest.raises(TypeError):
        r.__init__(prog.bodies, prog.names, prog.consts, prog.top)
    assert compile_reader(NEWEST, NEWEST).read(RECORDS[-1], 5) is not None  # still a working reader


@needs_c
def test_a_new_schema_version_needs_no_change_to_the_reader():
    """An Event v3 that appends optional fields (top level and inside Step) is read by programs
    compiled from it, and v2 records read against it get its defaults: no C or Python edit."""
    v3 = json.loads(load_catalog().latest(EVENT).text)
    v3["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    step = next(b for b in next(f for f in v3["fields"] if f["name"] == "payload")["type"] if b["name"] == "Step")
    step["fields"].append({"name": "cache_hit", "type": "boolean", "default": False})
    parsed = fastavro.parse_schema(copy.deepcopy(v3))
    selection = {**DETECTOR_FIELDS, "region": True,
                 "payload": {**DETECTOR_FIELDS["payload"], "cache_hit": True}}  # type: ignore[dict-item]
    rng = random.Random(33)
    for native in (True, False):
        reader = compile_reader(parsed, v3, selection, native=native)
        for _ in range(60):
            rec = _value(parsed, parsed["__named_schemas"], rng)
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, rec)
            raw = b"\x00\x00\x00\x00\x63" + buf.getvalue()
            got = reader.read(raw, 5)
            assert got is not None
            assert got[0] == selected(fastavro.schemaless_reader(io.BytesIO(raw[5:]), parsed), selection)
        old = compile_reader(codec.resolver.schema_for_id(VERSIONS[-1].id), v3, selection, native=native)
        steps = 0
        for raw in RECORDS[1::2]:  # v2 records
            got = old.read(raw, 5)
            assert got is not None and got[0]["region"] is None
            payload = got[0]["payload"]
            if isinstance(payload, dict) and "step_kind" in payload:  # a Step branch
                assert payload["cache_hit"] is False
                steps += 1
        assert steps > 5
