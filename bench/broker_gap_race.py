"""The embedded broker's produce race, measured: records a consumer never receives, with and
without the offset-gap guard (schemas/offset_gaps.py), side by side on the same topic.

Tansu advances a partition's high watermark before it stores the produced batch; with several
producers on one partition, a fetch between the two steps skips a batch. ``--producers``
processes' worth of producers (threads, each its own connection) write small batches into one
partition while two consumers read it at once: ``plain`` trusts every fetch, ``guarded`` reads
through ``OffsetGapGuard``. Each arm reports the records it never received and the gaps it saw.

    python bench/broker_gap_race.py --producers 8 --records 3000 --rounds 3

Last line: JSON with per-round and total ``lost`` for each arm and the guard's counts.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions


def produce(bootstrap: str, topic: str, who: int, records: int, every: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for j in range(records):
        p.produce(topic, value=f"{who}:{j}".encode(), partition=0)
        if j % every == every - 1:
            p.flush(30)  # a small batch at a time: many batches racing for the partition
    p.flush(30)


def read(bootstrap: str, topic: str, guard: OffsetGapGuard | None, want: int, stop: threading.Event,
         out: dict[str, Any]) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{'guarded' if guard else 'plain'}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, 0, 0)])
    seek = consumer_seek(c)
    if guard is not None:
        guard.assign(start_positions(c, [TopicPartition(topic, 0)]))
    values: set[bytes] = set()
    jumps, last, idle_since = 0, -1, None
    while True:
        msgs = c.consume(1000, 0.1)
        if guard is not None:
            msgs = guard.admit(msgs, seek)
        for m in msgs:
            if m.error() is None:
                jumps += m.offset() > last + 1
                last = m.offset()
                values.add(m.value())
        if msgs:
            idle_since = None
        elif stop.is_set():
            idle_since = idle_since or time.monotonic()
            if len(values) >= want or time.monotonic() - idle_since > 3.0:
                break
    c.close()
    out.update(received=len(values), lost=want - len(values), jumps_delivered=jumps)


def one_round(bootstrap: str, n: int, producers: int, records: int, every: int) -> dict[str, Any]:
    topic = f"gap-race-{n}-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    want, stop = producers * records, threading.Event()
    guard = OffsetGapGuard()
    arms: dict[str, dict[str, Any]] = {"plain": {}, "guarded": {}}
    readers = [threading.Thread(target=read, args=(bootstrap, topic, None, want, stop, arms["plain"])),
               threading.Thread(target=read, args=(bootstrap, topic, guard, want, stop, arms["guarded"]))]
    writers = [threading.Thread(target=produce, args=(bootstrap, topic, i, records, every)) for i in range(producers)]
    t0 = time.monotonic()
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    arms["guarded"]["guard"] = vars(guard.counts)
    return {"records": want, "seconds": round(time.monotonic() - t0, 1), **arms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--producers", type=int, default=8)
    ap.add_argument("--records", type=int, default=3000, help="records per producer per round")
    ap.add_argument("--every", type=int, default=10, help="records per flushed batch")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    rounds = []
    with EmbeddedBroker() as broker:
        for n in range(a.rounds):
            r = one_round(broker.bootstrap_servers, n, a.producers, a.records, a.every)
            rounds.append(r)
            print(f"round {n}: {r['records']} records in {r['seconds']} s; plain lost {r['plain']['lost']} "
                  f"({r['plain']['jumps_delivered']} jumps), guarded lost {r['guarded']['lost']} "
                  f"(guard {r['guarded']['guard']})", flush=True)
    print(json.dumps({"producers": a.producers, "records": sum(r["records"] for r in rounds),
                      "plain_lost": sum(r["plain"]["lost"] for r in rounds),
                      "guarded_lost": sum(r["guarded"]["lost"] for r in rounds),
                      "guard_recovered": sum(r["guarded"]["guard"]["recovered"] for r in rounds),
                      "guard_accepted": sum(r["guarded"]["guard"]["accepted"] for r in rounds),
                      "rounds": rounds}))


if __name__ == "__main__":
    main()
