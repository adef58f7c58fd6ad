"""A replayed range stores only what its table does not already hold.

A range is replayed when the sink stopped between its insert and its offset commit. Its first
insert may have landed whole, not at all, or (a process killed inside ClickHouse's commit of the
parts) in part: a non-replicated MergeTree appends the dedup token to its log *before* it renames
the new part into place, so a kill between the two leaves the token recorded and the rows gone,
and a replay under the same token would be dropped as a repeat (reproduced in chDB by removing
the part: the replay stored nothing). The insert of a flush also spans several partitions under
one token (sink/writer.py), which a replay on another consumer could not re-form.

So a replay asks the table which of the range's records it holds, by their key (a primary-key
prefix plus the record's id: a point lookup, not a scan), and stores the rest under a token of
its own. Records that do not decode are kept for the insert, which rejects them with the reason.
"""
from __future__ import annotations

import hashlib
from typing import Any

from agentstream.schemas import Codec, DecodeError
from agentstream.schemas.kafka_message import KafkaMessage

from .ledger import OffsetRange, group_token
from .tables import TableSpec

# Keys per lookup query: the IN lists are sent as query parameters.
LOOKUP_BATCH = 2000


def record_keys(spec: TableSpec, codec: Codec, msgs: list[KafkaMessage]) -> dict[tuple[int | None, int], tuple[str, ...]]:
    """(partition, offset) -> the record's key (``spec.key_fields``), for the records that decode.
    By partition too: a replayed flush holds several partitions' ranges, whose offsets overlap."""
    out: dict[tuple[int | None, int], tuple[str, ...]] = {}
    for m in msgs:
        try:
            record = codec.decode_as(spec.schema_name, m.value())
        except DecodeError:
            continue
        key = tuple(str(record.get(f) or "") for f in spec.key_fields)
        if all(key):
            out[(m.partition(), m.offset())] = key
    return out


def held_keys(client: Any, spec: TableSpec, keys: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """Which of ``keys`` the table holds (each column filtered by IN, the tuple checked here)."""
    held: set[tuple[str, ...]] = set()
    cols = spec.key_fields
    for i in range(0, len(keys), LOOKUP_BATCH):
        batch = keys[i:i + LOOKUP_BATCH]
        where = " AND ".join(f"{c} IN {{k{n}:Array(String)}}" for n, c in enumerate(cols))
        params = {f"k{n}": sorted({k[n] for k in batch}) for n in range(len(cols))}
        result = client.query(f"SELECT DISTINCT {', '.join(cols)} FROM {spec.table} WHERE {where}",
                              parameters=params)
        wanted = set(batch)
        held.update(k for k in (tuple(str(v) for v in row) for row in result.result_rows) if k in wanted)
    return held


def missing_records(client: Any, spec: TableSpec, msgs: list[KafkaMessage],
                    keys: dict[tuple[int | None, int], tuple[str, ...]]) -> list[KafkaMessage]:
    """The records of a replayed range the table does not hold (undecodable ones included);
    ``keys``: ``record_keys`` of ``msgs`` (the caller decodes them once for this and view_repair)."""
    held = held_keys(client, spec, list(set(keys.values()))) if keys else set()
    return [m for m in msgs if (k := keys.get((m.partition(), m.offset()))) is None or k not in held]


def repair_token(ranges: list[OffsetRange], missing: list[KafkaMessage]) -> str:
    """The dedup token of a replay's insert of missing records: the same records give the same
    token, so a retry of it after an outage is still dropped as a repeat."""
    digest = hashlib.sha256(",".join(f"{m.partition()}:{m.offset()}" for m in missing).encode()).hexdigest()[:16]
    base = ranges[0].token if len(ranges) == 1 else group_token(ranges)
    return f"{base}/repair:{digest}"
