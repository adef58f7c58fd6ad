"""The sink's batching step's policy: Kafka records in, flushes of ledger ranges out (no I/O).

A ``RangeBatcher`` is made for one partition assignment, with the ledger ranges still to be
replayed for it (``ledger.pending_plans`` at assignment): a replayed range is re-formed exactly,
so its insert carries the same dedup tokens as the attempt a crash interrupted. ``Reduce``
(schemas/steps.py) drives it: records go in with ``add``, a ``Flush`` comes out when the
``FlushPolicy`` says so, and while the steps after it are busy it takes records up to
``max_rows`` buffered, then rejects (backpressure).
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from agentstream.schemas.kafka_message import KafkaMessage

from .flush_policy import FlushPolicy
from .ledger import OffsetRange, cut_ranges, group_token, ready_flushes, regroupable

if TYPE_CHECKING:  # the batcher does no I/O: the DLQ's module is not loaded for its type
    from .dlq import Rejected

Key = tuple[str, int]

_flush_ids = itertools.count(1)


@dataclass
class Chunk:
    """One range of a flush: its ledger row, its records, whether it replays a recorded range,
    and ``cell`` (the writer keeps the range's path choice there across retries)."""

    range: OffsetRange
    msgs: list[KafkaMessage]
    replay: bool
    flush_id: int = 0
    flush_size: int = 1
    cell: dict[str, OffsetRange] = field(default_factory=dict)
    # Set on the first chunk of each insert (a flush's ranges of a topic share one): the records
    # the insert rejected, and what it took (its last, successful attempt); 0 and [] on the others.
    rejected: list[Rejected] = field(default_factory=list)
    insert_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.cell.setdefault("range", self.range)


@dataclass
class Flush:
    """The ranges cut together: planned in the ledger together, committed together."""

    chunks: list[Chunk]
    id: int = field(default_factory=lambda: next(_flush_ids))

    def __post_init__(self) -> None:
        for c in self.chunks:
            c.flush_id, c.flush_size = self.id, len(self.chunks)

    @property
    def rows(self) -> int:
        return sum(len(c.msgs) for c in self.chunks)

    @property
    def ranges(self) -> list[OffsetRange]:
        return [c.range for c in self.chunks]


def insert_units(flush: Flush) -> list[list[Chunk]]:
    """The inserts of a flush: ranges that share a flush token together (a flush's new ranges of
    a topic, or a replayed flush re-formed whole), every other range alone."""
    units: list[list[Chunk]] = []
    by_token: dict[str, list[Chunk]] = {}
    for c in flush.chunks:
        if not regroupable(c.range):
            units.append([c])
        elif c.range.flush in by_token:
            by_token[c.range.flush].append(c)
        else:
            by_token[c.range.flush] = [c]
            units.append(by_token[c.range.flush])
    return units


class RangeBatcher:
    """Per-partition buffers of one assignment, cut into ledger ranges (see ``ledger.cut_ranges``).

    ``add`` takes a poll's records (records of partitions not in this assignment are dropped:
    they were revoked, and their next owner re-reads them). ``full`` once ``max_rows`` are
    buffered, unless nothing buffered can be cut (all of it waits for the rest of a ledger range
    being read again: rejecting then would wait forever)."""

    def __init__(self, assigned: list[Key], plans: dict[Key, list[OffsetRange]], policy: FlushPolicy,
                 avro_for: Callable[[str, int], int], max_rows: int, range_max_rows: int = 0,
                 together: bool = True) -> None:
        self.buffers: dict[Key, list[KafkaMessage]] = {k: [] for k in assigned}
        self.plans = {k: list(plans.get(k, [])) for k in assigned}
        self.policy = policy
        self.avro_for = avro_for
        self.max_rows = max_rows
        self.range_max_rows = range_max_rows
        self.together = together  # a flush's new ranges of a topic share one insert
        self.pending = 0
        self.oldest_at: float | None = None

    def add(self, msgs: list[KafkaMessage], now: float | None = None) -> None:
        added = 0
        for msg in msgs:
            buf = self.buffers.get((msg.topic(), msg.partition()))  # type: ignore[arg-type]
            if buf is None:
                continue
            buf.append(msg)
            added += 1
        if added:
            now = time.monotonic() if now is None else now
            self.pending += added
            self.policy.added(now)
            if self.oldest_at is None:
                self.oldest_at = now

    def polled(self, n: int) -> None:
        """After each poll of the consumer: ``n`` records came back (0: caught up)."""
        self.policy.polled(n)

    def _waiting_for_replay(self) -> int:
        """Buffered records that cannot be cut yet: a partition whose next ledger range is not
        all read again (in every partition of its flush) holds everything from its start."""
        n = 0
        ready = ready_flushes(self.buffers, self.plans)
        for key, buf in self.buffers.items():
            plans = self.plans.get(key)
            if buf and plans and (buf[-1].offset() < plans[0].end
                                  or (regroupable(plans[0]) and plans[0].flush not in ready)):
                n += sum(1 for m in buf if m.offset() >= plans[0].start)
        return n

    def full(self) -> bool:
        return self.pending >= self.max_rows and self.pending - self._waiting_for_replay() > 0

    def due(self, now: float) -> bool:
        return self.policy.due(self.pending, self.oldest_at, now)

    def cut(self, now: float, final: bool = False) -> list[Flush]:
        chunks = cut_ranges(self.buffers, self.plans, self.range_max_rows, ready_flushes(self.buffers, self.plans))
        # The path is planned per flush: its new ranges of a topic go in as one insert
        # (insert_units) under one token, recorded with each, and the Avro path's fixed cost is
        # weighed against all their rows.
        new: dict[str, list[OffsetRange]] = {}
        rows: dict[str, int] = {}
        for r, msgs, replay in chunks:
            if not replay:
                new.setdefault(r.topic, []).append(r)
                rows[r.topic] = rows.get(r.topic, 0) + len(msgs)
        plan = {topic: (self.avro_for(topic, rows[topic]), group_token(ranges) if self.together and len(ranges) > 1 else "")
                for topic, ranges in new.items()}
        chunks = [(r if replay else dataclasses.replace(r, avro=plan[r.topic][0], flush=plan[r.topic][1]), msgs, replay)
                  for r, msgs, replay in chunks]
        self.pending -= sum(len(msgs) for _r, msgs, _replay in chunks)
        self.oldest_at = now if self.pending else None
        self.policy.flushed(now)
        if not chunks:
            return []
        return [Flush([Chunk(r, msgs, replay) for r, msgs, replay in chunks])]
