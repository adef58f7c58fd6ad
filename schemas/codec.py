"""Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body."""
from __future__ import annotations

import io
import struct
from typing import Any, cast

import fastavro

from .catalog import SchemaCatalog, load_catalog
from .resolvers import EmbeddedResolver, SchemaResolver

MAGIC = 0
_HEADER = struct.Struct(">bI")

# The Event payload is a union of records; fastavro needs the branch named explicitly,
# otherwise it guesses by field overlap and can pick the wrong record.
KIND_TO_BRANCH = {
    "RUN_START": "agentstream.v1.RunStart",
    "RUN_END": "agentstream.v1.RunEnd",
    "STEP": "agentstream.v1.Step",
    "FAILURE": "agentstream.v1.Failure",
    "DECISION": "agentstream.v1.Decision",
    "QUALITY_SIGNAL": "agentstream.v1.QualitySignal",
    "FEEDBACK": "agentstream.v1.Feedback",
    "COMMAND_ACK": "agentstream.v1.CommandAck",
}


class DecodeError(ValueError):
    """Bytes that are not a record we can read; ``reason`` goes into the DLQ headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncodeError(ValueError):
    pass


class Codec:
    """Encodes and decodes framed records. Schemas are parsed once; lookups are dict hits."""

    def __init__(
        self, resolver: SchemaResolver | None = None, catalog: SchemaCatalog | None = None
    ) -> None:
        self.catalog = catalog or load_catalog()
        self.resolver = resolver or EmbeddedResolver(self.catalog)
        self._writers: dict[str, tuple[bytes, Any]] = {}
        self._reader_names: dict[int, str] = {}

    def _writer(self, name: str) -> tuple[bytes, Any]:
        w = self._writers.get(name)
        if w is None:
            sid = self.resolver.writer_id(name)
            w = (_HEADER.pack(MAGIC, sid), self.catalog.latest(name).parsed)
            self._writers[name] = w
        return w

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        header, schema = self._writer(name)
        buf = io.BytesIO()
        buf.write(header)
        payload = record.get("payload")
        if isinstance(payload, dict):
            record = {**record, "payload": (KIND_TO_BRANCH[record["kind"]], payload)}
        try:
            fastavro.schemaless_writer(buf, schema, record)
        except Exception as exc:  # fastavro raises many types for bad records
            raise EncodeError(f"{name}: {exc}") from exc
        return buf.getvalue()

    def schema_id(self, data: bytes) -> int:
        if len(data) < 5:
            raise DecodeError(f"record of {len(data)} bytes is shorter than the 5-byte header")
        magic, sid = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"magic byte {magic} is not the Confluent framing magic 0")
        return cast(int, sid)

    def decode(self, data: bytes | None) -> tuple[str, dict[str, Any]]:
        """Returns (record full name, record). Reads into the newest schema of that name."""
        if data is None:
            raise DecodeError("tombstone: the record has no value")
        sid = self.schema_id(data)
        writer = self.resolver.schema_for_id(sid)
        if writer is None:
            raise DecodeError(f"unknown schema id {sid}")
        name = writer["name"] if isinstance(writer, dict) else str(writer)
        reader = self.catalog.latest(name).parsed if name in self.catalog.names() else writer
        body = io.BytesIO(data[5:])
        try:
            # Same schema object: skip fastavro's resolution pass, which roughly doubles cost.
            record = fastavro.schemaless_reader(body, writer, None if reader is writer else reader)
        except Exception as exc:  # truncated or corrupt Avro body
            raise DecodeError(f"avro body does not match schema id {sid}: {exc!r}") from exc
        # A record followed by more bytes is not one record of this schema: the rest may be a
        # second record, or a body meant for another schema. The reader stops where the schema
        # ends, so without this check the rest was dropped unseen (the C readers refuse it too).
        left = len(data) - 5 - body.tell()
        if left:
            raise DecodeError(f"avro body of schema id {sid} has {left} bytes after the record")
        return cast(str, name), cast(dict[str, Any], record)

    def decode_as(self, expected: str, data: bytes | None) -> dict[str, Any]:
        name, record = self.decode(data)
        if name != expected:
            raise DecodeError(f"expected {expected}, got {name}")
        return record
