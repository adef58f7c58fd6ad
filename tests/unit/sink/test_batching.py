"""The sink's batching step (RangeBatcher: replays re-form exactly the ledger's ranges) and its
commit, through their public interfaces and without a broker."""
from __future__ import annotations

import dataclasses

import pytest
from kafka_records import EVENTS as T
from kafka_records import Rec

from agentstream.sink.flush_policy import FlushPolicy
from agentstream.sink.ledger import SPLIT, OffsetRange, group_token, pending_plans
from agentstream.sink.offset_commits import OffsetCommitter
from agentstream.sink.range_batcher import RangeBatcher, insert_units
from agentstream.sink.service import Sink
from agentstream.sink.settings import SinkSettings

def batcher(partitions=(0, 1, 2), plans=None, max_rows=50_000, range_max_rows=0) -> RangeBatcher:
    return RangeBatcher([(T, p) for p in partitions], plans or {}, FlushPolicy(max_rows, 1.0, 0.05, 0.2),
                        lambda _t, _n: False, max_rows, range_max_rows)


def recs(partition: int, offsets) -> list[Rec]:
    return [Rec(o, partition) for o in offsets]


def cut(b: RangeBatcher) -> list[tuple]:
    flushes = b.cut(now=0.0)
    assert len(flushes) <= 1
    return [(c.range, c.msgs, c.replay) for f in flushes for c in f.chunks]


def test_fresh_ranges_take_everything_buffered_per_partition():
    b = batcher()
    b.add(recs(0, [5, 6, 7]) + recs(2, [0]))
    chunks = cut(b)
    assert [(c[0].partition, c[0].start, c[0].end, c[2]) for c in chunks] == [(0, 5, 7, False), (2, 0, 0, False)]
    assert chunks[0][0].first_ts_ms == 1005 and b.pending == 0


def test_records_of_partitions_not_assigned_are_dropped():
    b = batcher(partitions=(0,))
    b.add(recs(0, [1]) + recs(3, [1, 2]))
    assert b.pending == 1 and [c[0].partition for c in cut(b)] == [0]


def test_a_ledger_range_is_replayed_exactly_and_waits_until_complete():
    plan = OffsetRange(T, 0, 5, 8, 1005)
    b = batcher(plans={(T, 0): [plan]})
    b.add(recs(0, [5, 6, 7]))
    assert cut(b) == [] and b.pending == 3  # offset 8 not read again yet
    b.add(recs(0, [8, 9, 10]))
    chunks = cut(b)
    assert chunks[0][0] == plan and chunks[0][2] is True and [r.offset() for r in chunks[0][1]] == [5, 6, 7, 8]
    # what follows the replayed range is a new range of the same flush
    nxt = chunks[1][0]
    assert len(chunks) == 2 and chunks[1][2] is False and [r.offset() for r in chunks[1][1]] == [9, 10]
    assert (nxt.start, nxt.end, nxt.token) == (9, 10, f"{T}/0/9-10@1009")
    assert b.pending == 0 and cut(b) == []


def test_nothing_after_an_incomplete_ledger_range_is_cut_but_what_precedes_it_is():
    plan = OffsetRange(T, 0, 5, 8, 1005)
    b = batcher(plans={(T, 0): [plan]})
    b.add(recs(0, [3, 4, 5, 6]))
    assert [(c[0].start, c[0].end, c[2]) for c in cut(b)] == [(3, 4, False)]
    assert b.pending == 2
    b.add(recs(0, [7, 8]))
    assert [(c[0].start, c[0].end, c[2]) for c in cut(b)] == [(5, 8, True)]


def test_a_partition_is_cut_into_ranges_of_at_most_range_max_rows():
    b = batcher(range_max_rows=4)
    b.add(recs(0, range(10, 20)) + recs(1, [0, 1]))
    flush = b.cut(now=0.0)[0]
    assert [(c.range.partition, c.range.start, c.range.end, len(c.msgs)) for c in flush.chunks] == [
        (0, 10, 13, 4), (0, 14, 17, 4), (0, 18, 19, 2), (1, 0, 1, 2)]
    assert len({c.range.token for c in flush.chunks}) == 4 and b.pending == 0
    assert flush.rows == 12 and {c.flush_id for c in flush.chunks} == {flush.id}
    assert {c.flush_size for c in flush.chunks} == {4}


def test_consecutive_ledger_ranges_replay_in_one_flush_exactly_as_recorded():
    # recorded with another range_max_rows: a replay keeps the recorded boundaries
    plans = [OffsetRange(T, 0, 0, 5, 1000), OffsetRange(T, 0, 6, 7, 1006)]
    b = batcher(plans={(T, 0): plans}, range_max_rows=3)
    b.add(recs(0, range(0, 11)))
    assert [(c[0].start, c[0].end, c[2]) for c in cut(b)] == [(0, 5, True), (6, 7, True), (8, 10, False)]


def test_stale_ledger_ranges_are_ignored():
    # committed past it already, or a recreated topic whose offset 0 is a different record
    b = batcher(plans={(T, 0): [OffsetRange(T, 0, 2, 4, 1002)], (T, 1): [OffsetRange(T, 1, 0, 1, 999)]})
    b.add(recs(0, [7, 8]) + recs(1, [0, 1]))
    chunks = {c[0].partition: c for c in cut(b)}
    assert (chunks[0][0].start, chunks[0][2]) == (7, False)
    assert (chunks[1][0].start, chunks[1][0].end, chunks[1][2]) == (0, 1, False)


def test_full_at_max_rows_unless_all_of_it_waits_for_a_ledger_range_being_read_again():
    b = batcher(max_rows=4)
    b.add(recs(0, [0, 1, 2]))
    assert not b.full()
    b.add(recs(1, [0]))
    assert b.full() and b.due(now=0.0)
    cut(b)
    assert not b.full()
    # a recorded range larger than max_rows (recorded under other settings): refusing records
    # until it is cut would wait forever, so the batcher keeps taking them
    big = batcher(plans={(T, 0): [OffsetRange(T, 0, 0, 9, 1000)]}, max_rows=4)
    big.add(recs(0, range(0, 6)))
    assert not big.full() and cut(big) == []
    big.add(recs(0, range(6, 10)))
    assert [(c[0].start, c[0].end, c[2]) for c in cut(big)] == [(0, 9, True)]


class CommitLog:
    """A consumer as far as commits go: records what was committed."""

    def __init__(self):
        self.committed = []

    def commit(self, *, offsets, asynchronous):
        assert asynchronous is False
        self.committed.extend((tp.topic, tp.partition, tp.offset) for tp in offsets)


def test_commit_goes_past_the_last_range_of_each_assigned_partition():
    s = Sink(SinkSettings(topics=["events"]), client=object())
    consumer = CommitLog()
    s.commits.consumer = consumer
    s.commits.assign([(T, 0), (T, 1)])
    ranges = [OffsetRange(T, 0, 10, 13), OffsetRange(T, 0, 14, 19), OffsetRange(T, 1, 0, 1),
              OffsetRange(T, 2, 0, 5)]  # partition 2 was revoked meanwhile: not committed
    s.commit_ranges(ranges)
    assert sorted(consumer.committed) == [(T, 0, 20), (T, 1, 2)] and s.committed_ranges == 4
    health = s.health()
    assert health["last_commit_at"] is not None and health["committed_ranges"] == 4
    assert health["assigned"] == [f"{T}[0]", f"{T}[1]"]


def test_after_a_revocation_or_without_a_consumer_nothing_is_committed():
    commits = OffsetCommitter()
    commits.assign([(T, 0)])
    commits.commit([OffsetRange(T, 0, 0, 9)])  # no consumer attached yet: counted only
    assert commits.committed_ranges == 1 and commits.last_commit_at is not None
    consumer = CommitLog()
    commits.consumer = consumer
    commits.assign(())  # revoked: the next owner replays the range from the ledger
    commits.commit([OffsetRange(T, 0, 10, 19)])
    commits.commit([])
    assert consumer.committed == [] and commits.committed_ranges == 2
    commits.assign([(T, 0)])
    commits.commit([OffsetRange(T, 0, 20, 29)])
    assert consumer.committed == [(T, 0, 30)]


def test_a_failed_commit_raises_and_counts_nothing():
    class Refusing:
        def commit(self, *, offsets, asynchronous):
            from confluent_kafka import KafkaError, KafkaException

            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))

    from confluent_kafka import KafkaException

    commits = OffsetCommitter(Refusing())
    commits.assign([(T, 0)])
    with pytest.raises(KafkaException):
        commits.commit([OffsetRange(T, 0, 0, 9)])
    assert commits.committed_ranges == 0 and commits.last_commit_at is None


def test_the_path_is_chosen_by_the_flushs_rows_of_a_topic_and_a_replay_keeps_its_own():
    # the flush's new ranges of a topic go in as one insert, so Avro (a fixed cost per insert)
    # is planned when all their rows together reach avro_min_rows; a replay keeps its row's path
    replay = OffsetRange(T, 2, 0, 0, 1000, avro=False)
    b = RangeBatcher([(T, 0), (T, 1), (T, 2)], {(T, 2): [replay]}, FlushPolicy(1000, 1.0, 0.05, 0.2),
                     lambda _t, n: n >= 6, 1000, 0)
    b.add(recs(0, range(4)) + recs(1, range(2)) + recs(2, [0]))
    got = {c[0].partition: (c[0].avro, c[2]) for c in cut(b)}
    assert got == {0: (True, False), 1: (True, False), 2: (False, True)}
    b.add(recs(0, range(4, 8)) + recs(1, range(2, 3)))  # 5 rows: below the threshold together
    assert {c[0].partition: c[0].avro for c in cut(b)} == {0: False, 1: False}


def test_a_flushs_new_ranges_share_one_token_and_a_lone_range_keeps_its_own():
    b = batcher()
    b.add(recs(0, range(3)) + recs(1, range(2)))
    ranges = [c[0] for c in cut(b)]
    assert {r.flush for r in ranges} == {group_token(ranges)} and ranges[0].flush.startswith("flush:")
    b.add(recs(2, [0]))
    assert [c[0].flush for c in cut(b)] == [""]
    apart = RangeBatcher([(T, 0), (T, 1)], {}, FlushPolicy(10, 1.0, 0.05, 0.2), lambda _t, _n: False, 10, 0,
                         together=False)
    apart.add(recs(0, [0]) + recs(1, [0]))
    assert [c.range.flush for f in apart.cut(now=0.0) for c in f.chunks] == ["", ""]


def test_a_replayed_flush_is_cut_whole_once_all_its_partitions_are_read_again():
    """Its ranges wait for each other (nothing after them is cut meanwhile, and they do not
    count as buffered work), then go out in one flush, as one insert under their token."""
    first = [OffsetRange(T, 0, 0, 2, 1000), OffsetRange(T, 1, 0, 1, 1000)]
    token = group_token(first)
    plans = {(T, p): [dataclasses.replace(r, flush=token)] for p, r in enumerate(first)}
    b = batcher(partitions=(0, 1), plans=plans, max_rows=4)
    b.add(recs(0, range(0, 5)) + recs(1, [0]))
    assert cut(b) == [] and not b.full()  # partition 1's range is not all back
    b.add(recs(1, [1, 2]))
    flushes = b.cut(now=0.0)
    chunks = [(c.range.partition, c.range.start, c.range.end, c.replay) for c in flushes[0].chunks]
    assert chunks == [(0, 0, 2, True), (0, 3, 4, False), (1, 0, 1, True), (1, 2, 2, False)]
    units = insert_units(flushes[0])
    assert [[(c.range.partition, c.replay) for c in u] for u in units] == [[(0, True), (1, True)], [(0, False), (1, False)]]
    assert {c.range.flush for c in units[0]} == {token} and group_token([c.range for c in units[0]]) == token


def test_a_split_flushs_range_replays_alone():
    r = OffsetRange(T, 0, 0, 2, 1000, flush=SPLIT)
    b = batcher(partitions=(0,), plans={(T, 0): [r]})
    b.add(recs(0, range(0, 3)))
    (flush,) = b.cut(now=0.0)
    assert [[c.range for c in u] for u in insert_units(flush)] == [[r]]


class _Ledger:
    """A ClickHouse client answering pending_plans' query with fixed ledger rows."""

    def __init__(self, rows) -> None:
        self.rows = rows

    def query(self, *_a, **_kw):
        return type("Result", (), {"result_rows": self.rows})()


def test_pending_plans_keep_a_flushs_token_only_when_all_its_ranges_replay_here():
    rows = [(T, 0, 0, 9, 1, 1, [], "flush:a"), (T, 1, 0, 4, 1, 1, [], "flush:a"),  # both here, both pending
            (T, 2, 0, 9, 1, 1, [], "flush:b"), (T, 3, 0, 4, 1, 1, [], "flush:b"),  # 3 is another consumer's
            (T, 0, 10, 19, 1, 0, [], "")]
    got = pending_plans(_Ledger(rows), "g", {(T, 0): 0, (T, 1): 0, (T, 2): 0})
    assert [r.flush for r in got[(T, 0)]] == ["flush:a", ""] and got[(T, 1)][0].flush == "flush:a"
    assert got[(T, 2)][0].flush == SPLIT and (T, 3) not in got
    # a range of the flush already committed (a partial commit): the rest cannot re-form it
    got = pending_plans(_Ledger(rows[:2]), "g", {(T, 0): 0, (T, 1): 5})
    assert got[(T, 0)][0].flush == SPLIT and (T, 1) not in got
