"""The fast path's wire to ClickHouse: the Avro container's records as RowBinary rows.

ClickHouse reads the sink's Avro containers itself (sink/containers.py), but its Avro reader is
the costliest step of an insert: ~3.3-4.1 µs a row, against ~1.8 for RowBinary and ~1.6 for the
staging view itself (bench/RESULTS.md). So the container's body is transcoded to RowBinary in C
(``_rowbinary.c``) and inserted into the same staging table: the same rows, the same view, the
same tokens, so a range stored one way and replayed the other deduplicates as before.

Correct by construction, not by a list of cases: the program and the ClickHouse column types
it writes are both derived here from the container's writer schema, and the sink uses the
program only for a staging table whose columns are exactly those types (``matches``, checked
against ``system.columns`` once per table). Anything else — no C module, a schema with a type
this module does not map, a table that differs — keeps the Avro container. A record the program
cannot read refuses the whole body with ValueError, which the sink handles as ClickHouse refusing
the container.

How Avro maps (ClickHouse's own inference for the Avro format, which the staging tables mirror):
string/bytes -> String, long -> Int64, int -> Int32, float/double -> Float32/64, boolean ->
Bool, fixed(n) -> FixedString(n), enum -> Enum8/Enum16 (value = index), record -> named Tuple,
array -> Array, map -> Map(String, V), [null, T] -> Nullable(T), any other union -> Variant of
its branches (RowBinary gives a branch by its place among the branches sorted by type name).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

try:
    from ._rowbinary import Program as _Program
except ImportError:  # not built (no compiler): the fast path keeps its Avro containers
    _Program = None  # type: ignore[assignment, misc]  # optional extension
# Whether this build has the C transcoder (without it every container stays Avro).
AVAILABLE = _Program is not None

# Must match _rowbinary.c
(STRING, LONG, INT, FLOAT, DOUBLE, BOOL, FIXED, ENUM8, ENUM16, NULLABLE, VARIANT, RECORD, ARRAY, MAP,
 NULL) = range(15)
_SIMPLE = {"string": (STRING, "String"), "bytes": (STRING, "String"), "long": (LONG, "Int64"),
           "int": (INT, "Int32"), "float": (FLOAT, "Float32"), "double": (DOUBLE, "Float64"),
           "boolean": (BOOL, "Bool")}


class Unsupported(ValueError):
    """The schema holds a type this module does not map; the container stays Avro."""


@dataclass(frozen=True)
class Compiled:
    bodies: tuple[tuple[tuple[int, int, int], ...], ...]
    discs: tuple[int, ...]
    top: int
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type) of the top-level fields


class _Compiler:
    def __init__(self) -> None:
        self.bodies: list[tuple[tuple[int, int, int], ...]] = []
        self.discs: list[int] = []
        self.named: dict[str, Any] = {}
        self.open: set[str] = set()  # records being compiled: a recursive schema is refused

    def body(self, instrs: list[tuple[int, int, int]]) -> int:
        self.bodies.append(tuple(instrs))
        return len(self.bodies) - 1

    def value(self, t: Any, ns: str) -> tuple[tuple[int, int, int], str]:
        """(instruction, ClickHouse type) of one Avro type, in namespace ``ns``."""
        if isinstance(t, list):
            return self.union(t, ns)
        if isinstance(t, str):
            if t in _SIMPLE:
                op, ch = _SIMPLE[t]
                return (op, 0, 0), ch
            if t == "null":
                raise Unsupported("a field of type null")
            ref = self.named.get(_full(t, ns))
            if ref is None:
                raise Unsupported(f"unknown named type {t}")
            return self.value(ref, ns)
        if not isinstance(t, dict):
            raise Unsupported(f"type {t!r}")
        kind = t.get("type")
        if kind in _SIMPLE or kind == "null":
            return self.value(kind, ns)
        if kind in ("record", "enum", "fixed"):
            full = _full(str(t.get("name", "")), t.get("namespace", ns))
            self.named[full] = t
        if kind == "fixed":
            return (FIXED, int(t["size"]), 0), f"FixedString({int(t['size'])})"
        if kind == "enum":
            syms = t["symbols"]
            if not syms or len(syms) > 32767:
                raise Unsupported("enum size")
            width = ENUM8 if len(syms) <= 127 else ENUM16
            pairs = ", ".join(f"'{s}' = {i}" for i, s in enumerate(syms))
            return (width, len(syms), 0), f"Enum{8 if width == ENUM8 else 16}({pairs})"
        if kind == "record":
            b, columns = self.record(t, full)
            return (RECORD, b, 0), "Tuple(" + ", ".join(f"{n} {ch}" for n, ch in columns) + ")"
        if kind in ("array", "map"):
            item = t["items"] if kind == "array" else t["values"]
            ins, ch = self.value(item, ns)
            if ins[0] == NULL or (ins[0] == FIXED and ins[1] == 0):
                raise Unsupported("items of no bytes")  # _rowbinary.c bounds counts by bytes left
            b = self.body([ins])
            return (ARRAY if kind == "array" else MAP, b, 0), (f"Array({ch})" if kind == "array" else f"Map(String, {ch})")
        raise Unsupported(f"type {kind!r}")

    def record(self, t: dict[str, Any], full: str) -> tuple[int, list[tuple[str, str]]]:
        """The body reading record ``t`` (full name ``full``) and its fields' (name, type)."""
        if full in self.open:
            raise Unsupported(f"recursive record {full}")
        self.open.add(full)
        space = full.rsplit(".", 1)[0] if "." in full else ""  # where its fields' names resolve
        parts = [(f["name"], *self.value(f["type"], space)) for f in t["fields"]]
        self.open.discard(full)
        if not parts:
            raise Unsupported("a record without fields")
        return self.body([ins for _, ins, _ in parts]), [(n, ch) for n, _, ch in parts]

    def union(self, branches: list[Any], ns: str) -> tuple[tuple[int, int, int], str]:
        nulls = [i for i, b in enumerate(branches) if b == "null" or (isinstance(b, dict) and b.get("type") == "null")]
        if len(branches) == 2 and len(nulls) == 1:
            ins, ch = self.value(branches[1 - nulls[0]], ns)
            if ins[0] in (ARRAY, MAP, VARIANT):
                raise Unsupported("Nullable of an array, map or union")  # ClickHouse infers no Nullable there
            return (NULLABLE, nulls[0], self.body([ins])), f"Nullable({ch})"
        if len(nulls) > 1 or len(branches) < 2:
            raise Unsupported("union shape")
        compiled = [None if i in nulls else self.value(b, ns) for i, b in enumerate(branches)]
        names = sorted(c[1] for c in compiled if c is not None)
        if len(set(names)) != len(names):
            raise Unsupported("union branches of one ClickHouse type")
        at = len(self.discs)
        self.discs.extend(-1 if c is None else names.index(c[1]) for c in compiled)
        b = self.body([(NULL, 0, 0) if c is None else c[0] for c in compiled])
        return (VARIANT, b, at), "Variant(" + ", ".join(names) + ")"


def compile_schema(schema_json: str) -> Compiled:
    """The program and column types of a record schema (JSON text, as the container carries)."""
    doc = json.loads(schema_json)
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise Unsupported("the container's schema is not a record")
    c = _Compiler()
    full = _full(doc["name"], doc.get("namespace", ""))
    c.named[full] = doc
    top, columns = c.record(doc, full)
    return Compiled(tuple(c.bodies), tuple(c.discs), top, tuple(columns))


class Transcoder:
    """One container schema's program: ``rows(body, count)`` -> RowBinary, or ValueError."""

    def __init__(self, compiled: Compiled) -> None:
        if _Program is None:
            raise Unsupported("the C module is not built")
        self.columns = compiled.columns
        self._program = _Program(compiled.bodies, compiled.discs, compiled.top)

    def rows(self, body: bytes, count: int) -> bytes:
        return self._program.transcode(body, count)

    def matches(self, table_columns: list[tuple[str, str]]) -> bool:
        """Whether a table's (name, type) columns, in order, are the ones this program writes."""
        return [(n, _norm(t)) for n, t in table_columns] == [(n, _norm(t)) for n, t in self.columns]


def _full(name: str, space: str) -> str:
    """Avro's rule: a dotted name is already full; any other takes the enclosing namespace."""
    return name if "." in name or not space else f"{space}.{name}"


def _norm(t: str) -> str:
    return " ".join(t.split())


def transcoder_for(schema_json: str) -> Transcoder | None:
    """The transcoder of a container schema, or None (the container stays Avro) and why, logged."""
    try:
        return Transcoder(compile_schema(schema_json))
    except (Unsupported, KeyError, TypeError) as exc:
        log.info("RowBinary transcoding off for a container schema: %s", exc)
        return None
