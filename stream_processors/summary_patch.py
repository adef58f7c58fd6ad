"""Setting the ``redaction`` summary on an event that redaction did not change, without
re-encoding it.

Most events carry no secret. For them the output is the input plus a summary
``{policy_version, rule_counts: {}}``; re-encoding the whole record with fastavro cost as much
as decoding it. In Avro binary the field is a union ``["null", RedactionSummary]``: an incoming
``null`` is the single byte 0 at a position found by skipping the fields before it. Replacing
that byte with branch 1 + the summary gives exactly the bytes ``Codec.encode`` would write
(a unit test checks byte equality on generated events).

Only used when the record was written with the newest Event schema (the one the output must
carry) and the summary is still null; anything else is re-encoded by the caller.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from agentstream.schemas.avro_binary import encode_long, read_varint

Skip = Callable[[bytes, int], int]


def _varint(b: bytes, i: int) -> tuple[int, int]:
    x = b[i]
    if x < 0x80:  # one byte: the common case, without a call
        return x, i + 1
    return read_varint(b, i)


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _skip_long(b: bytes, i: int) -> int:
    while b[i] & 0x80:
        i += 1
    return i + 1


def _skip_bytes(b: bytes, i: int) -> int:
    n, i = _varint(b, i)
    return i + _zigzag(n)


def _skip_blocks(each: Callable[[bytes, int], int]) -> Skip:
    def skip(b: bytes, i: int) -> int:
        while True:
            n, i = _varint(b, i)
            count = _zigzag(n)
            if count == 0:
                return i
            if count < 0:  # a block with its byte size: skip it whole
                size, i = _varint(b, i)
                i += _zigzag(size)
                continue
            for _ in range(count):
                i = each(b, i)
    return skip


def compile_skip(t: Any, named: dict[str, Any]) -> Skip:
    """A function that returns the position after one value of Avro type ``t``."""
    if isinstance(t, str):
        if t in ("string", "bytes"):
            return _skip_bytes
        if t in ("long", "int", "enum"):
            return _skip_long
        if t == "boolean":
            return lambda b, i: i + 1
        if t == "float":
            return lambda b, i: i + 4
        if t == "double":
            return lambda b, i: i + 8
        if t == "null":
            return lambda b, i: i
        # a named type, referenced by full or short name
        return compile_skip(named.get(t) or named[t.rsplit(".", 1)[-1]], named)
    if isinstance(t, list):
        branches = [compile_skip(x, named) for x in t]

        def skip_union(b: bytes, i: int) -> int:
            n, i = _varint(b, i)
            return branches[_zigzag(n)](b, i)
        return skip_union
    kind = t["type"]
    if kind == "record":
        named[t["name"]] = t
        if "namespace" in t:
            named[f"{t['namespace']}.{t['name']}"] = t
        fields = [compile_skip(f["type"], named) for f in t["fields"]]

        def skip_record(b: bytes, i: int) -> int:
            for f in fields:
                i = f(b, i)
            return i
        return skip_record
    if kind == "enum":
        named[t["name"]] = t
        return _skip_long
    if kind == "fixed":
        named[t["name"]] = t
        size = t["size"]
        return lambda b, i: i + size
    if kind == "array":
        return _skip_blocks(compile_skip(t["items"], named))
    if kind == "map":
        value = compile_skip(t["values"], named)
        return _skip_blocks(lambda b, i: value(b, _skip_bytes(b, i)))
    return compile_skip(kind, named)


class SummaryPatcher:
    """``patch(data, policy_version)`` → framed bytes with an empty summary set, or None when the
    record cannot be patched (older writer schema, summary already set) and must be re-encoded."""

    HEADER = 5  # Confluent framing: magic byte + 4-byte schema id

    def __init__(self, schema_text: str, schema_id: int, field: str = "redaction") -> None:
        schema = json.loads(schema_text)
        named: dict[str, Any] = {}
        before = []
        for f in schema["fields"]:
            if f["name"] == field:
                break
            before.append(compile_skip(f["type"], named))
        else:
            raise ValueError(f"schema has no field {field!r}")
        self._before = before
        self._prefix = bytes([0]) + schema_id.to_bytes(4, "big")
        self._summaries: dict[str, bytes] = {}

    def summary(self, policy_version: str) -> bytes:
        s = self._summaries.get(policy_version)
        if s is None:
            pv = policy_version.encode()
            # union branch 1, policy_version string, empty rule_counts map
            s = self._summaries[policy_version] = b"\x02" + encode_long(len(pv)) + pv + b"\x00"
        return s

    def patch(self, data: bytes, policy_version: str) -> bytes | None:
        if data[:5] != self._prefix:
            return None
        i = self.HEADER
        try:
            for skip in self._before:
                i = skip(data, i)
            if data[i] != 0:
                return None
        except IndexError:
            return None
        return b"".join((data[:i], self.summary(policy_version), data[i + 1:]))
