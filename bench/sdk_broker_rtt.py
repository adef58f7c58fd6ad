"""librdkafka's CPU and the produce latency against a broker far away, by ``max_in_flight``.

    python bench/sdk_broker_rtt.py [--delays 0,10,40] [--in-flight 5,2,1] [--rate 5000] [--rounds 2]

Why: librdkafka's idempotent producer keeps one ProduceRequest in flight per partition, and
from the moment a partition's next batch has lingered (linger.ms) until the broker answers
the last one, its broker thread polls with a zero timeout. The SDK caps the requests in flight
per connection (``max_in_flight``, 2) below the partitions a broker leads, so a further
request waits in librdkafka's send queue, whose backpressure puts the thread to sleep; the
price is queueing when every partition has data and the round trip is long. This measures
both sides: the embedded Tansu broker behind a proxy that delays its answers by each
``--delays`` ms (tests/integration/slow_link.py), one producer with the SDK's configuration
(``Delivery.conf``; per-record delivery reports on, for the latency) and each ``--in-flight``,
``--rate`` records/s paced for ``--seconds`` over ``--keys`` run ids on a 4-partition topic.

Per arm: CPU of librdkafka's threads as a share of one core, librdkafka's wakeups per
ProduceRequest (its statistics), produce -> ack latency p50/p99. Arms alternate within a
round. The last line is a JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

from sdk_cpu import _rdk_cpu_s  # noqa: E402 - bench/ is not a package


def _arm(bootstrap: str, topic: str, in_flight: int, args: argparse.Namespace) -> dict:
    from confluent_kafka import Producer

    from agentstream.producer.settings import ProducerSettings
    from agentstream.producer.transport_delivery import Delivery

    stats: dict = {}

    def on_stats(js: str) -> None:
        brokers = [b for b in json.loads(js)["brokers"].values() if b["nodeid"] >= 0]
        stats["wakeups"] = sum(b["wakeups"] for b in brokers)
        stats["requests"] = sum(b["req"].get("Produce", 0) for b in brokers)

    settings = ProducerSettings(bootstrap_servers=bootstrap, max_in_flight=in_flight)
    conf = {**Delivery(settings, topic).conf(), "delivery.report.only.error": False,
            "statistics.interval.ms": 500, "stats_cb": on_stats}
    p = Producer(conf)
    p.produce(topic, b"warm-up", b"warm-up")  # connection, producer id, metadata
    p.flush(30)
    time.sleep(0.6)
    p.poll(0)
    start = dict(stats)
    lat: list[float] = []
    value = os.urandom(args.value_bytes)
    r0 = _rdk_cpu_s()
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) - t0 < args.seconds:
        due = t0 + n / args.rate
        if due > now:
            time.sleep(min(0.002, due - now))
            p.poll(0)
            continue
        p.produce(topic, value, b"run-%d" % (n % args.keys),
                  on_delivery=lambda err, msg, ts=now: lat.append(time.monotonic() - ts))
        n += 1
        if n % 64 == 0:
            p.poll(0)
    p.flush(60)
    busy_s = time.monotonic() - t0
    rdk = _rdk_cpu_s() - r0
    time.sleep(0.6)
    p.poll(0)
    del p
    gc.collect()
    lat.sort()
    req = stats["requests"] - start["requests"]
    return {"records": n, "acked": len(lat), "rdk_core_share": round(rdk / busy_s, 3),
            "wakeups_per_request": round((stats["wakeups"] - start["wakeups"]) / max(1, req), 1),
            "requests": req, "p50_ms": round(lat[len(lat) // 2] * 1e3, 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delays", default="0,10,40", help="ms added to each broker answer")
    ap.add_argument("--in-flight", default="5,2,1", help="max_in_flight arms (5 = before)")
    ap.add_argument("--rate", type=int, default=5000, help="records/s, paced")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--keys", type=int, default=97, help="run ids (spread over 4 partitions)")
    ap.add_argument("--value-bytes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from slow_link import DelayedBroker

    from agentstream.schemas import topic_name
    from agentstream.schemas.topics import create_topics

    arms = [int(x) for x in args.in_flight.split(",")]
    result: dict = {"rate": args.rate, "keys": args.keys, "seconds": args.seconds,
                    "rounds": args.rounds, "linger_ms": 20, "arms": {}}
    print(f"librdkafka vs broker round trip; {args.rate} rec/s over {args.keys} run ids, "
          f"4 partitions, linger.ms 20, {args.rounds} rounds (medians)")
    print(f"{'delay':>6}{'in flight':>10}{'rdk core':>10}{'wake/req':>10}{'req':>7}"
          f"{'p50 ms':>9}{'p99 ms':>9}")
    for delay in [float(d) for d in args.delays.split(",")]:
        b = DelayedBroker(delay / 1000).start()
        try:
            prefix = f"rtt{os.getpid()}."
            create_topics(b.bootstrap_servers, prefix=prefix, partitions=4)
            topic = topic_name("raw", prefix)
            got: dict[int, list[dict]] = {a: [] for a in arms}
            for r in range(args.rounds):
                for a in (arms if r % 2 == 0 else arms[::-1]):
                    got[a].append(_arm(b.bootstrap_servers, topic, a, args))
        finally:
            b.stop()
        for a in arms:
            med = {k: statistics.median(x[k] for x in got[a])
                   for k in ("rdk_core_share", "wakeups_per_request", "requests", "p50_ms",
                             "p99_ms")}
            lost = sum(x["records"] - x["acked"] for x in got[a])
            print(f"{delay:>6g}{a:>10}{med['rdk_core_share']:>10.3f}"
                  f"{med['wakeups_per_request']:>10.1f}{med['requests']:>7.0f}"
                  f"{med['p50_ms']:>9.1f}{med['p99_ms']:>9.1f}"
                  + (f"   {lost} not acked" if lost else ""))
            result["arms"][f"{delay:g}ms_inflight{a}"] = {**med, "not_acked": lost}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
