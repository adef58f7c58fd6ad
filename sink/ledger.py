"""Offset ranges: the batch ledger that makes a replayed insert carry the same dedup token.

A flush takes, per Kafka partition, a contiguous offset range. The range is written to
``sink_batches`` *before* its rows are inserted, and the insert's ``insert_deduplication_token``
is derived from it. If the process dies after the insert but before the offset commit, the
restarted sink finds the range in the ledger, waits until it holds exactly those records
again, and inserts them with the same token: ClickHouse drops the repeat (in ``events`` and,
with ``deduplicate_blocks_in_dependent_materialized_views``, in every view target).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from agentstream.schemas.kafka_message import KafkaMessage

from .clickhouse_client import ClickHouseClient


@dataclass(frozen=True, order=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # inclusive: the last offset in the range
    # Kafka timestamp of the first record: offsets restart at 0 when a topic is recreated, and
    # a token made of offsets alone would then drop new rows as repeats of old ones.
    first_ts_ms: int = 0
    # Planned on the Avro fast path; ``fallback``: writer schema ids whose container ClickHouse
    # refused, redone in Python. A replay takes the same path, so its tokens match.
    avro: bool = False
    fallback: tuple[int, ...] = ()

    @property
    def token(self) -> str:
        return f"{self.topic}/{self.partition}/{self.start}-{self.end}@{self.first_ts_ms}"


LEDGER_COLUMNS = ["consumer_group", "topic", "partition", "start_offset", "end_offset", "first_ts_ms", "row_count",
                  "avro", "fallback"]


def record_plans(client: ClickHouseClient, group: str, ranges: list[tuple[OffsetRange, int]]) -> None:
    """Records ranges (re-recording one replaces its row: ReplacingMergeTree on its start)."""
    if not ranges:
        return
    client.insert(
        "sink_batches",
        [[group, r.topic, r.partition, r.start, r.end, r.first_ts_ms, n, int(r.avro), list(r.fallback)]
         for r, n in ranges],
        column_names=LEDGER_COLUMNS,
    )


def pending_plans(client: ClickHouseClient, group: str, committed: dict[tuple[str, int], int]) -> dict[tuple[str, int], list[OffsetRange]]:
    """Ranges planned at or after each partition's committed offset, oldest first.

    ``committed`` maps (topic, partition) to the next offset to read (the committed offset).
    Ranges that start before it were committed already and need no replay.
    """
    out: dict[tuple[str, int], list[OffsetRange]] = {}
    if not committed:
        return out
    result = client.query(
        "SELECT topic, partition, start_offset, end_offset, first_ts_ms, avro, fallback FROM sink_batches FINAL "
        "WHERE consumer_group = {g:String} AND topic IN {topics:Array(String)} "
        "ORDER BY topic, partition, start_offset",
        parameters={"g": group, "topics": sorted({t for t, _ in committed})},
    )
    for topic, partition, start, end, first_ts, avro, fallback in result.result_rows:
        nxt = committed.get((topic, int(partition)))
        if nxt is None or int(start) < nxt:
            continue
        out.setdefault((topic, int(partition)), []).append(OffsetRange(
            topic, int(partition), int(start), int(end), int(first_ts), bool(avro), tuple(int(x) for x in fallback)))
    return out


def next_offsets(ranges: list[OffsetRange]) -> dict[tuple[str, int], int]:
    """Per partition, the offset to commit once ``ranges`` are stored: past the last of its ranges."""
    out: dict[tuple[str, int], int] = {}
    for r in ranges:
        out[(r.topic, r.partition)] = max(r.end + 1, out.get((r.topic, r.partition), 0))
    return out


def cut_ranges(buffers: dict[tuple[str, int], list[KafkaMessage]], plans: dict[tuple[str, int], list[OffsetRange]],
               avro_for: Callable[[str, int], bool], max_rows: int = 0) -> list[tuple[OffsetRange, list[KafkaMessage], bool]]:
    """Takes the next ranges out of each partition's buffer (no I/O; the buffers and plans are
    updated in place), oldest first: each pending ledger range exactly (waiting until all of it
    has been read again: nothing after it is cut before it), otherwise what is buffered, in
    consecutive ranges of at most ``max_rows`` records (0: no limit). Returns (range, records,
    is a replay) per range; ``avro_for(topic, rows)`` says whether a new range of that topic and
    size is planned on the Avro path (a replay keeps the path its ledger row recorded)."""
    chunks = []
    for key, buf in buffers.items():
        pending = plans.get(key) or []
        while buf:
            while pending:
                p = pending[0]
                first = buf[0]
                if first.offset() > p.start or (first.offset() == p.start and first.timestamp()[1] != p.first_ts_ms):
                    pending.pop(0)  # stale: committed meanwhile, or from a recreated topic
                    continue
                break
            if pending and buf[0].offset() >= pending[0].start:
                p = pending[0]
                if buf[-1].offset() < p.end:
                    break  # not all of the ledger range is back yet
                take = [x for x in buf if x.offset() <= p.end]
                pending.pop(0)
                chunks.append((p, take, True))
                del buf[: len(take)]
                continue
            # a new range: records before the next ledger range, if any
            limit = max_rows if max_rows > 0 else len(buf)
            take = ([x for x in buf if x.offset() < pending[0].start] if pending else buf)[:limit]
            rng = OffsetRange(key[0], key[1], take[0].offset(), take[-1].offset(), take[0].timestamp()[1],
                              avro=avro_for(key[0], len(take)))
            chunks.append((rng, take, False))
            del buf[: len(take)]
    return chunks
