"""Helpers for agent teams' tests: read back what a tracer produced, straight from Kafka.

Reads by assigning partitions (no consumer group, so no join wait) from the beginning and
stops when every wanted run has its RUN_END or the deadline passes. It never trusts the high
watermark (the embedded broker reports it short).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterable

from agentstream.schemas import EVENT, Codec


def read_events(bootstrap_servers: str, topic: str, run_ids: Iterable[str], *,
                timeout: float = 30.0, until_run_end: bool = True, min_events: int = 0,
                codec: Codec | None = None) -> dict[str, list[dict[str, Any]]]:
    """Events per run id, in partition (= produce) order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    wanted = {r.encode() for r in run_ids}
    codec = codec or Codec()
    out: dict[str, list[dict[str, Any]]] = {r.decode(): [] for r in wanted}
    c = Consumer({"bootstrap.servers": bootstrap_servers,
                  "group.id": f"agentstream-read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    try:
        deadline = time.monotonic() + timeout
        parts = None
        while parts is None and time.monotonic() < deadline:
            t = c.list_topics(topic, timeout=5).topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                parts = list(t.partitions)
            else:
                time.sleep(0.2)
        if parts is None:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

        def done() -> bool:
            if sum(len(v) for v in out.values()) < min_events:
                return False
            if not until_run_end:
                return min_events > 0
            return all(evs and evs[-1]["kind"] == "RUN_END" for evs in out.values())

        while time.monotonic() < deadline and not done():
            msg = c.poll(0.2)
            if msg is None or msg.error() is not None or msg.key() not in wanted:
                continue
            out[msg.key().decode()].append(codec.decode_as(EVENT, msg.value()))
        return out
    finally:
        c.close()
