"""BACKWARD compatibility: a reader on the new schema must read data written with the old one.

Structural rules follow the Avro resolution spec; ``example_record`` builds data that touches
every union branch so tests also exercise fastavro's actual resolution.
"""
from __future__ import annotations

from typing import Any, cast

PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _kind(t: Any) -> str:
    if isinstance(t, list):
        return "union"
    if isinstance(t, dict):
        return cast(str, t["type"])
    return cast(str, t)


def _name(t: Any) -> str | None:
    return t.get("name") if isinstance(t, dict) else None


def check_backward(old: Any, new: Any, path: str = "$", named: dict[str, Any] | None = None) -> list[str]:
    """Problems that stop ``new`` reading data written with ``old``; empty means compatible."""
    named = {} if named is None else named
    if isinstance(old, str) and old in named:
        old = named[old]
    if isinstance(new, str) and new in named:
        new = named[new]
    ok, nk = _kind(old), _kind(new)
    if ok == "union":
        return [p for branch in old for p in _branch_problems(branch, new, path, named)]
    if nk == "union":
        return _branch_problems(old, new, path, named)
    if ok in PROMOTIONS or ok in ("null", "boolean", "double"):
        return [] if nk in PROMOTIONS.get(ok, {ok}) else [f"{path}: {ok} cannot be read as {nk}"]
    if ok != nk:
        return [f"{path}: {ok} cannot be read as {nk}"]
    if ok == "record":
        named[old["name"]] = old
        problems = []
        old_fields = {f["name"]: f for f in old["fields"]}
        for f in new["fields"]:
            of = old_fields.get(f["name"])
            if of is None:
                if "default" not in f:
                    problems.append(f"{path}.{f['name']}: added without a default")
            else:
                problems += check_backward(of["type"], f["type"], f"{path}.{f['name']}", named)
        return problems
    if ok == "enum":
        missing = set(old["symbols"]) - set(new["symbols"])
        if missing and "default" not in new:
            return [f"{path}: enum symbols {sorted(missing)} removed without a default"]
        return []
    if ok == "array":
        return check_backward(old["items"], new["items"], path + "[]", named)
    if ok == "map":
        return check_backward(old["values"], new["values"], path + "{}", named)
    return []


def _branch_problems(branch: Any, new_union: Any, path: str, named: dict[str, Any]) -> list[str]:
    candidates = new_union if isinstance(new_union, list) else [new_union]
    for c in candidates:
        same_named = _name(branch) and _name(branch) == _name(c)
        if (same_named or _kind(branch) == _kind(c)) and not check_backward(branch, c, path, named):
            return []
    return [f"{path}: union branch {_name(branch) or _kind(branch)} has no match in the new schema"]


def example_record(schema: Any, named: dict[str, Any] | None = None, branch: int = 0) -> Any:
    """A record valid for ``schema``; ``branch`` picks which union member to fill."""
    named = {} if named is None else named
    if isinstance(schema, str) and schema in named:
        return example_record(named[schema], named, branch)
    k = _kind(schema)
    if k == "union":
        return example_record(schema[min(branch, len(schema) - 1)], named, branch)
    if k == "record":
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return {f["name"]: example_record(f["type"], named, branch) for f in schema["fields"]}
    if k == "enum":
        return schema["symbols"][0]
    if k == "array":
        return [example_record(schema["items"], named, branch)]
    if k == "map":
        return {"k": example_record(schema["values"], named, branch)}
    return {"null": None, "boolean": True, "int": 1, "long": 1, "float": 1.0, "double": 1.0,
            "string": "s", "bytes": b"b"}[k]
