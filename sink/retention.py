"""Per-tenant retention, read from the compacted policies topic.

Rows are stamped with ``retention_days`` when stored; the table partitions by it and its TTL
deletes whole parts. A policy change applies to rows stored after the sink has read it; rows
already stored keep the retention they were written with.

The API and the CLI write policies at once, and on the embedded broker a fetch can then skip a
batch (schemas/offset_gaps.py): the follower reads through an ``OffsetGapGuard``, so a skipped
retention change is read again. Its counts are ``agentstream_sink_policies_offset_gap*``, apart
from the events' ``agentstream_sink_offset_gap*``: the policies topic is compacted, and on Kafka
its compaction gaps (settled at every start) are no loss to alert on.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from agentstream.schemas import POLICY, Codec, DecodeError
from agentstream.schemas.alerting import is_alerting_key
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, process_gap_counts, start_positions

log = logging.getLogger(__name__)

MAX_DAYS = 65_535

# Every policies follower of the process counts into one (the sink may be built more than once).
POLICY_GAP_COUNTS = process_gap_counts("agentstream_sink_policies")


class RetentionBook:
    def __init__(self, default_days: int, alert_default_days: int) -> None:
        self.default_days = default_days
        self.alert_default_days = alert_default_days
        self._days: dict[str, int] = {}
        self._lock = threading.Lock()

    def set(self, tenant_id: str, days: int | None) -> None:
        with self._lock:
            if days is None:
                self._days.pop(tenant_id, None)
            else:
                self._days[tenant_id] = max(1, min(int(days), MAX_DAYS))

    def events_days(self, tenant_id: str) -> int:
        return self._days.get(tenant_id, self.default_days)

    def alerts_days(self, tenant_id: str) -> int:
        # Alerts outlive the events that caused them unless the tenant asked for longer.
        return max(self._days.get(tenant_id, 0), self.alert_default_days)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._days)

    def apply_record(self, codec: Codec, key: bytes | None, value: bytes | None) -> None:
        """One record of the policies topic; a tombstone removes the tenant's policy."""
        if is_alerting_key(key):
            return  # alert routing/silence/state records share the topic; not a policy
        if value is None:
            if key:
                self.set(key.decode(errors="replace"), None)
            return
        try:
            policy = codec.decode_as(POLICY, value)
        except DecodeError as exc:
            log.warning("policies topic: skipping undecodable record: %s", exc.reason)
            return
        self.set(policy["tenant_id"], policy.get("retention_days"))


class PolicyFollower:
    """Reads the policies topic from the beginning with no consumer group (every sink keeps the
    whole table), polled without blocking from the sink's loop."""

    def __init__(self, conf: dict[str, Any], topic: str, book: RetentionBook, codec: Codec,
                 gaps: OffsetGapGuard | None = None) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.book = book
        self.codec = codec
        self.consumer = Consumer({**conf, "group.id": "agentstream-sink-policies",
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        meta = self.consumer.list_topics(topic, timeout=10)
        parts = meta.topics[topic].partitions if topic in meta.topics and not meta.topics[topic].error else {0: None}
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.gaps = gaps if gaps is not None else OffsetGapGuard(counts=POLICY_GAP_COUNTS)
        self.gaps.assign(start_positions(self.consumer, [TopicPartition(topic, p) for p in parts]))
        self._seek = consumer_seek(self.consumer)

    def poll(self, max_records: int = 500) -> int:
        msgs = self.consumer.consume(num_messages=max_records, timeout=0)
        for m in self.gaps.admit(msgs, self._seek):
            if m.error() is None:
                self.book.apply_record(self.codec, m.key(), m.value())
        return len(msgs)

    def close(self) -> None:
        self.consumer.close()
