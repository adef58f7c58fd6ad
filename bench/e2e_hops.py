"""Where a probe's latency goes, hop by hop: bench/e2e.py's latency budget per stage.

Each probe run leaves a timestamp at every hop, read after the fact so that measuring costs the
pipeline nothing:

- ``emit``: its ``with tracer.run()`` block exited (RUN_END queued in the SDK);
- ``raw``: the RUN_END record's Kafka timestamp on raw (CreateTime: the SDK's transport thread
  handed it to librdkafka, before ``linger.ms``);
- ``events``: the same record's timestamp on events (the processors produced it: after raw's
  fetch wait, the batch window and the chain);
- ``stored``: ``inserted_at`` of its row (the sink began the insert holding it: after the
  processors' linger, events' fetch wait and the flush policy);
- ``final``: the first ``GET /v1/runs/{id}`` that answered the run final (the insert itself, the
  parts becoming visible, the poll interval and the GET).

The hops between consecutive stamps are the budget's stages. The RUN_END is the run's last
record on its partition (a run's records share a key, so a partition, in order), so it is the
record with the highest offset of its key. Timestamps of different processes compare on one
machine's clock.
"""
from __future__ import annotations

import time
from typing import Callable

HOPS = (("sdk_to_raw", "emit", "raw"), ("raw_to_events", "raw", "events"),
        ("events_to_stored", "events", "stored"), ("stored_to_final", "stored", "final"))


def last_record_ms(bootstrap: str, topic: str, keys: set[str], per_key: int,
                   give_up_s: float = 30.0) -> dict[str, int]:
    """Kafka timestamp (ms) of the highest-offset record of each key in ``keys`` on ``topic``.

    Reads every partition from the start until each key has ``per_key`` records, or nothing new
    came for a few seconds after ``give_up_s`` (never stops at the high watermark: Tansu reports
    it a little short)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-hops", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        seen: dict[str, tuple[int, int, int]] = {}  # key -> (count, offset, timestamp ms)
        wanted = {k.encode(): k for k in keys}
        end = time.monotonic() + give_up_s
        quiet_since = time.monotonic()
        while time.monotonic() < end or time.monotonic() - quiet_since < 3.0:
            if all(seen.get(k, (0,))[0] >= per_key for k in keys):
                break
            msgs = c.consume(5000, 0.2)
            if msgs:
                quiet_since = time.monotonic()
            for m in msgs:
                k = wanted.get(m.key()) if m.error() is None else None
                if k is None:
                    continue
                n, off, ts = seen.get(k, (0, -1, 0))
                seen[k] = (n + 1, m.offset(), m.timestamp()[1]) if m.offset() > off else (n + 1, off, ts)
        return {k: ts for k, (_, _, ts) in seen.items()}
    finally:
        c.close()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def hop_budget(stamps: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Pure: per hop, p50/p99/max in ms over the probes that have both of the hop's stamps.

    ``stamps`` maps a probe's run id to its stamps in seconds (``emit``, ``raw``, ...)."""
    out: dict[str, dict[str, float]] = {}
    for name, a, b in HOPS:
        xs = [(s[b] - s[a]) * 1000 for s in stamps.values() if a in s and b in s]
        out[name] = {"p50_ms": round(pct(xs, 0.5), 1), "p99_ms": round(pct(xs, 0.99), 1),
                     "max_ms": round(max(xs, default=float("nan")), 1), "n": len(xs)}
    return out


def probe_stamps(bootstrap: str, prefix: str, emitted: dict[str, float], final: dict[str, float],
                 inserted: dict[str, float], events_per_run: int) -> dict[str, dict[str, float]]:
    """Every stamp of each probe (seconds since the epoch), from the topics and the given maps."""
    raw = last_record_ms(bootstrap, prefix + "raw", set(emitted), events_per_run)
    out_topic = last_record_ms(bootstrap, prefix + "events", set(emitted), events_per_run)
    stamps: dict[str, dict[str, float]] = {}
    sources: list[tuple[str, dict, Callable[[float], float]]] = [
        ("emit", emitted, float), ("raw", raw, lambda ms: ms / 1000), ("events", out_topic, lambda ms: ms / 1000),
        ("stored", inserted, float), ("final", final, float)]
    for rid in emitted:
        stamps[rid] = {name: conv(src[rid]) for name, src, conv in sources if rid in src}
    return stamps


def histogram_delta(before: dict[str, float], after: dict[str, float], name: str) -> dict[str, float]:
    """Mean and count of a Prometheus histogram between two scrapes (``name``_sum/_count)."""
    n = after.get(name + "_count", 0.0) - before.get(name + "_count", 0.0)
    s = after.get(name + "_sum", 0.0) - before.get(name + "_sum", 0.0)
    return {"n": int(n), "mean_ms": round(s / n * 1000, 1) if n else float("nan")}
