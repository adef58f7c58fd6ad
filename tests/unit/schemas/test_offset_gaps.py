"""The offset-gap guard against a model of the embedded broker's produce race.

The model (``RacyLog``) is Tansu's dynostore as read in its source: a produce advances the
partition's high watermark, and the batch becomes fetchable a little later; a fetch returns the
stored batches at or after the fetch offset below the watermark, in offset order, skipping a
batch not stored yet. ``Reader`` is librdkafka's side: it delivers each returned record at or
after its position, moves its position past the last, and ``seek`` moves it back.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from agentstream.schemas.offset_gaps import OffsetGapGuard


@dataclass(frozen=True)
class Msg:
    t: str
    p: int
    o: int
    err: object = None

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def error(self) -> object:
        return self.err


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RacyLog:
    """Partitions of batches; ``stored_at`` is when each batch becomes fetchable."""

    def __init__(self) -> None:
        self.batches: dict[int, list[tuple[int, int, float, bool]]] = {}  # base, size, stored_at, data

    def produce(self, p: int, size: int, stored_at: float, data: bool = True) -> None:
        log = self.batches.setdefault(p, [])
        base = log[-1][0] + log[-1][1] if log else 0
        log.append((base, size, stored_at, data))

    def fetch(self, p: int, offset: int, now: float, max_batches: int) -> tuple[list[int], int]:
        """The records' offsets, and the offset after the last batch returned (a marker batch
        moves the reader on without a record, as a control batch does in librdkafka)."""
        out, end = [], offset
        for base, size, stored_at, data in self.batches.get(p, []):
            if base + size <= offset or stored_at > now:
                continue  # below the fetch offset, or not stored yet: the race skips it
            if data:
                out.extend(range(max(base, offset), base + size))
            end = base + size
            max_batches -= 1
            if max_batches == 0:
                break
        return out, end

    def data_offsets(self, p: int) -> list[int]:
        return [o for base, size, _s, data in self.batches.get(p, []) if data for o in range(base, base + size)]


class Reader:
    def __init__(self, log: RacyLog, topic: str, parts: list[int]) -> None:
        self.log, self.topic = log, topic
        self.position = {p: 0 for p in parts}
        self.seeks: list[tuple[int, int]] = []

    def consume(self, now: float, max_batches: int) -> list[Msg]:
        msgs = []
        for p in self.position:
            offs, self.position[p] = self.log.fetch(p, self.position[p], now, max_batches)
            msgs.extend(Msg(self.topic, p, o) for o in offs)
        return msgs

    def seek(self, topic: str, p: int, offset: int) -> bool:
        assert topic == self.topic
        self.seeks.append((p, offset))
        self.position[p] = offset
        return True


def drive(log: RacyLog, reader: Reader, guard: OffsetGapGuard, clock: Clock, until: float,
          step: float = 0.05) -> dict[int, list[int]]:
    """Fetch rounds every ``step`` seconds, 1-4 batches a partition each, until past ``until``
    with five rounds in a row that read nothing."""
    seen: dict[int, list[int]] = {p: [] for p in reader.position}
    rng = random.Random(7)
    empty = 0
    for _ in range(100_000):
        clock.now += step
        msgs = reader.consume(clock.now, rng.randint(1, 4))
        for m in guard.admit(msgs, reader.seek):
            seen[m.partition()].append(m.offset())
        empty = 0 if msgs else empty + 1
        if clock.now > until and empty >= 5:
            return seen
    raise AssertionError("the reader never caught up")


def racing_fleet(seed: int) -> tuple[RacyLog, list[int], float]:
    """Producers on 1-4 partitions, one batch in four stored up to 30 ms after its watermark
    moved."""
    rng = random.Random(seed)
    log, parts, t = RacyLog(), list(range(rng.randint(1, 4))), 0.0
    for _ in range(rng.randint(50, 400)):
        t += rng.expovariate(200)
        log.produce(rng.choice(parts), rng.randint(1, 50), t + rng.choice([0, 0, 0, rng.uniform(0, 0.03)]))
    return log, parts, t


@pytest.mark.parametrize("seed", range(40))
def test_racing_producers_lose_nothing(seed: int) -> None:
    """Read every 50 ms through the guard, every record is processed once, in offset order."""
    log, parts, t = racing_fleet(seed)
    clock = Clock()
    reader, guard = Reader(log, "raw", parts), OffsetGapGuard(clock=clock)
    guard.assign([("raw", p, 0) for p in parts])  # a new group starts at the log's start
    seen = drive(log, reader, guard, clock, until=t + 0.1)
    for p in parts:
        assert seen[p] == log.data_offsets(p), f"partition {p}"
    assert guard.counts.accepted == 0
    assert guard.counts.recovered <= guard.counts.rechecks


def test_the_same_fleets_read_without_the_guard_lose_records() -> None:
    """The attack the guard answers, on the same fleets: a reader that trusts the fetch loses."""
    lost, recovered = 0, 0
    for seed in range(40):
        log, parts, t = racing_fleet(seed)
        clock = Clock()
        plain = drive(log, Reader(log, "raw", parts), OffsetGapGuard(window_s=0, min_rechecks=0), clock, until=t + 0.1)
        lost += sum(len(log.data_offsets(p)) - len(plain[p]) for p in parts)
        clock = Clock()
        guard = OffsetGapGuard(clock=clock)
        guard.assign([("raw", p, 0) for p in parts])
        drive(log, Reader(log, "raw", parts), guard, clock, until=t + 0.1)
        recovered += guard.counts.recovered
    assert lost > 0 and recovered > 0


def test_a_plain_reader_loses_what_the_guard_keeps() -> None:
    """The attack, without the defence: the same race read without the guard skips records."""
    log, clock = RacyLog(), Clock()
    log.produce(0, 10, 0.0)
    log.produce(0, 5, 0.12)  # its watermark moved at 0.0; stored after the next batch
    log.produce(0, 7, 0.01)
    plain = Reader(log, "raw", [0])
    got = [m.offset() for t in (0.05, 0.10, 0.15, 0.20) for m in plain.consume(t, 4)]
    assert 10 not in got and len(got) == 17
    reader, guard = Reader(log, "raw", [0]), OffsetGapGuard(clock=clock)
    seen = drive(log, reader, guard, clock, until=0.3)
    assert seen[0] == list(range(22))
    assert guard.counts.recovered == 1 and reader.seeks == [(0, 10)] * len(reader.seeks)


def test_a_gap_that_stays_is_accepted_after_its_rechecks_and_window() -> None:
    """A transaction marker on a production broker: one offset never delivered. The guard reads
    again ``min_rechecks`` times over at least ``window_s``, then reads on and counts it."""
    log, clock = RacyLog(), Clock()
    log.produce(0, 4, 0.0)
    log.produce(0, 1, 0.0, data=False)
    log.produce(0, 3, 0.0)
    reader = Reader(log, "events", [0])
    guard = OffsetGapGuard(window_s=0.3, min_rechecks=2, clock=clock)
    seen = drive(log, reader, guard, clock, until=1.0)
    assert seen[0] == [0, 1, 2, 3, 5, 6, 7]
    assert guard.counts.accepted == 1 and guard.counts.accepted_records == 1
    assert guard.counts.rechecks >= 2 and len(reader.seeks) == guard.counts.rechecks
    assert guard.counts.recovered == 0


def test_the_rest_of_a_jumped_partition_is_held_and_other_partitions_pass() -> None:
    guard = OffsetGapGuard(clock=Clock())
    guard.assign([("raw", 0, 0), ("raw", 1, None)])
    sought = []
    msgs = [Msg("raw", 0, 0), Msg("raw", 1, 40), Msg("raw", 0, 5), Msg("raw", 1, 41), Msg("raw", 0, 6)]
    out = guard.admit(msgs, lambda t, p, o: sought.append((t, p, o)) or True)
    assert [(m.p, m.o) for m in out] == [(0, 0), (1, 40), (1, 41)]
    assert sought == [("raw", 0, 1)]
    out = guard.admit([Msg("raw", 0, 1), Msg("raw", 0, 2)], lambda *a: True)
    assert [m.o for m in out] == [1, 2] and guard.counts.recovered == 1


def test_a_committed_offset_catches_a_jump_on_the_first_read() -> None:
    guard = OffsetGapGuard(clock=Clock())
    guard.assign([("raw", 2, 100)])
    sought = []
    assert guard.admit([Msg("raw", 2, 108)], lambda t, p, o: sought.append(o) or True) == []
    assert sought == [100]


def test_a_failed_seek_reads_on_and_counts_the_gap() -> None:
    """Nothing is held back that would not come again: without a seek the records are processed."""
    guard = OffsetGapGuard(clock=Clock())
    guard.assign([("raw", 0, 0)])

    def refuse(*_a: object) -> bool:
        raise RuntimeError("Local: Erroneous state")

    out = guard.admit([Msg("raw", 0, 3), Msg("raw", 0, 4)], refuse)
    assert [m.o for m in out] == [3, 4]
    assert guard.counts.accepted == 1 and guard.counts.accepted_records == 3


def test_errors_pass_through_and_revoked_partitions_start_over() -> None:
    guard = OffsetGapGuard(clock=Clock())
    guard.assign([("raw", 0, 0)])
    eof = Msg("raw", 0, -1, err="_PARTITION_EOF")
    assert guard.admit([eof, Msg("raw", 0, 0)], lambda *a: True) == [eof, Msg("raw", 0, 0)]
    guard.forget([("raw", 0)])
    assert guard.admit([Msg("raw", 0, 50)], lambda *a: pytest.fail("no seek after a revocation")) == [Msg("raw", 0, 50)]


def test_disabled_guard_passes_everything() -> None:
    guard = OffsetGapGuard(window_s=0, min_rechecks=0)
    guard.assign([("raw", 0, 0)])
    msgs = [Msg("raw", 0, 9)]
    assert guard.admit(msgs, lambda *a: pytest.fail("disabled")) == msgs


def test_gaps_in_what_the_partition_held_at_assignment_settle_after_one_read() -> None:
    """A compacted topic on Kafka (the policies): many gaps in old data, none of them the race.
    Each is read again once, with no half-second wait, and settled, never counted as lost."""
    log, clock = RacyLog(), Clock()
    for _ in range(30):
        log.produce(0, 3, 0.0)
        log.produce(0, 2, 0.0, data=False)  # compacted away
    high = 150
    reader, guard = Reader(log, "policies", [0]), OffsetGapGuard(window_s=0.5, min_rechecks=2, clock=clock)
    guard.assign([("policies", 0, 0, high)])
    seen = drive(log, reader, guard, clock, until=0.1, step=0.01)
    assert seen[0] == log.data_offsets(0)
    assert guard.counts.settled == 29 and guard.counts.accepted == 0
    assert guard.counts.rechecks == 29  # one re-read each
    assert clock.now < 29 * 0.5  # none waited out the window


def test_a_batch_racing_at_the_assignment_is_still_read_again() -> None:
    """The high watermark read at assignment already covers a batch the broker has not stored:
    the first fetch skips it, and the one re-read finds it."""
    log, clock = RacyLog(), Clock()
    log.produce(0, 5, 0.0)
    log.produce(0, 5, 0.08)  # its watermark moved before the assignment; stored after the first fetch
    log.produce(0, 5, 0.0)
    reader, guard = Reader(log, "raw", [0]), OffsetGapGuard(clock=clock)
    guard.assign([("raw", 0, 0, 15)])
    seen = drive(log, reader, guard, clock, until=0.2)
    assert seen[0] == list(range(15))
    assert guard.counts.recovered == 1 and guard.counts.settled == 0


def test_start_positions_ask_an_absent_broker_once() -> None:
    """During an outage each lookup waits its timeout: the first failure ends the lookups, and
    the partitions left are simply not known (their first read is not checked)."""
    from types import SimpleNamespace

    from agentstream.schemas.offset_gaps import start_positions

    class Away:
        asked = 0

        def committed(self, tps, timeout):
            return [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=-1001, error=None) for tp in tps]

        def get_watermark_offsets(self, tp, timeout):
            Away.asked += 1
            raise RuntimeError("KafkaError{code=_TIMED_OUT}")

    tps = [SimpleNamespace(topic="raw", partition=p) for p in range(12)]
    assert start_positions(Away(), tps) == [("raw", p, None, None) for p in range(12)]
    assert Away.asked == 1


def test_start_positions_take_the_committed_offsets_the_caller_read() -> None:
    """The sink reads its committed offsets for its ledger anyway: no second round trip."""
    from types import SimpleNamespace

    from agentstream.schemas.offset_gaps import start_positions

    class Broker:
        def committed(self, tps, timeout):
            raise AssertionError("asked again")

        def get_watermark_offsets(self, tp, timeout):
            return 0, 90

    stored = [SimpleNamespace(topic="events", partition=0, offset=40, error=None),
              SimpleNamespace(topic="events", partition=1, offset=-1001, error=None)]
    tps = [SimpleNamespace(topic="events", partition=p) for p in (0, 1)]
    assert start_positions(Broker(), tps, committed=stored) == [("events", 0, 40, 90), ("events", 1, 0, 90)]


def test_a_guard_from_a_parts_settings() -> None:
    from types import SimpleNamespace

    from agentstream.schemas.offset_gaps import GapCounts

    shared = GapCounts()
    guard = OffsetGapGuard.from_settings(SimpleNamespace(offset_gap_window_s=0.2, offset_gap_rechecks=3), shared)
    assert (guard.window_s, guard.min_rechecks) == (0.2, 3) and guard.counts is shared
    assert OffsetGapGuard.from_settings(SimpleNamespace(offset_gap_window_s=0, offset_gap_rechecks=0)).enabled is False
