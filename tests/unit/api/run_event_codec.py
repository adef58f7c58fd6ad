"""Test helper: a run_events.detail as the view writes it (RowBinary, base64 as the API reads it),
from an event's fields: the inverse of api/store/runs.decode_run_event, written apart from it."""
from __future__ import annotations

import base64
import struct
from typing import Any

from agentstream.api.store.runs import RUN_EVENT_LAYOUT


def _size(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(s: str) -> bytes:
    b = s.encode()
    return _size(len(b)) + b


def _value(kind: str, v: Any) -> bytes:
    if kind == "s":
        return _text(v)
    if kind in ("u", "i", "f"):
        return struct.pack({"u": "<Q", "i": "<q", "f": "<d"}[kind], v)
    if kind == "nf":
        return b"\x01" if v is None else b"\x00" + struct.pack("<d", v)
    if kind == "nb":
        return b"\x01" if v is None else b"\x00" + bytes([bool(v)])
    if kind == "as":
        return _size(len(v)) + b"".join(_text(x) for x in v)
    return _size(len(v)) + b"".join(_text(k) + _text(x) for k, x in v.items())


def encode(ev: dict[str, Any], version: int = 1, extra: bytes = b"") -> str:
    raw = bytes([version]) + b"".join(_value(kind, ev[name]) for name, kind in RUN_EVENT_LAYOUT)
    return base64.b64encode(raw + extra).decode()
