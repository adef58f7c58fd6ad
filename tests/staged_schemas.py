"""The container schema of every Event version the sink's fast path stages, with its table."""
from __future__ import annotations

from agentstream.schemas import Codec
from agentstream.sink.containers import STAGED_SCHEMAS, canonical_hash, container_schema


def staged_writer_schemas() -> list[tuple[int, dict]]:
    """(schema id, writer schema) of each staged writer schema in the catalogue."""
    codec = Codec()
    out = []
    for sid in range(1, 64):
        schema = codec.resolver.schema_for_id(sid)
        if schema is not None and canonical_hash(schema) in STAGED_SCHEMAS:
            out.append((sid, schema))
    assert len(out) == len(STAGED_SCHEMAS), "a staged schema is missing from the catalogue"
    return out


def staged_container_schemas() -> list[tuple[str, str]]:
    """(container schema JSON, staging table) for each staged writer schema in the catalogue."""
    return [(container_schema(s), STAGED_SCHEMAS[canonical_hash(s)]) for _, s in staged_writer_schemas()]
