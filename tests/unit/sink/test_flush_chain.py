"""The sink's chain of steps (sink/flush_chain.py) assembled as the sink assembles it, with its
I/O recorded instead of reaching ClickHouse and Kafka: the order of effects is the exactly-once
argument (ledger before insert, commit only after every range of the flush is stored and its
rejected records dead-lettered), checked here without a broker. The same chain against the
real broker and chDB: tests/integration/test_sink_*.py."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka_records import EVENTS as T
from kafka_records import Rec

from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded, DlqRatioGuard
from agentstream.schemas.steps import Abandoned
from agentstream.sink.dlq import DeadLetters, Rejected
from agentstream.sink.flush_chain import build_chain
from agentstream.sink.flush_policy import FlushPolicy
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.range_batcher import RangeBatcher
from agentstream.sink.retrying import RetryingMixin
from agentstream.sink.settings import SinkSettings
from agentstream.sink.tables import TABLE_SPECS

class Producer:
    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None) -> None:
        self.sent.append(value)

    def flush(self, timeout: float) -> int:
        return 0


class IO(RetryingMixin):
    """The sink's side of the chain (flush_chain.SinkIO), recording what it is asked to do."""

    def __init__(self, fail: dict[int, list[BaseException]] | None = None,
                 reject: set[int] | None = None, gate: threading.Event | None = None) -> None:
        self.settings = SinkSettings(retry_initial_s=0.001, retry_max_s=0.004)
        self.specs = {T: TABLE_SPECS["events"]}
        self.events: list[tuple] = []
        self.fail = fail or {}  # range start -> exceptions its next attempts raise
        self.reject = reject or set()  # offsets the "mapper" refuses
        self.gate = gate
        self.last_error: str | None = None
        self.dead = 0
        self.lock = threading.Lock()

    def record_plans(self, ranges):
        self.events.append(("plan", [(r.partition, r.start, r.end) for r, _n in ranges]))

    def store_chunks(self, spec, chunks):
        """One insert of ``chunks`` (a flush's new ranges together, or one replayed range)."""
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            for c in chunks:
                pending = self.fail.get(c.range.start)
                if pending:
                    raise pending.pop(0)
            kind = "repair" if any(c.replay for c in chunks) else "store"
            self.events.append((kind, [(c.range.partition, c.range.start, c.range.end) for c in chunks]))
        return [Rejected(T, c.range.partition, m.offset(), b"k", b"v", "mapper: bad") for c in chunks
                for m in c.msgs if m.offset() in self.reject]

    def commit_ranges(self, ranges):
        self.events.append(("commit", sorted((r.partition, r.start, r.end) for r in ranges)))

    def dead_lettered(self, n):
        self.dead += n
        self.events.append(("dlq", n))

    def recovered(self):
        self.last_error = None


def chain_for(io: IO, plans=None, range_max_rows=3, guard: DlqRatioGuard | None = None, stop=None,
              pool=None, per_flush=True):
    # due as soon as anything is buffered: each poll cuts what was submitted before it
    batcher = RangeBatcher([(T, 0), (T, 1)], plans or {}, FlushPolicy(1000, 0.0, 0.0, 0.0),
                           lambda _t, _n: False, 1000, range_max_rows, per_flush)
    producer = Producer()
    chain = build_chain(io, batcher, DeadLetters(producer, "dlq"), guard or DlqRatioGuard(1.0, 1000, 1),
                        io.settings.model_copy(update={"insert_workers": 2}),
                        (stop or threading.Event()).is_set, pool)
    return chain, producer


@pytest.fixture
def pool():
    p = ThreadPoolExecutor(2)
    yield p
    p.shutdown(wait=False, cancel_futures=True)


def records(partition: int, offsets) -> list[Rec]:
    return [Rec(o, partition) for o in offsets]


def kinds(io: IO) -> list[str]:
    return [e[0] for e in io.events]


def test_ranges_are_in_the_ledger_before_any_insert_and_committed_after_all_of_them(pool):
    io = IO()
    chain, _ = chain_for(io, pool=pool)
    chain.head.submit(records(0, range(0, 7)) + records(1, range(0, 2)))
    chain.head.close()
    chain.head.join()
    assert io.events[0] == ("plan", [(0, 0, 2), (0, 3, 5), (0, 6, 6), (1, 0, 1)])
    # the flush's ranges of both partitions go in as one insert (its fixed cost paid once)
    assert sorted(io.events[1][1]) == [(0, 0, 2), (0, 3, 5), (0, 6, 6), (1, 0, 1)]
    assert io.events[-1] == ("commit", [(0, 0, 2), (0, 3, 5), (0, 6, 6), (1, 0, 1)])
    assert kinds(io) == ["plan", "store", "commit"] and chain.in_flight_rows == 0


def test_with_insert_per_flush_off_each_range_is_its_own_insert(pool):
    io = IO()
    chain, _ = chain_for(io, pool=pool, per_flush=False)
    chain.head.submit(records(0, range(0, 7)) + records(1, range(0, 2)))
    chain.head.close()
    chain.head.join()
    assert sorted(e[1] for e in io.events if e[0] == "store") == [[(0, 0, 2)], [(0, 3, 5)], [(0, 6, 6)], [(1, 0, 1)]]
    assert kinds(io) == ["plan"] + ["store"] * 4 + ["commit"]


def test_a_replayed_range_is_stored_as_recorded_and_not_recorded_again(pool):
    io = IO()
    chain, _ = chain_for(io, plans={(T, 0): [OffsetRange(T, 0, 0, 4, 1000)]}, pool=pool)
    chain.head.submit(records(0, range(0, 6)))
    chain.head.close()
    chain.head.join()
    assert io.events[0] == ("plan", [(0, 5, 5)])  # only the new range after the replayed one
    # the replay is stored alone (what its table lacks), the new range in the flush's insert
    assert [e for e in io.events if e[0] in ("store", "repair")] == [("repair", [(0, 0, 4)]), ("store", [(0, 5, 5)])]


def test_a_transient_insert_failure_is_retried_and_nothing_is_committed_until_it_succeeds(pool):
    io = IO(fail={3: [ConnectionError("clickhouse down"), ConnectionError("still down")]})
    chain, _ = chain_for(io, pool=pool)
    chain.head.submit(records(0, range(0, 6)))
    seen_failing = False
    for _ in range(2000):
        chain.head.poll()
        if chain.failing:
            seen_failing = True
            assert "commit" not in kinds(io) and "down" in (io.last_error or "")
        if "commit" in kinds(io):
            break
        time.sleep(0.001)
    assert seen_failing and not chain.failing and io.last_error is None
    assert io.events[-1] == ("commit", [(0, 0, 2), (0, 3, 5)])


def test_a_bug_in_an_insert_crashes_with_the_range_and_commits_nothing(pool):
    io = IO(fail={3: [KeyError("tenant_id")]})
    chain, _ = chain_for(io, pool=pool)
    chain.head.submit(records(0, range(0, 6)))
    with pytest.raises(ConsumerCrash, match=r"events at agentstream\.events\[0\] offsets 0-2, agentstream\.events\[0\] offsets 3-5 failed with KeyError"):
        chain.head.close()
        chain.head.join()
    assert "commit" not in kinds(io)


def test_rejected_records_are_dead_lettered_before_the_commit(pool):
    io = IO(reject={1, 4})
    chain, producer = chain_for(io, pool=pool)
    chain.head.submit(records(0, range(0, 6)))
    chain.head.close()
    chain.head.join()
    assert kinds(io)[-2:] == ["dlq", "commit"] and io.dead == 2 and len(producer.sent) == 2


def test_a_mostly_rejected_flush_trips_the_guard_before_any_dead_letter_or_commit(pool):
    io = IO(reject=set(range(0, 5)))
    chain, producer = chain_for(io, guard=DlqRatioGuard(0.5, 100, 4), pool=pool)
    chain.head.submit(records(0, range(0, 6)))
    with pytest.raises(DlqRatioExceeded, match="5 of the last 6 records"):
        chain.head.close()
        chain.head.join()
    assert producer.sent == [] and "commit" not in kinds(io) and "dlq" not in kinds(io)


def test_the_next_flush_is_read_but_not_planned_while_one_is_in_flight(pool):
    gate = threading.Event()
    io = IO(gate=gate)
    chain, _ = chain_for(io, pool=pool)
    chain.head.submit(records(0, range(0, 3)))
    for _ in range(50):
        chain.head.poll()
    chain.head.submit(records(0, range(3, 6)))  # buffered meanwhile
    for _ in range(50):
        chain.head.poll()
    assert [e for e in io.events if e[0] == "plan"] == [("plan", [(0, 0, 2)])]
    assert chain.in_flight_rows == 3  # the second flush waits, cut, in front of the planner
    gate.set()
    chain.head.close()
    chain.head.join()
    assert [e[1] for e in io.events if e[0] == "commit"] == [[(0, 0, 2)], [(0, 3, 5)]]


def test_stopping_during_an_outage_abandons_the_flush_uncommitted(pool):
    stop = threading.Event()
    io = IO(fail={0: [ConnectionError("down")] * 100})
    chain, _ = chain_for(io, stop=stop, pool=pool)
    chain.head.submit(records(0, range(0, 3)))
    for _ in range(200):
        chain.head.poll()
        if chain.failing:
            break
        time.sleep(0.001)
    assert chain.failing
    stop.set()
    with pytest.raises(Abandoned):
        chain.head.close()
        chain.head.join()
    chain.head.terminate()
    assert "commit" not in kinds(io)


def test_the_policy_learns_what_the_flushs_inserts_took_once_it_is_committed(pool, monkeypatch):
    """The cost-aware gap (flush_policy) is fed the sum of the flush's insert times, after its
    commit; a clock that advances 1 s per reading makes each insert take exactly 1 s."""
    import itertools

    import agentstream.sink.flush_chain as flush_chain

    ticks = itertools.count()
    monkeypatch.setattr(flush_chain, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: float(next(ticks)))}))
    io = IO()
    chain, _ = chain_for(io, pool=pool)
    seen: list[float] = []
    stored = chain.batcher.policy.stored
    chain.batcher.policy.stored = lambda s, rows: (seen.append(s), stored(s, rows))  # type: ignore[method-assign]
    chain.head.submit(records(0, range(0, 7)) + records(1, range(0, 2)))
    chain.head.close()
    chain.head.join()
    assert kinds(io)[-1] == "commit"
    assert seen == [1.0]  # four ranges, one flush, one insert
