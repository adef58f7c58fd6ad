"""``agentstream alerts ack|resolve|reopen|silence|routing``: alerting records written to (and
read from) the compacted policies topic directly, in the contract of schemas/alerting.py.

The CLI talks to the broker, not to ClickHouse, so ``ack`` records the state of the id it is
given without checking that the alert exists (the API's routes do check)."""
from __future__ import annotations

import time
import uuid
from typing import Any

from agentstream.schemas import PARTITIONER, topic_name
from agentstream.schemas.alerting import (AlertingBook, AlertState, Matcher, Silence, encode, make_key,
                                          parse_rules, routing_doc)

from .settings import ProcessorsSettings


def now_us() -> int:
    return int(time.time() * 1_000_000)


def write_record(settings: ProcessorsSettings, key: bytes, doc: dict[str, Any] | None) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all", "partitioner": PARTITIONER})
    p.produce(topic_name("policies", settings.topic_prefix), encode(doc) if doc is not None else None, key)
    if p.flush(30):
        raise RuntimeError("the record was not acknowledged by the broker within 30 s")


def read_book(settings: ProcessorsSettings) -> AlertingBook:
    from .alert_forwarder import AlertingFollower

    f = AlertingFollower(settings)
    try:
        f.catch_up()
        return f.book
    finally:
        f.close()


def set_state(settings: ProcessorsSettings, tenant: str, alert_id: str, state: str, note: str = "",
              by: str = "cli") -> AlertState:
    st = AlertState(alert_id, state, now_us(), by, note)
    write_record(settings, make_key(tenant, "state", alert_id), st.to_doc())
    return st


def add_silence(settings: ProcessorsSettings, tenant: str, duration_s: float, alert_type: str | None = None,
                agent_id: str | None = None, severity: str | None = None, comment: str = "",
                by: str = "cli") -> Silence:
    if duration_s <= 0:
        raise ValueError("the duration must be positive")
    start = now_us()
    matcher = Matcher.from_doc({k: v for k, v in (("alert_type", alert_type), ("agent_id", agent_id),
                                                  ("severity", severity)) if v})
    s = Silence("sil-" + uuid.uuid4().hex[:16], matcher, start, start + int(duration_s * 1e6), by, comment)
    write_record(settings, make_key(tenant, "silence", s.silence_id), s.to_doc())
    return s


def expire_silence(settings: ProcessorsSettings, tenant: str, silence_id: str) -> Silence:
    current = read_book(settings).tenant(tenant).silences.get(silence_id)
    if current is None:
        raise ValueError(f"tenant {tenant} has no silence {silence_id!r}")
    s = Silence(current.silence_id, current.matcher, current.starts_us,
                max(now_us(), current.starts_us + 1), current.created_by, current.comment)
    write_record(settings, make_key(tenant, "silence", silence_id), s.to_doc())
    return s


def set_routing(settings: ProcessorsSettings, tenant: str, doc: dict[str, Any]) -> int:
    """Replaces the tenant's rules with ``doc["rules"]`` (validated first); returns their count."""
    rules = parse_rules(doc)
    write_record(settings, make_key(tenant, "routing"), routing_doc(rules, now_us()))
    return len(rules)
