"""What the embedded broker's CPU per event depends on: how many record batches it stores.

    python bench/broker_fetch_cost.py [--events 120000] [--rate 8000] [--rounds 2]

The embedded default's broker (Tansu 0.6, ``memory://``) keeps each produced record batch as one
object, and answers every fetch that finds new data by listing **every** batch object of the
partition (``tansu-storage/src/dynostore.rs``, ``fetch``): the cost of a fetch grows with the
number of batches stored, and so does the broker's CPU per event as a run goes on. How many
batches a given number of events makes depends on the producers: many producers each sending a
few records per ``linger.ms`` make many one-to-three-record batches.

Arms, alternating in one run, each on a fresh broker with a consumer reading raw as the
processors do (``fetch.wait.max.ms`` 50): the SDK as ``bench/e2e.py`` runs it (one process, 3
tenants x 4 agents = 12 ``Tracer`` s) against one ``Tracer``, the same events, paced at
``--rate``. Reported per arm: the broker's CPU per event (``/proc``), split into the first and
second half of the events (the growth), and the ratio many/one. The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_sdk import main as emit
from proc_cpu import process_cpu

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas.topics import create_topics, topic_name

PREFIX = "bfc."


def arm(tenants: int, agents: int, events: int, rate: float) -> dict:
    from confluent_kafka import Consumer

    with EmbeddedBroker() as b:
        create_topics(b.bootstrap_servers, prefix=PREFIX, partitions=4)
        done = threading.Event()
        consumed = [0]

        def read() -> None:
            c = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": "bfc",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                          "fetch.wait.max.ms": 50})
            c.subscribe([topic_name("raw", PREFIX)])
            # never stop at the high watermark (Tansu reports it short): until all are read
            deadline = None
            while consumed[0] < events:
                consumed[0] += sum(1 for m in c.consume(1000, 0.1) if m.error() is None)
                if done.is_set():
                    deadline = deadline or time.monotonic() + 60
                    if time.monotonic() > deadline:
                        break
            c.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(4)  # the consumer group's join (half the session timeout)
        half: list[float] = []
        cfg = {"bootstrap": b.bootstrap_servers, "prefix": PREFIX, "spool": tempfile.mkdtemp(),
               "tenants": [f"t{i}" for i in range(tenants)], "agents": agents, "steps": 6,
               "rate": rate}
        cpu0 = process_cpu(b.proc.pid)
        first = emit({**cfg, "events": events // 2})
        half.append(process_cpu(b.proc.pid) - cpu0)
        second = emit({**cfg, "events": events // 2})
        done.set()
        reader.join(90)
        half.append(process_cpu(b.proc.pid) - cpu0 - half[0])
        n = (first["total"], second["total"])
    return {"tracers": tenants * agents, "events": sum(n), "consumed": consumed[0],
            "broker_us_per_event": round(sum(half) / sum(n) * 1e6, 1),
            "first_half_us": round(half[0] / n[0] * 1e6, 1), "second_half_us": round(half[1] / n[1] * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=120_000)
    ap.add_argument("--rate", type=float, default=8000.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    runs: dict[str, list[dict]] = {"many": [], "one": []}
    for _ in range(a.rounds):
        for name, (t, ag) in (("many", (3, 4)), ("one", (1, 1))):
            r = arm(t, ag, a.events, a.rate)
            runs[name].append(r)
            print(f"{name:>4}: {r['tracers']:>2} tracers, broker {r['broker_us_per_event']} µs/event "
                  f"(first half {r['first_half_us']}, second {r['second_half_us']}), "
                  f"consumed {r['consumed']}/{r['events']}", file=sys.stderr, flush=True)
    ratios = [round(m["broker_us_per_event"] / o["broker_us_per_event"], 2)
              for m, o in zip(runs["many"], runs["one"])]
    print(f"broker CPU per event, many producers / one: {ratios}", file=sys.stderr)
    print(json.dumps({"events": a.events, "rate": a.rate, "ratio_many_over_one": ratios, **runs}))


if __name__ == "__main__":
    main()
