"""Every worker's own copy of every tenant's policy, read from the compacted ``policies`` topic.

Each worker reads the whole topic itself, from the beginning and for its whole life, with no
consumer group. A policy written at run time (``agentstream policy set``, ``PUT
/v1/policies``) applies on every worker within one poll.

Why not faust's GlobalTable, which this replaces: the policies topic was mirrored into the
table's changelog by one worker's agent (the one that owned the topic's partition), and every
other worker saw that changelog only through its standby stream. Faust applies a standby stream
in buffers of 1,000 records or at the next rebalance, never when idle. So a budget set at run
time applied only on one worker's partitions: `tests/integration/test_many_workers.py` caught a
tenant whose fleet partition sat on another worker, with neither its warning nor its breach
raised.

Records: the key is the tenant id and the value its Avro ``Policy``; the latest one wins, and a
tombstone deletes the policy. Alert routing, silence and state records share the topic under
NUL-led keys and are skipped. An undecodable policy is skipped and logged: the tenant keeps the
policy it had.

The API and the CLI write policies at once, and on the embedded broker a fetch can then skip a
batch (schemas/offset_gaps.py): the follower reads through an ``OffsetGapGuard``, which seeks a
partition back over a jump and reads it again (``PolicyFollower.gaps.counts``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from mode import Service

from agentstream.schemas.alerting import is_alerting_key
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek

log = logging.getLogger(__name__)


class PolicyCopy:
    """The policies as far as the topic has been read (no I/O): tenant key -> policy bytes."""

    def __init__(self, validate: Callable[[bytes], Any]) -> None:
        self._validate = validate
        self.policies: dict[bytes, bytes] = {}
        self.applied = 0
        self.undecodable = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the policies topic, in offset order."""
        if not key or is_alerting_key(key):
            return  # alert routing/silence/state records are the forwarder's, not a policy
        if not value:
            self.policies.pop(key, None)
            self.applied += 1
            return
        try:
            self._validate(value)
        except Exception as exc:  # noqa: BLE001 - a bad policy must not stop the others
            self.undecodable += 1
            log.error("ignoring undecodable policy for %r: %s", key, exc)
            return
        self.policies[key] = value  # one dict store: atomic for the threads reading it
        self.applied += 1


class PolicyFollower(Service):
    """Feeds a ``PolicyCopy`` from Kafka in a thread. ``loaded`` is set once the topic has been
    read to where it ended at start and nothing more came for ``idle_s`` (Tansu reports end
    offsets short, so the reported end alone does not mean the end). ``get`` waits for it (up to
    ``load_timeout_s``) the first time, so no event is judged under a policy not yet read."""

    def __init__(self, bootstrap_servers: str, topic: str, copy: PolicyCopy, idle_s: float = 0.5,
                 load_timeout_s: float = 60.0, gap_window_s: float = 0.5, gap_rechecks: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gaps = OffsetGapGuard(gap_window_s, gap_rechecks)
        self.bootstrap_servers, self.topic, self.copy = bootstrap_servers, topic, copy
        self.idle_s, self.load_timeout_s = idle_s, load_timeout_s
        self.loaded = threading.Event()
        self._halt = threading.Event()

    def get(self, tenant: str) -> bytes | None:
        if not self.loaded.is_set() and not self.loaded.wait(self.load_timeout_s):
            log.warning("policies not read within %.0f s: judging under what was read so far",
                        self.load_timeout_s)
            self.loaded.set()
        return self.copy.policies.get(tenant.encode())

    async def wait_loaded(self) -> None:
        """For the event loop (the fleet agent): waits without blocking it."""
        if not self.loaded.is_set():
            await asyncio.to_thread(self.loaded.wait, self.load_timeout_s)

    @Service.task
    async def _follow(self) -> None:
        await asyncio.to_thread(self.run_blocking)

    async def on_stop(self) -> None:
        self._halt.set()

    def run_blocking(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap_servers, "group.id": "agentstream-policy-follower",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "fetch.wait.max.ms": 100})
        try:
            ends: dict[int, int] | None = None
            empty: set[int] = set()
            while ends is None and not self._halt.is_set():
                md = c.list_topics(self.topic, timeout=5.0)
                t = md.topics.get(self.topic)
                if t is None or t.error is not None or not t.partitions:
                    self._halt.wait(1.0)  # not created yet: the worker waits for it
                    continue
                marks = {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5.0)
                         for p in t.partitions}
                ends = {p: high for p, (_low, high) in marks.items()}
                c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in t.partitions])
                self.gaps.assign((self.topic, p, low, high) for p, (low, high) in marks.items())
                empty = {p for p, (low, high) in marks.items() if high <= low}
            reached, quiet_since = set(empty) if ends is not None else set(), time.monotonic()
            seek = consumer_seek(c)
            while not self._halt.is_set():
                msgs = c.consume(500, 0.2)
                for m in self.gaps.admit(msgs, seek):
                    if m.error() is not None:
                        continue
                    self.copy.apply(m.key(), m.value())
                    part, off = m.partition(), m.offset()
                    if ends is not None and part is not None and off is not None and off + 1 >= ends.get(part, 0):
                        reached.add(part)
                if msgs:
                    quiet_since = time.monotonic()
                elif (not self.loaded.is_set() and ends is not None and reached >= set(ends)
                      and time.monotonic() - quiet_since >= self.idle_s):
                    self.loaded.set()
                    log.info("policies read: %d tenants", len(self.copy.policies))
        finally:
            c.close()
