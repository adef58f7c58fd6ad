"""The Avro fast path: Kafka values -> Avro object containers ClickHouse reads itself.

No record is decoded, and no value is copied on its own: each Kafka value goes into the container
whole, its 5-byte Confluent header read as a leading ``fixed(5)`` field (``sink_head``) of the
container's writer schema, and is followed by one Avro ``int`` (the tenant's retention, read from
the body's second field without decoding the rest) and a 4-byte mark. So the container's writer
schema is the record's writer schema between a leading ``sink_head`` and trailing
``sink_retention_days`` and ``sink_mark`` fields. One container per writer schema id:
``Obj\\x01`` + metadata map (``avro.schema``, ``avro.codec`` = null) + 16-byte sync marker, then
one block: record count, byte size, the values and their trailers, the sync marker.

Only writer schemas whose parsing canonical form is in ``STAGED_SCHEMAS`` take this path, each
into the staging table that mirrors it exactly (Event v1: ``events_avro_staging``, migration 0005;
Event v2: ``events_avro_staging_v2``, migration 0006); a newer schema takes the Python path until
a migration stages it too.
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
from agentstream.schemas.kafka_message import KafkaMessage

from . import event_rows
from .rowbinary import Transcoder, transcoder_for

# The tables that have a fast path (by table), and which staging table each writer schema goes to.
STAGING_TABLE = {"events": "events_avro_staging"}
HEAD_FIELD = "sink_head"
HEAD_SIZE = 5  # Confluent framing: magic byte 0, then the writer schema id (4 bytes, big-endian)
RETENTION_FIELD = "sink_retention_days"
MARK_FIELD = "sink_mark"
# After each body: a record whose real length differs from what its schema says (trailing
# bytes) would shift the retention and every later record; the view refuses a wrong mark.
MARK = b"AGS1"
# sha256 of the parsing canonical form of each staged writer schema -> the staging table that
# mirrors it (a wrong pairing is refused by ClickHouse as a type error, never stored skewed).
STAGED_SCHEMAS: dict[str, str] = {
    event_rows.EVENT_V1: "events_avro_staging",  # Event v1 (id 1)
    event_rows.EVENT_V2: "events_avro_staging_v2",  # Event v2 (id 5)
}
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
    """The writer schema between the leading framing field and the trailing retention and mark
    fields, as JSON."""
    doc = json.loads(to_parsing_canonical_form(schema))
    doc["fields"] = [{"name": HEAD_FIELD, "type": {"type": "fixed", "name": "SinkHead", "size": HEAD_SIZE}},
                     *doc["fields"], {"name": RETENTION_FIELD, "type": "int"},
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
    table: str  # the staging table mirroring this writer schema
    transcoder: Transcoder | None = None  # its records as RowBinary rows (None: not built here)
    # Whether its schema is Event v2 (False: v1) for the direct path; None: not an Event it maps
    v2: bool | None = None
    parts: list[bytes] = field(default_factory=list)
    msgs: list[KafkaMessage] = field(default_factory=list)

    def data(self) -> bytes:
        body = b"".join(self.parts)
        return b"".join((self.head, zigzag(len(self.msgs)), zigzag(len(body)), body, self.sync))

    def rows(self) -> bytes:
        """The same records as RowBinary rows of the staging table; ``Refused`` if one is
        malformed (as ClickHouse refuses the container: the caller redoes it in Python)."""
        assert self.transcoder is not None
        try:
            return self.transcoder.rows(b"".join(self.parts), len(self.msgs))
        except ValueError as exc:
            raise Refused(f"a record of schema {self.schema_id} does not read as its schema says: {exc}") from exc

    def event_rows(self, runs: bool = False) -> tuple[bytes, set[bytes] | None]:
        """The same records as RowBinary rows of ``events`` (event_rows.EVENT_COLUMNS), mapped as
        the Python mapper maps them, and with ``runs`` the runs they belong to (schemas/run_keys.py;
        else None); ``Refused`` if one does not map exactly."""
        assert self.v2 is not None
        body = b"".join(self.parts)
        try:
            if runs:
                return event_rows.rows_and_runs(body, len(self.msgs), self.v2)
            return event_rows.rows(body, len(self.msgs), self.v2), None
        except ValueError as exc:
            raise Refused(f"a record of schema {self.schema_id} does not map to an events row here: {exc}") from exc


_CODE = re.compile(r"Code:\s*(\d+)")
# ClickHouse error codes that mean "this data was refused" (nothing stored): a parse or type
# error in the container, or the view's throwIf on a record the Python mapper would reject.
# Anything else (table missing, memory, network) is an outage and is retried on the same path.
DATA_ERROR_CODES = frozenset({
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 395, 1001,
})


class Refused(ValueError):
    """A container refused before ClickHouse saw it (its RowBinary transcoding failed)."""


def rejected_data(exc: BaseException) -> bool:
    if isinstance(exc, Refused):
        return True
    m = _CODE.search(str(exc))
    return m is not None and int(m.group(1)) in DATA_ERROR_CODES


class ContainerBuilder:
    """Sorts one range's messages into per-schema containers and the rest (for Python)."""

    def __init__(self, schema_for_id: Callable[[int], Any], staged: dict[str, str] = STAGED_SCHEMAS) -> None:
        self._schema_for_id = schema_for_id
        self._staged = staged
        self._heads: dict[int, tuple[bytes, bytes, str, Transcoder | None, bool | None] | None] = {}
        self._days: dict[int, bytes] = {}

    def _head(self, sid: int) -> tuple[bytes, bytes, str, Transcoder | None, bool | None] | None:
        if sid not in self._heads:
            schema = self._schema_for_id(sid)
            digest = "" if schema is None else canonical_hash(schema)
            table = self._staged.get(digest)
            if table is None:
                self._heads[sid] = None
            else:
                sync = os.urandom(16)
                doc = container_schema(schema)
                v2 = event_rows.SCHEMA_VERSION.get(digest) if event_rows.AVAILABLE else None
                self._heads[sid] = (header(doc, sync), sync, table, transcoder_for(doc), v2)
        return self._heads[sid]

    def split(self, msgs: list[KafkaMessage], days_for: Callable[[str], int]
              ) -> tuple[list[Container], list[KafkaMessage]]:
        """(containers by schema id, messages the Python path must handle).

        The sink's hot loop (every record of the fast path passes here): a container is found by
        the value's 5 framing bytes, and the tenant's trailer by the tenant's raw bytes, so the
        common record costs two dict lookups and no decoding."""
        groups: dict[bytes, Container | None] = {}
        trailers: dict[bytes, bytes | None] = {}  # tenant bytes -> retention + mark; None: not UTF-8
        rest: list[KafkaMessage] = []
        for m in msgs:
            v: Any = m.value()  # None (a tombstone) is caught below as a TypeError, not tested for
            try:
                c = groups[v[:HEAD_SIZE]]
            except KeyError:
                c = groups[v[:HEAD_SIZE]] = self._container(v)
            except TypeError:  # no value (a tombstone)
                c = None
            if c is None:
                rest.append(m)
                continue
            try:
                # the two leading strings' lengths, one varint byte each in the common case
                # (non-negative and under 64 bytes); anything else goes the careful way
                b0 = v[5]
                p = 6 + (b0 >> 1)
                b1 = v[p]
                if b0 < 0x80 and b1 < 0x80 and not (b0 | b1) & 1:
                    end = p + 1 + (b1 >> 1)
                    if end > len(v):
                        raise ValueError("string runs past the end of the record")
                    tenant = v[p + 1:end]
                else:
                    tenant = second_string(v).encode()
            except (ValueError, IndexError, UnicodeDecodeError):
                rest.append(m)  # a corrupt body: Python decodes it and says why
                continue
            try:
                t = trailers[tenant]
            except KeyError:
                t = trailers[tenant] = self._trailer(tenant, days_for)
            if t is None:
                rest.append(m)
                continue
            c.parts.append(v)
            c.parts.append(t)
            c.msgs.append(m)
        return [c for c in groups.values() if c is not None and c.msgs], rest

    def _container(self, v: bytes) -> Container | None:
        if len(v) < HEAD_SIZE + 1 or v[0] != 0:
            return None
        sid = int.from_bytes(v[1:HEAD_SIZE], "big")
        head = self._head(sid)
        return None if head is None else Container(sid, *head)

    def _trailer(self, tenant: bytes, days_for: Callable[[str], int]) -> bytes | None:
        try:
            days = days_for(tenant.decode())
        except UnicodeDecodeError:
            return None
        t = self._days.get(days)
        if t is None:
            t = self._days[days] = zigzag(days) + MARK
        return t
