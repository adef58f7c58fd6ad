"""Compiles an Avro record schema and a field selection into the small program the field
readers run (``_fieldreader.c``, and ``_fieldreader_py.py`` where the C module is not built).

Why a program and not hand-written offsets: the reader must follow the writer schema of every
record it sees (two Event versions today, more tomorrow). The schema is compiled once per writer
schema id, at first sight; a new optional field is a new instruction, never a C change.

A program is a list of bodies; a body is a tuple of instructions ``(op, key, a, b)``:

- ``key`` is the index of the field's name in ``names`` when the field is selected, else -1: the
  value is then only skipped (strings are still checked to be UTF-8, so a record the full decode
  would refuse is refused here too);
- RECORD ``a`` = body of its fields; UNION ``a`` = body whose instruction j is branch j; ARRAY
  ``a`` = body of one instruction, the item; MAP ``a`` = the same for the value, ``b`` = index in
  ``consts`` of the keys kept (a tuple of UTF-8 bytes) or -1 for every key; STRING ``b`` = 1 for
  the value of an id field (``read_text`` flags it); ENUM ``a`` = index
  in ``consts`` of its symbols; FIXED ``a`` = size; DEFAULT stores ``consts[a]`` (``b``: 0 as
  is, 1 a fresh empty dict, 2 a fresh empty list) for a selected field the writer lacks, so an
  older record reads as the newest schema would resolve it; MARK remembers where the top-level
  field it precedes starts (the redaction summary, for the byte splice); TEXT_MARK ``a`` = 0
  before and 1 after the top-level field whose text ``read_text`` reports apart (attributes).

A selection is ``True`` (the whole value), a dict ``{field: selection}`` for a record (applied to
every record branch of a union and to array items alike), or a tuple of keys for a map (only those
entries are kept). Fields not named are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

Selection = Union[bool, dict[str, "Selection"], tuple[str, ...]]

NULL, BOOL, LONG, FLOAT, DOUBLE, BYTES, STRING, FIXED, ENUM, RECORD, UNION, ARRAY, MAP, MARK, DEFAULT, TEXT_MARK = \
    range(16)
PRIMITIVES = {"null": NULL, "boolean": BOOL, "int": LONG, "long": LONG, "float": FLOAT, "double": DOUBLE,
              "bytes": BYTES, "string": STRING}
FRESH_DICT, FRESH_LIST = 1, 2
Instr = tuple[int, int, int, int]


@dataclass
class Program:
    bodies: list[tuple[Instr, ...]]
    names: tuple[str, ...]
    consts: tuple[Any, ...]
    top: int  # the body of the top-level record


@dataclass
class _Compiler:
    defaults: dict[str, dict[str, Any]]  # record full name -> {field: default} of the newest schema
    mark: str | None
    text_field: str | None
    id_fields: frozenset[str]
    bodies: list[tuple[Instr, ...]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    consts: list[Any] = field(default_factory=list)
    named: dict[str, Any] = field(default_factory=dict)
    done: dict[tuple[str, str, bool], int] = field(default_factory=dict)

    def name(self, text: str) -> int:
        if text not in self.names:
            self.names.append(text)
        return self.names.index(text)

    def const(self, value: Any) -> int:
        self.consts.append(value)
        return len(self.consts) - 1

    def body(self, instrs: list[Instr]) -> int:
        self.bodies.append(tuple(instrs))
        return len(self.bodies) - 1

    def value(self, t: Any, key: int, sel: Selection, ns: str, is_id: bool = False) -> Instr:
        """The instruction that reads one value of type ``t`` (kept under ``key`` if >= 0);
        ``is_id``: the value of an id field (a string, or a union's string branch, gets b = 1)."""
        if isinstance(t, str):
            if t in PRIMITIVES:
                return (PRIMITIVES[t], key, 0, int(is_id and t == "string"))
            full = t if "." in t or not ns else f"{ns}.{t}"
            resolved = self.named.get(full, self.named.get(t))
            if resolved is None:
                raise ValueError(f"unknown Avro type {t!r}")
            return self.value(resolved, key, sel, ns)
        if isinstance(t, list):
            branches = [self.value(b, key, sel, ns, is_id) for b in t]
            return (UNION, key, self.body(branches), 0)
        kind = t["type"]
        if kind in ("record", "enum", "fixed"):
            full = t["name"] if "." in t["name"] else (f"{t.get('namespace', ns)}.{t['name']}"
                                                       if t.get("namespace", ns) else t["name"])
            self.named[full] = t
            inner_ns = full.rpartition(".")[0]
            if kind == "enum":
                return (ENUM, key, self.const(tuple(t["symbols"])), 0)
            if kind == "fixed":
                return (FIXED, key, int(t["size"]), 0)
            return (RECORD, key, self.record(t, full, sel, inner_ns), 0)
        if kind == "array":
            return (ARRAY, key, self.body([self.value(t["items"], 0, sel, ns)]), 0)
        if kind == "map":
            keys = -1 if not isinstance(sel, tuple) else self.const(tuple(k.encode() for k in sel))
            return (MAP, key, self.body([self.value(t["values"], 0, True, ns)]), keys)
        if kind in PRIMITIVES:
            return (PRIMITIVES[kind], key, 0, int(is_id and kind == "string"))
        raise ValueError(f"unsupported Avro type {kind!r}")

    def record(self, t: dict[str, Any], full: str, sel: Selection, ns: str, top: bool = False) -> int:
        memo = (full, repr(sel), top)
        if memo in self.done:  # a named record seen again (or a recursive one): one body
            return self.done[memo]
        at = self.done[memo] = self.body([])
        instrs: list[Instr] = []
        present = set()
        for f in t["fields"]:
            fname = f["name"]
            present.add(fname)
            sub: Selection = True if sel is True else (sel.get(fname, False) if isinstance(sel, dict) else False)
            if top and fname == self.mark:
                instrs.append((MARK, -1, 0, 0))
            key = self.name(fname) if sub is not False else -1
            around = top and fname == self.text_field
            if around:
                instrs.append((TEXT_MARK, -1, 0, 0))
            instrs.append(self.value(f["type"], key, sub if sub is not False else True, ns, fname in self.id_fields))
            if around:
                instrs.append((TEXT_MARK, -1, 1, 0))
        for fname, default in self.defaults.get(full, {}).items():
            wanted = sel is True or (isinstance(sel, dict) and sel.get(fname, False) is not False)
            if fname in present or not wanted:
                continue
            fresh = FRESH_DICT if default == {} else FRESH_LIST if default == [] else 0
            if not fresh and isinstance(default, (dict, list)):
                raise ValueError(f"{full}.{fname}: only empty containers are supported as defaults")
            instrs.append((DEFAULT, self.name(fname), self.const(default), fresh))
        self.bodies[at] = tuple(instrs)
        return at


def defaults_of(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{record full name: {field: default}} of every record in a schema (JSON, not parsed)."""
    out: dict[str, dict[str, Any]] = {}

    def walk(t: Any, ns: str) -> None:
        if isinstance(t, list):
            for x in t:
                walk(x, ns)
        elif isinstance(t, dict):
            if t.get("type") == "record":
                name = t["name"] if "." in t["name"] else f"{t.get('namespace', ns)}.{t['name']}"
                out[name] = {f["name"]: f["default"] for f in t["fields"] if "default" in f}
                for f in t["fields"]:
                    walk(f["type"], name.rsplit(".", 1)[0])
            elif t.get("type") in ("array", "map"):
                walk(t.get("items") or t.get("values"), ns)

    walk(schema, schema.get("namespace", ""))
    return out


def compile_program(writer: dict[str, Any], selection: Selection, newest: dict[str, Any] | None = None,
                    mark: str | None = None, text_field: str | None = None,
                    id_fields: frozenset[str] = frozenset()) -> Program:
    """The program reading records written with ``writer`` (JSON or fastavro-parsed), keeping
    ``selection``; ``newest`` supplies defaults for selected fields the writer lacks; ``mark``
    names a top-level field whose start offset the reader reports; ``text_field`` one whose
    text ``read_text`` delimits; ``id_fields`` the record fields (any depth) whose string
    values ``read_text`` flags as ids."""
    c = _Compiler(defaults_of(newest) if newest else {}, mark, text_field, id_fields)
    if not isinstance(writer, dict) or writer.get("type") != "record":
        raise ValueError("the top-level type must be a record")
    full = writer["name"] if "." in writer["name"] or not writer.get("namespace") else \
        f"{writer['namespace']}.{writer['name']}"
    c.named[full] = writer
    top = c.record(writer, full, selection, full.rpartition(".")[0], top=True)
    return Program(c.bodies, tuple(c.names), tuple(c.consts), top)
