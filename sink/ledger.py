"""Offset ranges: the batch ledger that makes a replayed insert carry the same dedup token.

A flush takes, per Kafka partition, a contiguous offset range. The range is written to
``sink_batches`` *before* its rows are inserted, and the insert's ``insert_deduplication_token``
is derived from the flush's ranges, so a retry within the process is dropped as a repeat (in
``events`` and, with ``deduplicate_blocks_in_dependent_materialized_views``, in every view
target). If the process dies after the insert but before the offset commit, the restarted sink
finds the range in the ledger, waits until it holds exactly those records again, and stores
those of them the table lacks (``replay_repair``): nothing twice, nothing lost.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

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
    # The path it was planned on (event_rows.WIRE_*: 0 Python rows, 1 the staging views, 2 rows
    # mapped in C straight into the table); ``fallback``: writer schema ids whose container was
    # refused, redone in Python. A replay takes the same path, so its tokens match.
    avro: int = 0
    fallback: tuple[int, ...] = ()
    # The dedup token of the flush this range was inserted with ('': alone). On a replay,
    # ``SPLIT`` when that insert cannot be re-formed here (pending_plans).
    flush: str = ""

    @property
    def token(self) -> str:
        return f"{self.topic}/{self.partition}/{self.start}-{self.end}@{self.first_ts_ms}"


def group_token(ranges: list[OffsetRange]) -> str:
    """The dedup token of several ranges inserted together (order-independent)."""
    joined = "|".join(sorted(r.token for r in ranges))
    return "flush:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


SPLIT = "-"

LEDGER_COLUMNS = ["consumer_group", "topic", "partition", "start_offset", "end_offset", "first_ts_ms", "row_count",
                  "avro", "fallback", "flush"]


def record_plans(client: ClickHouseClient, group: str, ranges: list[tuple[OffsetRange, int]]) -> None:
    """Records ranges (re-recording one replaces its row: ReplacingMergeTree on its start)."""
    if not ranges:
        return
    client.insert(
        "sink_batches",
        [[group, r.topic, r.partition, r.start, r.end, r.first_ts_ms, n, int(r.avro), list(r.fallback), r.flush]
         for r, n in ranges],
        column_names=LEDGER_COLUMNS,
    )


def pending_plans(client: ClickHouseClient, group: str, committed: dict[tuple[str, int], int]) -> dict[tuple[str, int], list[OffsetRange]]:
    """Ranges planned at or after each partition's committed offset, oldest first.

    ``committed`` maps (topic, partition) to the next offset to read (the committed offset).
    Ranges that start before it were committed already and need no replay. A range inserted
    with others keeps its flush's token if all of them are to be replayed here (the insert can
    be re-formed), and gets ``SPLIT`` otherwise (some went to another consumer).
    """
    out: dict[tuple[str, int], list[OffsetRange]] = {}
    if not committed:
        return out
    result = client.query(
        "SELECT topic, partition, start_offset, end_offset, first_ts_ms, avro, fallback, flush FROM sink_batches FINAL "
        "WHERE consumer_group = {g:String} AND topic IN {topics:Array(String)} "
        "ORDER BY topic, partition, start_offset",
        parameters={"g": group, "topics": sorted({t for t, _ in committed})},
    )
    here: dict[str, bool] = {}  # flush token -> every one of its ranges is pending here
    rows = []
    for topic, partition, start, end, first_ts, avro, fallback, flush in result.result_rows:
        nxt = committed.get((topic, int(partition)))
        pending = nxt is not None and int(start) >= nxt
        if flush:
            here[flush] = here.get(flush, True) and pending
        if pending:
            rows.append(OffsetRange(topic, int(partition), int(start), int(end), int(first_ts), int(avro),
                                    tuple(int(x) for x in fallback), flush))
    for r in rows:
        if r.flush and not here[r.flush]:
            r = dataclasses.replace(r, flush=SPLIT)
        out.setdefault((r.topic, r.partition), []).append(r)
    return out


def next_offsets(ranges: list[OffsetRange]) -> dict[tuple[str, int], int]:
    """Per partition, the offset to commit once ``ranges`` are stored: past the last of its ranges."""
    out: dict[tuple[str, int], int] = {}
    for r in ranges:
        out[(r.topic, r.partition)] = max(r.end + 1, out.get((r.topic, r.partition), 0))
    return out


def regroupable(r: OffsetRange) -> bool:
    """The range was inserted with others, and all of them are replayed here."""
    return bool(r.flush) and r.flush != SPLIT


def _back(buf: list[KafkaMessage], p: OffsetRange) -> bool:
    """All of ledger range ``p`` is buffered again (or it is stale, and will be dropped)."""
    if not buf:
        return False
    first = buf[0]
    if first.offset() > p.start or (first.offset() == p.start and first.timestamp()[1] != p.first_ts_ms):
        return True
    return buf[-1].offset() >= p.end


def ready_flushes(buffers: dict[tuple[str, int], list[KafkaMessage]],
                  plans: dict[tuple[str, int], list[OffsetRange]]) -> set[str]:
    """The flush tokens of pending ranges that are all read again, in every partition: such a
    flush's ranges are cut together, so its insert is re-formed with the same token."""
    status: dict[str, bool] = {}
    for key, pending in plans.items():
        buf = buffers.get(key) or []
        for p in pending:
            if regroupable(p):
                status[p.flush] = status.get(p.flush, True) and _back(buf, p)
    return {t for t, ok in status.items() if ok}


def cut_ranges(buffers: dict[tuple[str, int], list[KafkaMessage]], plans: dict[tuple[str, int], list[OffsetRange]],
               max_rows: int = 0, ready: frozenset[str] | set[str] = frozenset()
               ) -> list[tuple[OffsetRange, list[KafkaMessage], bool]]:
    """Takes the next ranges out of each partition's buffer (no I/O; the buffers and plans are
    updated in place), oldest first: each pending ledger range exactly (waiting until all of it
    has been read again: nothing after it is cut before it), otherwise what is buffered, in
    consecutive ranges of at most ``max_rows`` records (0: no limit). Returns (range, records,
    is a replay) per range; a new range is planned off the Avro path (the batcher plans the path
    per flush), a replay keeps the path its ledger row recorded. A pending range inserted with
    others waits until its flush is in ``ready`` (``ready_flushes``), so they are cut together."""
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
                if regroupable(p) and p.flush not in ready:
                    break  # nor the rest of its flush, in another partition
                take = [x for x in buf if x.offset() <= p.end]
                pending.pop(0)
                chunks.append((p, take, True))
                del buf[: len(take)]
                continue
            # a new range: records before the next ledger range, if any
            limit = max_rows if max_rows > 0 else len(buf)
            take = ([x for x in buf if x.offset() < pending[0].start] if pending else buf)[:limit]
            rng = OffsetRange(key[0], key[1], take[0].offset(), take[-1].offset(), take[0].timestamp()[1])
            chunks.append((rng, take, False))
            del buf[: len(take)]
    return chunks
