"""Shared builders for the sink's integration tests: realistic events, producing, polling."""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable


def run_events(tenant: str, run_id: str, n_steps: int = 3, agent: str = "planner", version: str = "1.0",
               now_us: int | None = None) -> list[dict[str, Any]]:
    """A complete run: RUN_START, n LLM/tool steps, a FAILURE, a DECISION, RUN_END."""
    now = now_us or int(time.time() * 1e6)
    base = dict(tenant_id=tenant, agent_id=agent, agent_version=version, environment="test", run_id=run_id,
                sdk_version="0.1.0", attributes={"team": "core"})
    evs = []

    def add(kind: str, payload: dict[str, Any]) -> None:
        seq = len(evs)
        evs.append(dict(base, event_id=str(uuid.uuid4()), seq=seq, ts_us=now + seq * 1000,
                        emitted_us=now + seq * 1000, kind=kind, payload=payload))

    add("RUN_START", {"entrypoint": "answer_question"})
    for i in range(n_steps):
        if i % 2 == 0:
            add("STEP", {"step_id": f"s{i}", "step_kind": "LLM", "name": "chat", "status": "OK",
                         "started_us": now, "latency_ms": 100.0 + i, "attempt": 1,
                         "llm": {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 10,
                                 "output_tokens": 5, "cost_usd": 0.01, "finish_reasons": ["stop"]}})
        else:
            add("STEP", {"step_id": f"s{i}", "step_kind": "TOOL", "name": "search", "status": "ERROR",
                         "started_us": now, "latency_ms": 20.0, "attempt": 2, "retry_of": f"s{i-1}",
                         "tool": {"tool_name": "search", "args_digest": "abc"}})
    add("FAILURE", {"failure_type": "TOOL", "failure_code": "timeout", "step_id": "s1", "retryable": True})
    add("DECISION", {"decision_type": "tool_selection", "selected": "search", "candidates": ["search", "calc"],
                     "reason_code": "best_match", "confidence": 0.8})
    add("QUALITY_SIGNAL", {"signal_type": "schema", "signal_code": "valid", "value": True})
    add("RUN_END", {"status": "SUCCESS", "started_us": now, "duration_ms": 1234.5, "step_count": n_steps,
                    "input_tokens": 10 * ((n_steps + 1) // 2), "output_tokens": 5 * ((n_steps + 1) // 2),
                    "cost_usd": 0.01 * ((n_steps + 1) // 2)})
    return evs


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in records:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0


def wait_for(predicate: Callable[[], Any], deadline_s: float = 60.0, what: str = "condition") -> Any:
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; last value {last!r}")


def committed(bootstrap: str, group: str, topic: str, partitions: int = 2) -> int:
    """The sum of ``group``'s committed offsets over ``topic``'s partitions (0 where none)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(0, tp.offset) for tp in tps)
    finally:
        c.close()


def own_topics(bootstrap: str, partitions: int = 4) -> str:
    """A prefix with the catalog's topics created fresh under it. A sink or stack that reads from
    the start must not first drain everything earlier tests put on the session's topics (tens of
    thousands of events by the time the sink tests run in one process)."""
    from agentstream.schemas.topics import create_topics

    prefix = "o" + uuid.uuid4().hex[:8] + "."
    create_topics(bootstrap, prefix=prefix, partitions=partitions)
    return prefix


class Msg:
    """The slice of confluent_kafka.Message the sink reads."""

    def __init__(self, value: bytes, offset: int, topic: str = "t.events", partition: int = 0) -> None:
        self._v, self._o, self._t, self._p = value, offset, topic, partition

    def value(self): return self._v
    def key(self): return b"k"
    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
