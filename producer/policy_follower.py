"""The SDK's own copy of its tenant's durable action classes (``governance.durable_tools``).

A policy names action classes that must fail closed (``agentstream policy set --govern
durable_tools=payments.*``); the SDK learns them by following the compacted ``policies`` topic,
so no agent has to be redeployed, or told by hand, when the policy changes. Like the command
listener there is no consumer group: every partition is assigned from the beginning and read
for the life of the tracer; the record keyed by the tenant id is the tenant's policy (the latest
one wins, a tombstone clears it). Alert routing, silence and state records share the topic under
NUL-led keys and are skipped; an undecodable record is skipped and counted, never raised.

The API and the CLI write policies at once, and on the embedded broker a fetch can then skip a
batch (schemas/offset_gaps.py): a skipped policy left the agent on the one before it. Every
message is read through the reader's ``OffsetGapGuard`` (``PolicyFollower.gaps.counts``); the
compacted records and transaction markers the topic held when it was assigned are read again
once and settled, so a long-compacted topic costs no waiting.

``DurablePolicy`` is the state and its rules, with no I/O; ``PolicyFollower`` feeds it from Kafka.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from agentstream.schemas.offset_gaps import consumer_seek

from .commands import ReaderThread, assign_only_conf
from .durable import is_durable

log = logging.getLogger("agentstream.producer")


class DurablePolicy:
    """Which tools are durable for one tenant, as far as the policies topic has been read.

    Until the follower has caught up with the topic (``loaded``), a tool that declares an
    ``action_class`` is treated as durable: the class exists to be named by a policy, and not
    having read the policy yet is not evidence that it does not name it. Failing open there
    would let the first calls of a freshly started agent (or every call while the policies topic
    is unreachable) run high-risk actions unaudited. The cost of failing closed is only the
    bounded audit acknowledgement; with Kafka down it is ``AuditUnavailable``, which a durable
    action gets in that case anyway. A tool with no ``action_class`` is matched by name only
    once the policy is read.
    """

    def __init__(self, tenant_id: str, decode: Callable[[bytes], dict[str, Any]]) -> None:
        self.tenant_id = tenant_id
        self._key = tenant_id.encode("utf-8")
        self._decode = decode
        self.patterns: tuple[str, ...] = ()
        self.version: str | None = None
        self.loaded = threading.Event()
        self.applied = 0
        self.ignored = 0
        self.undecodable = 0

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the policies topic, in offset order."""
        if key != self._key:  # another tenant's policy, or an alerting record (NUL-led keys)
            self.ignored += 1
            return
        if not value:  # a tombstone: the tenant has no policy, so nothing is durable by class
            self.patterns, self.version = (), None
            self.applied += 1
            return
        try:
            rec = self._decode(value)
            if rec.get("tenant_id") != self.tenant_id:
                raise ValueError(f"a policy for {rec.get('tenant_id')!r} under this tenant's key")
            durable = (rec.get("governance") or {}).get("durable_tools") or ()
            patterns = tuple(str(p) for p in durable)
        except Exception:  # a corrupt record must never reach the agent
            self.undecodable += 1
            log.debug("agentstream: skipped an undecodable policy record", exc_info=True)
            return
        self.patterns, self.version = patterns, rec.get("version")
        self.applied += 1

    def durable(self, tool_name: str, action_class: str | None) -> bool:
        if not self.loaded.is_set():
            return bool(action_class)
        return bool(self.patterns) and is_durable(tool_name, action_class, self.patterns)

    def stats(self) -> dict[str, Any]:
        return {"policy_loaded": self.loaded.is_set(), "policy_version": self.version,
                "policy_durable_tools": list(self.patterns), "policy_records": self.applied,
                "policy_undecodable": self.undecodable}


class PolicyFollower(ReaderThread):
    """A daemon thread reading the policies topic into a ``DurablePolicy``.

    ``loaded`` is set once every partition has been read up to the end offsets seen at start and
    nothing more arrived for ``idle_s``: Tansu may report an end offset a little short, so the
    reported end alone is not trusted to mean the end.
    """

    def __init__(self, bootstrap_servers: str, topic: str, state: DurablePolicy,
                 session_timeout_ms: int, client_conf: dict[str, str] | None = None,
                 idle_s: float = 0.5, gap_window_s: float = 0.5, gap_rechecks: int = 2) -> None:
        self.topic, self.state, self.idle_s = topic, state, idle_s
        # a follower that cannot read leaves the policy unread: action classes stay durable
        super().__init__("agentstream-policy", "policy follower", assign_only_conf(
            bootstrap_servers, "policy", "earliest", session_timeout_ms, client_conf), gap_window_s, gap_rechecks)

    def _assign(self, consumer: Any) -> dict[int, tuple[int, int]] | None:
        """Assigns every partition from the beginning; returns each one's (low, end) offsets now."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        # short bounds: a tracer closing while the broker is away waits on them in stop()
        md = consumer.list_topics(self.topic, timeout=1.0)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        ends = {p: tuple(consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=1.0))
                for p in t.partitions}
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in t.partitions])
        # From the beginning is from the low watermark; a gap below the end offset is compaction
        # or a transaction marker already there, not the race (settled after one quick re-read).
        self.gaps.assign((self.topic, p, low if low >= 0 else None, end if end >= 0 else None)
                         for p, (low, end) in ends.items())
        return ends

    def _caught_up(self, consumer: Any, ends: dict[int, tuple[int, int]]) -> bool:
        from confluent_kafka import TopicPartition

        positions = consumer.position([TopicPartition(self.topic, p) for p in ends])
        at = {tp.partition: tp.offset for tp in positions}
        # an empty partition never gets a position; any other must have reached its end
        return all(end <= low or at.get(p, -1) >= end for p, (low, end) in ends.items())

    def _read(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        ends: dict[int, tuple[int, int]] | None = None
        while not self._stop.is_set() and ends is None:
            try:
                ends = self._assign(consumer)
            except KafkaException:  # broker or topic not there yet: retry
                ends = None
            if ends is None:
                self._stop.wait(1.0)
        last = time.monotonic()
        seek = consumer_seek(consumer)
        while not self._stop.is_set():
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                # a message held back (its partition sought back over a jump) is no idling:
                # ``loaded`` must not be set before the skipped records are read
                for m in self.gaps.admit([msg], seek):
                    self.state.apply(m.key(), m.value())
                last = time.monotonic()
            elif (ends is not None and not self.state.loaded.is_set()
                  and time.monotonic() - last >= self.idle_s and self._caught_up(consumer, ends)):
                self.state.loaded.set()
