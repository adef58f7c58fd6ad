"""Random values of any Avro schema, for tests that must hold for every record a schema allows,
not only the ones a fixture thought of: every union branch, empty and long arrays and maps,
strings of any script (and NUL, quotes, escapes), integers at their limits, nan, infinities and
-0.0."""
from __future__ import annotations

import math
import random
import struct
from typing import Any

_TEXT = ["", "a", "plain", 'q"uote', "back\\slash", "tab\t nl\n", "nul\x00", "é", "✓", "日本語",
         "\U0001f600", "\u2028\u2029", "x" * 300]
_LONGS = [0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -2**31, 2**53, 2**63 - 1, -2**63]
_DOUBLES = [0.0, -0.0, 1.0, -1.5, 1e-300, 1e300, math.inf, -math.inf, math.nan, 0.1, 123456.789]


def datum(schema: Any, rng: random.Random, named: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A random value of ``schema`` (a parsed schema: dict, list or name)."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return datum(rng.choice(schema), rng, named, depth)
    if isinstance(schema, str):
        if schema in named:
            return datum(named[schema], rng, named, depth)
        return _primitive(schema, rng)
    kind = schema["type"]
    if isinstance(kind, (list, dict)) or kind in ("null", "boolean", "int", "long", "float", "double",
                                                   "bytes", "string"):
        return datum(kind, rng, named, depth)
    if "name" in schema:
        named[schema["name"]] = schema
    if kind == "record":
        return {f["name"]: datum(f["type"], rng, named, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "fixed":
        return bytes(rng.randrange(256) for _ in range(schema["size"]))
    n = rng.choice([0, 0, 1, 2, 3, 7]) if depth < 6 else 0
    if kind == "array":
        return [datum(schema["items"], rng, named, depth + 1) for _ in range(n)]
    if kind == "map":
        return {_text(rng) + str(i): datum(schema["values"], rng, named, depth + 1) for i in range(n)}
    raise ValueError(f"no datum for {kind!r}")


def _text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_TEXT)
    return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF),
                                   rng.randrange(0x10000, 0x10FFFF)])) for _ in range(rng.randrange(0, 40)))


def _primitive(name: str, rng: random.Random) -> Any:
    if name == "null":
        return None
    if name == "boolean":
        return rng.random() < 0.5
    if name == "int":
        return rng.choice([rng.randrange(-2**31, 2**31), *[v for v in _LONGS if -2**31 <= v < 2**31]])
    if name == "long":
        return rng.choice([rng.randrange(-2**63, 2**63), *_LONGS])
    if name == "float":
        # a float32 value (fastavro packs it; a double out of range would not round-trip)
        return struct.unpack("<f", struct.pack("<f", rng.choice(_DOUBLES[:-1] + [0.5, -2.25]) if rng.random() < 0.7
                                               else rng.uniform(-1e6, 1e6)))[0]
    if name == "double":
        return rng.choice(_DOUBLES) if rng.random() < 0.5 else rng.uniform(-1e12, 1e12)
    if name == "string":
        return _text(rng)
    if name == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
    raise ValueError(f"no datum for {name!r}")
