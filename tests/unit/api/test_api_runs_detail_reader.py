"""The ``run_events.detail`` reader (generated from ``RUN_EVENT_LAYOUT``) against a plain one.

The reader the API uses is straight-line code generated from the layout, for speed. Here an
independent reader written the obvious way (a loop over the layout, a cursor) decodes the same
bytes, and both must agree on every input: the same fields, or both a ValueError. The inputs are
built from the layout with what a length-prefixed format gets wrong: lengths at the LEB128
boundaries (127/128, 16383/16384), empty strings next to long ones, bytes that are not UTF-8,
null flags that are not 0/1, arrays and maps of 0-3 items, and the same bytes cut and corrupted.
"""
from __future__ import annotations

import base64
import math
import random
import struct
from typing import Any

import pytest

from agentstream.api.store import runs as R

from run_event_codec import _size as leb128

LENGTHS = (0, 0, 0, 1, 5, 127, 128, 129, 300, 16383, 16384)
SAMPLES = (b"a", "é漢🙂".encode(), b"\xff\xfe", b"\xc3", b"\x00", b"\xed\xa0\x80")


def text_bytes(rnd: random.Random) -> bytes:
    n = rnd.choice(LENGTHS)
    body = (rnd.choice(SAMPLES) + rnd.choice(SAMPLES) * n)[:n]
    return leb128(len(body)) + body


def encoded(rnd: random.Random) -> bytes:
    out = bytearray([1])
    for _, kind in R.RUN_EVENT_LAYOUT:
        if kind == "s":
            out += text_bytes(rnd)
        elif kind in ("u", "i"):
            out += struct.pack("<Q", rnd.choice([0, 1, 2**63, 2**64 - 1, rnd.getrandbits(64)]))
        elif kind == "f":
            out += struct.pack("<d", rnd.choice([0.0, -0.0, math.nan, math.inf, 1e-320, rnd.random()]))
        elif kind == "nf":
            null = rnd.choice([0, 1, 7])
            out += bytes([null]) + (b"" if null else struct.pack("<d", rnd.uniform(-1, 1)))
        elif kind == "nb":
            null = rnd.choice([0, 1, 2])
            out += bytes([null]) + (b"" if null else bytes([rnd.choice([0, 1, 2, 255])]))
        elif kind == "as":
            count = rnd.randint(0, 3)
            out += leb128(count) + b"".join(text_bytes(rnd) for _ in range(count))
        else:  # "m"
            count = rnd.randint(0, 3)
            out += leb128(count) + b"".join(text_bytes(rnd) + text_bytes(rnd) for _ in range(count))
    return bytes(out)


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("cut")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def size(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("long varint")

    def text(self) -> str:
        return self.take(self.size()).decode("utf-8", "replace")


def reference(detail: str) -> dict[str, Any]:
    """The layout read the plain way: what the generated reader must equal."""
    c = Cursor(base64.b64decode(detail, validate=True))
    version = c.take(1)[0]
    if version < 1:
        raise ValueError("layout 0")
    ev: dict[str, Any] = {}
    for name, kind in R.RUN_EVENT_LAYOUT:
        if kind == "s":
            ev[name] = c.text()
        elif kind in ("u", "i", "f"):
            ev[name] = struct.unpack({"u": "<Q", "i": "<q", "f": "<d"}[kind], c.take(8))[0]
        elif kind == "nf":
            ev[name] = None if c.take(1)[0] else struct.unpack("<d", c.take(8))[0]
        elif kind == "nb":
            ev[name] = None if c.take(1)[0] else bool(c.take(1)[0])
        elif kind == "as":
            ev[name] = [c.text() for _ in range(c.size())]
        else:
            ev[name] = {}
            for _ in range(c.size()):
                key = c.text()
                ev[name][key] = c.text()
    if version == 1 and c.pos != len(c.data):
        raise ValueError("trailing bytes")
    return ev


def outcome(read: Any, detail: str) -> Any:
    try:
        ev = read(detail)
    except ValueError:
        return "ValueError"
    # nan != nan: compare floats by their bits
    return {k: struct.pack("<d", v) if isinstance(v, float) else v for k, v in ev.items()}


def test_the_generated_reader_reads_what_a_plain_reader_reads_whole_cut_and_corrupted():
    rnd = random.Random(18)
    whole = agreed_errors = 0
    for _ in range(250):
        data = encoded(rnd)
        variants = [data, data[:rnd.randrange(len(data))], data + b"\x00"]
        bad = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            bad[rnd.randrange(1, len(bad))] = rnd.randrange(256)
        variants.append(bytes(bad))
        variants.append(bytes([rnd.choice([0, 2, 255])]) + data[1:])  # other layout versions
        for v in variants:
            detail = base64.b64encode(v).decode()
            want = outcome(reference, detail)
            assert outcome(R.decode_run_event, detail) == want, v[:80]
            whole += want != "ValueError"
            agreed_errors += want == "ValueError"
    assert whole > 250 and agreed_errors > 250  # both branches exercised, not vacuous


def test_a_string_field_keeps_its_neighbours_whatever_its_length():
    """Each string field alone at each boundary length, the others empty: a length misread by
    one byte would shift every later field."""
    strings = [i for i, (_, kind) in enumerate(R.RUN_EVENT_LAYOUT) if kind == "s"]
    for idx in strings:
        for n in (0, 1, 127, 128, 16383, 16384, 70000):
            out = bytearray([1])
            for i, (_, kind) in enumerate(R.RUN_EVENT_LAYOUT):
                if kind == "s":
                    out += leb128(n) + b"x" * n if i == idx else b"\x00"
                elif kind in ("u", "i", "f"):
                    out += struct.pack("<q", i)
                elif kind in ("nf", "nb"):
                    out += b"\x01"
                else:
                    out += b"\x00"
            ev = R.decode_run_event(base64.b64encode(bytes(out)).decode())
            name = R.RUN_EVENT_LAYOUT[idx][0]
            assert ev[name] == "x" * n
            assert all(ev[f] == "" for j, f in enumerate(R.RUN_EVENT_FIELDS) if j in strings and j != idx)
            assert ev["seq"] == R.RUN_EVENT_FIELDS.index("seq") and ev["inserted_ms"] == len(R.RUN_EVENT_LAYOUT) - 1


def test_a_layout_with_a_type_no_reader_knows_is_refused_when_the_reader_is_built():
    with pytest.raises(ValueError, match="unknown field type"):
        R.layout_reader((("kind", "s"), ("when", "date")))
