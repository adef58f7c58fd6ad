"""Generates ``generated.py`` (TypedDicts and Literal enums) from the newest ``.avsc`` versions.

TypedDicts cost nothing at run time, which matters on the SDK's hot path, and fastavro reads and
writes plain dicts. Run ``python -m agentstream.schemas.codegen`` after changing a schema; a test
fails when the committed file is stale.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from .catalog import load_catalog

PRIMITIVES = {
    "string": "str", "long": "int", "int": "int", "boolean": "bool",
    "double": "float", "float": "float", "bytes": "bytes", "null": "None",
}
HEADER = '''"""Generated from schemas/avro by ``python -m agentstream.schemas.codegen``. Do not edit."""
# ruff: noqa
from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, Union
'''


class _Gen:
    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.seen: set[str] = set()

    def type_of(self, t: Any) -> str:
        if isinstance(t, str):
            return PRIMITIVES.get(t, t.rsplit(".", 1)[-1])
        if isinstance(t, list):
            parts = [self.type_of(x) for x in t]
            non_null = [p for p in parts if p != "None"]
            inner = non_null[0] if len(non_null) == 1 else f"Union[{', '.join(non_null)}]"
            return f"{inner} | None" if "None" in parts else inner
        kind = t["type"]
        if kind == "record":
            self.record(t)
            return cast(str, t["name"])
        if kind == "enum":
            self.enum(t)
            return cast(str, t["name"])
        if kind == "array":
            return f"list[{self.type_of(t['items'])}]"
        if kind == "map":
            return f"dict[str, {self.type_of(t['values'])}]"
        return PRIMITIVES[kind]

    def enum(self, t: dict[str, Any]) -> None:
        if t["name"] in self.seen:
            return
        self.seen.add(t["name"])
        syms = ", ".join(repr(s) for s in t["symbols"])
        const = "".join("_" + c if c.isupper() else c.upper() for c in t["name"]).lstrip("_")
        self.blocks.append(f"{t['name']} = Literal[{syms}]\n{const}_SYMBOLS = ({syms},)\n")

    def record(self, t: dict[str, Any]) -> None:
        if t["name"] in self.seen:
            return
        self.seen.add(t["name"])
        lines = []
        for f in t["fields"]:
            ty = self.type_of(f["type"])
            lines.append(f"    {f['name']}: {f'NotRequired[{ty}]' if 'default' in f else ty}")
        doc = f'    """{t["doc"]}"""\n\n' if t.get("doc") else ""
        self.blocks.append(f"class {t['name']}(TypedDict):\n{doc}" + "\n".join(lines) + "\n")


def render() -> str:
    catalog = load_catalog()
    gen = _Gen()
    for name in catalog.names():
        gen.type_of(json.loads(catalog.latest(name).text))
    return HEADER + "\n\n" + "\n\n".join(gen.blocks)


def target() -> Path:
    return Path(__file__).with_name("generated.py")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if target().read_text() != text:
            print("schemas/generated.py is stale: run python -m agentstream.schemas.codegen")
            return 1
        return 0
    target().write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
