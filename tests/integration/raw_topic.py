"""Reading the session's shared ``raw`` topic in a test: only one tenant's (or run's) records.

The session topics hold every earlier test's records, deliberately bad bytes among them, so the
reader skips what it cannot decode and counts only the records asked for. It never stops at the
high watermark (Tansu reports it short): it polls until ``expected`` records arrived, then
``settle`` seconds more to catch extras.
"""
from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.codec import DecodeError


def read_raw(bootstrap: str, prefix: str, tenant: str, expected: int, timeout: float = 30.0,
             settle: float = 1.0, run_id: str | None = None,
             event_ids: set[str] | None = None) -> list[tuple[bytes, bytes, dict]]:
    """(key, value bytes, record) of every raw record of ``tenant`` (and ``run_id`` if given).
    With ``event_ids``, it settles once all of them arrived rather than ``expected`` records."""
    topic = topic_name("raw", prefix)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    codec, out, seen = Codec(), [], set()
    deadline, settle_until = time.monotonic() + timeout, None
    try:
        while time.monotonic() < (settle_until or deadline):
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                rec = codec.decode_as(EVENT, msg.value())
            except DecodeError:
                continue
            if rec["tenant_id"] == tenant and run_id in (None, rec["run_id"]):
                out.append((msg.key(), msg.value(), rec))
                seen.add(rec["event_id"])
                done = event_ids <= seen if event_ids is not None else len(out) >= expected
                if done and settle_until is None:
                    settle_until = time.monotonic() + settle
    finally:
        c.close()
    return out
