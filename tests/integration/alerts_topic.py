"""Alerts read straight off a topic's partitions from the start (no group join to wait for), for
tests that check what the processors emitted before any sink stored it. Undecodable records are
skipped: the session topics carry other tests' deliberately bad ones."""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable

from confluent_kafka import Consumer, TopicPartition

from agentstream.schemas import ALERT, Codec, topic_name
from agentstream.schemas.codec import DecodeError

_codec = Codec()


def read_alerts(bootstrap: str, prefix: str, partitions: int, keep: Callable[[dict[str, Any]], bool],
                done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> list[dict[str, Any]]:
    """The alerts ``keep`` accepts, read until ``done`` holds for them or ``timeout`` passes."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + uuid.uuid4().hex, "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name("alerts", prefix), p, 0) for p in range(partitions)])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(found):
            for m in c.consume(200, 0.3):
                if m.error() is not None:
                    continue
                try:
                    a = _codec.decode_as(ALERT, m.value())
                except DecodeError:
                    continue
                if keep(a):
                    found.append(a)
    finally:
        c.close()
    return found
