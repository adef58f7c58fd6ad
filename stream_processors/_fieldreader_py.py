"""The field reader in Python: runs a ``_fieldreader_ops`` program over a record's bytes.

The reference for ``_fieldreader.c`` and its fallback where that module is not built: both give
the same dict for every record and refuse (``None``) the same records; a differential unit test
runs them side by side with fastavro. A refusal only means "take the full decode": every rule
below that refuses something valid Avro might allow (a boolean byte other than 0 or 1, a varint
beyond 64 bits, a block count larger than the bytes left) sends that record to fastavro.
"""
from __future__ import annotations

import struct
from typing import Any

from ._fieldreader_ops import (ARRAY, BOOL, BYTES, DEFAULT, DOUBLE, ENUM, FIXED, FLOAT, FRESH_DICT,
                               FRESH_LIST, LONG, MAP, MARK, NULL, RECORD, STRING, UNION, Instr, Program)

MAX_DEPTH = 64  # nested records, arrays and maps; deeper only through a recursive schema
_double = struct.Struct("<d").unpack_from
_float = struct.Struct("<f").unpack_from


class Refused(Exception):
    pass


class PyReader:
    """``read(data, start)`` → (selected fields, offset of the marked field or -1), or None."""

    def __init__(self, program: Program) -> None:
        self.bodies = program.bodies
        self.names = program.names
        self.consts = program.consts
        self.top = program.top

    def read(self, data: bytes, start: int) -> tuple[dict[str, Any], int] | None:
        self.b, self.i, self.mark = data, start, -1
        try:
            out = self._record(self.top, True, 0)
        except (Refused, IndexError, UnicodeDecodeError, struct.error):
            return None
        finally:
            b, self.b = self.b, b""
        return (out, self.mark) if out is not None and self.i == len(b) else None

    def _long(self) -> int:
        b, i = self.b, self.i
        v = shift = 0
        while True:
            c = b[i]
            i += 1
            if shift == 63 and c & 0xFE:
                raise Refused("varint beyond 64 bits")
            v |= (c & 0x7F) << shift
            if not c & 0x80:
                break
            shift += 7
        self.i = i
        return (v >> 1) ^ -(v & 1)

    def _take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.b):
            raise Refused("length")
        i = self.i
        self.i = i + n
        return self.b[i:i + n]

    def _record(self, body: int, keep: bool, depth: int) -> dict[str, Any] | None:
        if depth > MAX_DEPTH:
            raise Refused("too deep")
        out: dict[str, Any] | None = {} if keep else None
        for ins in self.bodies[body]:
            op, key = ins[0], ins[1]
            if op == MARK:
                self.mark = self.i
            elif op == DEFAULT:
                if out is not None:
                    v = self.consts[ins[2]]
                    out[self.names[key]] = {} if ins[3] == FRESH_DICT else [] if ins[3] == FRESH_LIST else v
            else:
                v = self._value(ins, out is not None and key >= 0, depth)
                if out is not None and key >= 0:
                    out[self.names[key]] = v
        return out

    def _value(self, ins: Instr, keep: bool, depth: int) -> Any:
        op = ins[0]
        if op == STRING:
            s = self._take(self._long()).decode()  # checked when skipped too: the full decode would refuse it
            return s if keep else None
        if op == LONG:
            return self._long()
        if op == RECORD:
            return self._record(ins[2], keep, depth + 1)
        if op == UNION:
            branches = self.bodies[ins[2]]
            n = self._long()
            if not 0 <= n < len(branches):
                raise Refused("union branch")
            return self._value(branches[n], keep, depth)
        if op == NULL:
            return None
        if op == BOOL:
            c = self._take(1)[0]
            if c > 1:
                raise Refused("boolean")
            return c == 1
        if op == DOUBLE:
            return _double(self._take(8))[0]
        if op == FLOAT:
            return _float(self._take(4))[0]
        if op == BYTES:
            return self._take(self._long())
        if op == FIXED:
            return self._take(ins[2])
        if op == ENUM:
            symbols = self.consts[ins[2]]
            n = self._long()
            if not 0 <= n < len(symbols):
                raise Refused("enum index")
            return symbols[n]
        if op in (ARRAY, MAP):
            return self._blocks(ins, keep, depth + 1)
        raise Refused(f"unknown op {op}")

    def _blocks(self, ins: Instr, keep: bool, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise Refused("too deep")
        item = self.bodies[ins[2]][0]
        is_map = ins[0] == MAP
        wanted = self.consts[ins[3]] if is_map and ins[3] >= 0 else None
        out: Any = ({} if is_map else []) if keep else None
        while True:
            count = self._long()
            if count == 0:
                return out
            if count < 0:
                count = -count
                self._long()  # the block's size in bytes: not needed
            if count > len(self.b) - self.i:
                raise Refused("block count")
            for _ in range(count):
                if is_map:
                    k = self._take(self._long())
                    ks = k.decode()
                    hold = keep and (wanted is None or k in wanted)
                    v = self._value(item, hold, depth)
                    if hold:
                        out[ks] = v
                else:
                    v = self._value(item, keep, depth)
                    if keep:
                        out.append(v)
