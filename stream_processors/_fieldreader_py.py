"""The field reader in Python: a ``_fieldreader_ops`` program turned into straight-line Python.

The twin of ``_fieldreader.c``, used where that module is not built: both give the same dict for
every record and refuse (``None``) the same records; a differential unit test runs them side by
side with fastavro. Why generated code and not a loop over the instructions: an interpreter in
Python cost ~48 µs per event, more than fastavro; one function per record body (a keeping and a
skipping variant) with every field inlined costs a few µs.

A refusal only means "take the full decode": every rule below that refuses something valid Avro
might allow (a boolean byte other than 0 or 1, a varint beyond 64 bits, a block count larger
than the bytes left, nesting deeper than ``MAX_DEPTH``) sends that record to fastavro.
"""
from __future__ import annotations

import array
import re
import struct
from typing import Any

from ._fieldreader_ops import (ARRAY, BOOL, BYTES, DEFAULT, DOUBLE, ENUM, FIXED, FLOAT, FRESH_DICT,
                               FRESH_LIST, LONG, MAP, MARK, NULL, RECORD, STRING, TEXT_MARK, UNION, Instr,
                               Program)

MAX_DEPTH = 64  # nested records, arrays and maps; deeper only through a recursive schema
_TEXT_MARKS = (object(), object())  # where the TEXT_MARK instructions were, among the text's pieces
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Refused(Exception):
    pass


def _long_tail(b: bytes, i: int, c: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``c`` had the continuation bit, zigzag undone."""
    v, shift = c & 0x7F, 7
    while True:
        c = b[i]
        i += 1
        if shift == 63 and c & 0xFE:
            raise Refused("varint beyond 64 bits")
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return (v >> 1) ^ -(v & 1), i
        shift += 7


class _Gen:
    def __init__(self, program: Program) -> None:
        self.p = program
        self.funcs: dict[str, list[str]] = {}
        self.tmp = 0

    def var(self, stem: str) -> str:
        self.tmp += 1
        return f"{stem}{self.tmp}"

    def long(self, out: list[str], pad: str, target: str) -> None:
        out += [f"{pad}{target} = b[i]", f"{pad}i += 1", f"{pad}if {target} < 128:",
                f"{pad}    {target} = ({target} >> 1) ^ -({target} & 1)", f"{pad}else:",
                f"{pad}    {target}, i = _long_tail(b, i, {target})"]

    def take(self, out: list[str], pad: str, n: str) -> None:
        out += [f"{pad}if {n} < 0 or i + {n} > len(b):", f"{pad}    raise Refused('length')"]

    def record(self, body: int, keep: bool) -> str:
        name = f"{'keep' if keep else 'skip'}_{body}"  # no local of the generated code ends in _<n>
        if name in self.funcs:
            return name
        self.funcs[name] = []  # placeholder: a recursive schema refers to itself
        top = keep and body == self.p.top
        lines = [f"def {name}(b, i, d, t):", f"    if d > {MAX_DEPTH}:", "        raise Refused('too deep')"]
        if top:
            lines.append("    mark = -1")
        fields: list[str] = []
        for ins in self.p.bodies[body]:
            op, key = ins[0], ins[1]
            if op == MARK:
                lines.append("    mark = i")
            elif op == TEXT_MARK:
                lines += ["    if t is not None:", f"        t.append(TM[{ins[2]}])"]
            elif op == DEFAULT:
                if keep:
                    value = "{}" if ins[3] == FRESH_DICT else "[]" if ins[3] == FRESH_LIST else f"C[{ins[2]}]"
                    fields.append(f"N[{key}]: {value}")
            else:
                hold = keep and key >= 0
                target = self.var("f") if hold else "_"
                self.value(ins, lines, "    ", target, hold, "d")
                if hold:
                    fields.append(f"N[{key}]: {target}")
        if keep:
            lines.append(f"    return {{{', '.join(fields)}}}, i" + (", mark" if top else ""))
        else:
            lines.append("    return i")
        self.funcs[name] = lines
        return name

    def value(self, ins: Instr, out: list[str], pad: str, target: str, keep: bool, depth: str) -> None:
        """Code reading one value at ``i`` (into ``target`` when ``keep``); ``depth`` is the
        expression of the enclosing record's or block's depth."""
        op = ins[0]
        if op == STRING or op == BYTES:
            n = self.var("n")
            self.long(out, pad, n)
            self.take(out, pad, n)
            if op == STRING:  # an id field's value as (bytes, 1): the C reader's bit 31
                piece = f"(b[i:i + {n}], 1)" if ins[3] else f"b[i:i + {n}]"
                out += [f"{pad}if t is not None:", f"{pad}    t.append({piece})"]
            if op == BYTES:
                out.append(f"{pad}{target} = b[i:i + {n}]")
            elif keep:
                out.append(f"{pad}{target} = b[i:i + {n}].decode()")
            else:  # checked when skipped too: the full decode would refuse it
                seg = self.var("g")
                out += [f"{pad}{seg} = b[i:i + {n}]", f"{pad}if not {seg}.isascii():", f"{pad}    {seg}.decode()"]
            out.append(f"{pad}i += {n}")
        elif op == LONG:
            self.long(out, pad, target)
        elif op == NULL:
            out.append(f"{pad}{target} = None")
        elif op == BOOL:
            out += [f"{pad}{target} = b[i]", f"{pad}i += 1", f"{pad}if {target} > 1:",
                    f"{pad}    raise Refused('boolean')", f"{pad}{target} = {target} == 1"]
        elif op in (DOUBLE, FLOAT):
            fn, size = ("_double", 8) if op == DOUBLE else ("_float", 4)
            out += [f"{pad}{target} = {fn}(b, i)[0]", f"{pad}i += {size}"]
        elif op == FIXED:
            self.take(out, pad, str(ins[2]))
            out += [f"{pad}{target} = b[i:i + {ins[2]}]", f"{pad}i += {ins[2]}"]
        elif op == ENUM:
            self.long(out, pad, target)
            out += [f"{pad}if not 0 <= {target} < {len(self.p.consts[ins[2]])}:",
                    f"{pad}    raise Refused('enum index')", f"{pad}{target} = C[{ins[2]}][{target}]"]
        elif op == RECORD:
            fn = self.record(ins[2], keep)
            out.append(f"{pad}{target}, i = {fn}(b, i, {depth} + 1, t)" if keep
                       else f"{pad}i = {fn}(b, i, {depth} + 1, t)")
        elif op == UNION:
            u = self.var("u")
            self.long(out, pad, u)
            for j, branch in enumerate(self.p.bodies[ins[2]]):
                out.append(f"{pad}{'if' if j == 0 else 'elif'} {u} == {j}:")
                self.value(branch, out, pad + "    ", target, keep, depth)
            out += [f"{pad}else:", f"{pad}    raise Refused('union branch')"]
        elif op in (ARRAY, MAP):
            self.blocks(ins, out, pad, target, keep, depth)
        else:
            raise ValueError(f"unknown op {op}")

    def blocks(self, ins: Instr, out: list[str], pad: str, target: str, keep: bool, depth: str) -> None:
        item = self.p.bodies[ins[2]][0]
        is_map = ins[0] == MAP
        d, c, x = self.var("d"), self.var("c"), self.var("x")
        out += [f"{pad}{d} = {depth} + 1", f"{pad}if {d} > {MAX_DEPTH}:", f"{pad}    raise Refused('too deep')"]
        if keep:
            out.append(f"{pad}{target} = {{}}" if is_map else f"{pad}{target} = []")
        out.append(f"{pad}while True:")
        inner = pad + "    "
        self.long(out, inner, c)
        out += [f"{inner}if {c} == 0:", f"{inner}    break", f"{inner}if {c} < 0:", f"{inner}    {c} = -{c}"]
        self.long(out, inner + "    ", "_")  # the block's size in bytes: not needed
        out += [f"{inner}if {c} > len(b) - i:", f"{inner}    raise Refused('block count')",
                f"{inner}for _ in range({c}):"]
        body = inner + "    "
        if not is_map:
            self.value(item, out, body, x, keep, d)
            if keep:
                out.append(f"{body}{target}.append({x})")
            return
        n, k = self.var("n"), self.var("k")
        self.long(out, body, n)
        self.take(out, body, n)
        out += [f"{body}{k} = b[i:i + {n}]", f"{body}i += {n}", f"{body}{k}s = {k}.decode()",
                f"{body}if t is not None:", f"{body}    t.append(({k},))"]
        if not keep:
            self.value(item, out, body, "_", False, d)
            return
        if ins[3] >= 0:
            out.append(f"{body}if {k} in C[{ins[3]}]:")
            self.value(item, out, body + "    ", x, True, d)
            out += [f"{body}    {target}[{k}s] = {x}", f"{body}else:"]
            self.value(item, out, body + "    ", "_", False, d)
        else:
            self.value(item, out, body, x, True, d)
            out.append(f"{body}{target}[{k}s] = {x}")


class PyReader:
    """``read(data, start)`` → (selected fields, offset of the marked field or -1), or None."""

    def __init__(self, program: Program) -> None:
        gen = _Gen(program)
        top = gen.record(program.top, True)
        src = "\n\n".join("\n".join(lines) for lines in gen.funcs.values())
        ns: dict[str, Any] = {"Refused": Refused, "_long_tail": _long_tail, "N": program.names, "TM": _TEXT_MARKS,
                              "C": program.consts, "_double": struct.Struct("<d").unpack_from,
                              "_float": struct.Struct("<f").unpack_from}
        exec(compile(src, "<fieldreader program>", "exec"), ns)  # our own generated code
        self._top = ns[top]
        self.source = src

    def read(self, data: bytes, start: int) -> tuple[dict[str, Any], int] | None:
        got = self._run(data, start, None)
        return None if got is None else (got[0], got[1])

    def read_text(self, data: bytes, start: int
                  ) -> tuple[dict[str, Any], int, bytes, int, int, int, bytes] | None:
        """``read``'s pair + (text, text mark 0, text mark 1, longest string, ends), as the C
        reader's: ``ends`` holds each string's end offset as a native uint32, bit 31 for an id's."""
        pieces: list[Any] = []
        got = self._run(data, start, pieces)
        if got is None:
            return None
        out: list[bytes] = []
        ends = array.array("I")
        marks, at, longest = [0, 0], 0, 0
        for p in pieces:
            if p is _TEXT_MARKS[0] or p is _TEXT_MARKS[1]:
                marks[p is _TEXT_MARKS[1]] = at
                continue
            kind = len(p) if p.__class__ is tuple else 0  # 0 a value, 1 a map key, 2 an id's value
            s = p[0] if kind else p
            longest = max(longest, len(s))
            if kind == 1 or not (len(s) == 36 and _UUID.fullmatch(s)):  # a UUID value: exempt, as in C
                out.append(s)
                at += len(s)
                ends.append(at | (1 << 31 if kind == 2 else 0))
                at += 1
        return (got[0], got[1], b"".join(s + b"\0" for s in out), marks[0], marks[1], longest,
                ends.tobytes())

    def _run(self, data: bytes, start: int, text: list[Any] | None) -> tuple[dict[str, Any], int] | None:
        if not 0 <= start <= len(data):
            return None
        try:
            out, i, mark = self._top(data, start, 0, text)
        except (Refused, IndexError, UnicodeDecodeError, struct.error):
            return None
        return (out, mark) if i == len(data) else None
