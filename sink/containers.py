"""The Avro fast path: Kafka values -> Avro object containers ClickHouse reads itself.

No record is decoded. Each value's 5-byte Confluent header is stripped; the body is followed
by one Avro ``int`` (the tenant's retention, read from the body's second field without decoding
the rest) and a 4-byte mark, so the container's writer schema is the record's writer schema plus
trailing ``sink_retention_days`` and ``sink_mark`` fields. One container per writer schema id:
``Obj\\x01`` + metadata map (``avro.schema``, ``avro.codec`` = null) + 16-byte sync marker, then
one block: record count, byte size, the bodies, the sync marker.

Only writer schemas whose parsing canonical form is in ``STAGED_SCHEMAS`` take this path: the
``events_avro_staging`` table (migration 0005) mirrors exactly those, and a newer schema takes
the Python path until a migration stages it too.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from fastavro.schema import to_parsing_canonical_form

from agentstream.schemas.avro_binary import encode_long as zigzag
from agentstream.schemas.avro_binary import read_long

STAGING_TABLE = {"events": "events_avro_staging"}
RETENTION_FIELD = "sink_retention_days"
MARK_FIELD = "sink_mark"
# After each body: a record whose real length differs from what its schema says (trailing
# bytes) would shift the retention and every later record; the view refuses a wrong mark.
MARK = b"AGS1"
# sha256 of the parsing canonical form of each writer schema events_avro_staging mirrors.
STAGED_SCHEMAS: frozenset[str] = frozenset({
    "b35d70f3b8e9d1c79ac11256aebdd8ad32c1a54ce1a74a7da09bfe712654e3ef",  # agentstream.v1.Event (id 1)
})
MAGIC = b"Obj\x01"


def second_string(body: bytes, start: int = 5) -> str:
    """The second field of a record whose first two fields are strings (Event: event_id,
    tenant_id), read without decoding the rest. Raises ValueError/IndexError on a bad body."""
    n, pos = read_long(body, start)
    if n < 0:
        raise ValueError("negative string length")
    n2, pos = read_long(body, pos + n)
    if n2 < 0 or pos + n2 > len(body):
        raise ValueError("string runs past the end of the record")
    return body[pos:pos + n2].decode()


def canonical_hash(schema: Any) -> str:
    return hashlib.sha256(to_parsing_canonical_form(schema).encode()).hexdigest()


def container_schema(schema: Any) -> str:
    """The writer schema plus the trailing retention field, as JSON."""
    doc = json.loads(to_parsing_canonical_form(schema))
    doc["fields"] = [*doc["fields"], {"name": RETENTION_FIELD, "type": "int"},
                     {"name": MARK_FIELD, "type": {"type": "fixed", "name": "SinkMark", "size": len(MARK)}}]
    return json.dumps(doc, separators=(",", ":"))


def header(schema_json: str, sync: bytes) -> bytes:
    meta = {b"avro.schema": schema_json.encode(), b"avro.codec": b"null"}
    out = bytearray(MAGIC)
    out += zigzag(len(meta))
    for k, v in meta.items():
        out += zigzag(len(k)) + k + zigzag(len(v)) + v
    out += zigzag(0)
    out += sync
    return bytes(out)


@dataclass
class Container:
    """The records of one writer schema in one offset range, ready to insert."""

    schema_id: int
    head: bytes
    sync: bytes
    parts: list[bytes] = field(default_factory=list)
    msgs: list = field(default_factory=list)

    def data(self) -> bytes:
        body = b"".join(self.parts)
        return b"".join((self.head, zigzag(len(self.msgs)), zigzag(len(body)), body, self.sync))


_CODE = re.compile(r"Code:\s*(\d+)")
# ClickHouse error codes that mean "this data was refused" (nothing stored): a parse or type
# error in the container, or the view's throwIf on a record the Python mapper would reject.
# Anything else (table missing, memory, network) is an outage and is retried on the same path.
DATA_ERROR_CODES = frozenset({
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 395, 1001,
})


def rejected_data(exc: BaseException) -> bool:
    m = _CODE.search(str(exc))
    return bool(m) and int(m.group(1)) in DATA_ERROR_CODES


class ContainerBuilder:
    """Sorts one range's messages into per-schema containers and the rest (for Python)."""

    def __init__(self, schema_for_id: Callable[[int], Any], staged: frozenset[str] = STAGED_SCHEMAS) -> None:
        self._schema_for_id = schema_for_id
        self._staged = staged
        self._heads: dict[int, tuple[bytes, bytes] | None] = {}
        self._days: dict[int, bytes] = {}

    def _head(self, sid: int) -> tuple[bytes, bytes] | None:
        if sid not in self._heads:
            schema = self._schema_for_id(sid)
            if schema is None or canonical_hash(schema) not in self._staged:
                self._heads[sid] = None
            else:
                sync = os.urandom(16)
                self._heads[sid] = (header(container_schema(schema), sync), sync)
        return self._heads[sid]

    def split(self, msgs: list, days_for: Callable[[str], int]) -> tuple[list[Container], list]:
        """(containers by schema id, messages the Python path must handle)."""
        groups: dict[int, Container] = {}
        rest = []
        days_bytes = self._days
        for m in msgs:
            v = m.value()
            if v is None or len(v) < 6 or v[0] != 0:
                rest.append(m)
                continue
            sid = int.from_bytes(v[1:5], "big")
            c = groups.get(sid)
            if c is None:
                head = self._head(sid)
                if head is None:
                    rest.append(m)
                    continue
                c = groups[sid] = Container(sid, head[0], head[1])
            try:
                days = days_for(second_string(v))
            except (ValueError, IndexError, UnicodeDecodeError):
                rest.append(m)  # a corrupt body: Python decodes it and says why
                continue
            d = days_bytes.get(days)
            if d is None:
                d = days_bytes[days] = zigzag(days) + MARK
            c.parts.append(v[5:])
            c.parts.append(d)
            c.msgs.append(m)
        return [c for c in groups.values() if c.msgs], rest
