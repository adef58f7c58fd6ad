"""What the sink commits to Kafka, and for which partitions: ``OffsetCommitter``."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from .ledger import OffsetRange, next_offsets


class CommitConsumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` a commit uses."""

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> Any: ...


class OffsetCommitter:
    """Commits past stored ranges, for the partitions this group member owns.

    What callers may rely on:

    - ``commit(ranges)`` commits synchronously, for each partition still assigned, the offset
      right after the last of its ranges; the caller has stored (or dead-lettered) every
      record of ``ranges`` first, so a restart resumes after rows that are in ClickHouse.
    - A range of a partition no longer assigned is not committed: the partition's new owner
      re-forms it from the ``sink_batches`` ledger under the same dedup tokens, so its rows are
      not doubled. It still counts in ``committed_ranges`` (this member is done with it).
    - Without a ``consumer`` (before the sink's loop attaches its own, after it closes it)
      nothing reaches Kafka; the counters still move.
    - A failed commit raises (``confluent_kafka.KafkaException``) for the caller to classify;
      the counters then stay as they were.
    """

    def __init__(self, consumer: CommitConsumer | None = None) -> None:
        self.consumer = consumer
        self.assigned: frozenset[tuple[str, int]] = frozenset()
        self.committed_ranges = 0
        self.last_commit_at: float | None = None  # wall-clock time of the last commit

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The (topic, partition)s this member owns from now on (``()`` after a revocation)."""
        self.assigned = frozenset(partitions)

    def commit(self, ranges: list[OffsetRange]) -> None:
        from confluent_kafka import TopicPartition

        if not ranges:
            return
        live = [TopicPartition(t, p, nxt) for (t, p), nxt in sorted(next_offsets(ranges).items())
                if (t, p) in self.assigned]
        if live and self.consumer is not None:
            self.consumer.commit(offsets=live, asynchronous=False)
        self.committed_ranges += len(ranges)
        self.last_commit_at = time.time()
