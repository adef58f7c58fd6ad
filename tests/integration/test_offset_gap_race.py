"""The embedded broker's produce race, on the real broker: producers writing one partition at once
make some fetches skip a batch (schemas/offset_gaps.py). A group consumer reading through the
guard, as the sink and the processors do, receives every record once."""
from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions

PRODUCERS, PER_PRODUCER = 8, 1500


def test_racing_producers_reach_a_guarded_consumer_whole(bootstrap: str, unique: str) -> None:
    topic = f"gap-race-{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    guard = OffsetGapGuard()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"gap-race-{unique}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10, "session.timeout.ms": 6000})
    c.subscribe([topic], on_assign=lambda cons, tps: guard.assign(start_positions(cons, tps)))
    seek = consumer_seek(c)
    got: list[tuple[int, bytes]] = []

    def produce(i: int) -> None:
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for j in range(PER_PRODUCER):
            p.produce(topic, value=f"{i}:{j}".encode(), partition=0)
            if j % 10 == 9:
                p.flush(10)  # one small batch at a time: many batches racing for the partition
        p.flush(10)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(PRODUCERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(got) < PRODUCERS * PER_PRODUCER:
        for m in guard.admit(c.consume(1000, 0.2), seek):
            if m.error() is None:
                got.append((m.offset(), m.value()))
    for t in threads:
        t.join()
    c.close()
    offsets = [o for o, _v in got]
    assert offsets == sorted(set(offsets)), "every offset once, in order"
    assert len({v for _o, v in got}) == PRODUCERS * PER_PRODUCER
    assert guard.counts.accepted == 0


def test_a_gap_the_broker_means_is_read_again_then_taken(bootstrap: str, unique: str) -> None:
    """A transactional producer's commit markers take offsets no record is delivered at (as on a
    production broker). Markers already in the partition at assignment are read again once and
    settled; markers written while the consumer reads are read again over the window, then
    accepted and counted. Nothing that was delivered is held back."""
    from confluent_kafka import TopicPartition

    topic = f"gap-txn-{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"gap-txn-{unique}"})
    p.init_transactions(15)

    def transactions(first: int, n: int) -> None:
        for k in range(first, first + n):
            p.begin_transaction()
            for j in range(5):
                p.produce(topic, value=f"{k}:{j}".encode(), partition=0)
            p.commit_transaction(15)

    transactions(0, 3)  # two markers between records before the consumer starts, one after
    guard = OffsetGapGuard(window_s=0.2, min_rechecks=2)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"gap-txn-{unique}", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, 0, 0)])
    guard.assign(start_positions(c, [TopicPartition(topic, 0)]))
    seek, got = consumer_seek(c), []

    def read_until(n: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(got) < n:
            got.extend(m.value().decode() for m in guard.admit(c.consume(100, 0.2), seek) if m.error() is None)

    read_until(15)
    assert guard.counts.settled == 2 and guard.counts.rechecks == 2 and guard.counts.accepted == 0
    transactions(3, 2)  # the marker after the third, and one between the two new ones
    read_until(25)
    c.close()
    assert got == [f"{k}:{j}" for k in range(5) for j in range(5)]
    assert guard.counts.accepted == 2 and guard.counts.accepted_records == 2
    assert guard.counts.rechecks >= 2 + 4 and guard.counts.recovered == 0
