"""Output side of the hot path: a confluent-kafka producer shared by every stage.

librdkafka batches and compresses in its own threads, so producing a record costs the event loop
about a microsecond; aiokafka's pure-Python record building was the largest single cost of the
per-event faust path. ``send_batch`` returns only when every record is acknowledged, and the
caller acks (commits) the input batch after that: at-least-once, never ahead of the output.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterable

from agentstream.schemas import PARTITIONER

from .records import OutRecord


class DeliveryError(RuntimeError):
    pass


class Emitter:
    def __init__(self, bootstrap_servers: str, extra: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            # acks=all + idempotence (issue #23): an acknowledged output is on min.insync.replicas
            # brokers, and librdkafka's own retries neither duplicate nor reorder a partition's
            # records. A fatal idempotence error is not transient: the loop stops, the pod restarts.
            "enable.idempotence": True,
            "acks": "all",
            # Java/aiokafka-compatible key hashing, so run_id lands where other clients put it.
            "partitioner": PARTITIONER,
            **(extra or {}),
        })
        self._errors: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def produce_all(self, records: Iterable[OutRecord], on_delivery: Any = None) -> int:
        """Queues every record; ``on_delivery(err, msg)`` (default: collect errors for
        ``flush_sync``) runs from ``poll``/``flush``."""
        produce = self._producer.produce
        poll = self._producer.poll
        cb = on_delivery or self._on_delivery
        n = 0
        for r in records:
            # Our (str, bytes) pairs are what produce() takes; its stub types the list invariantly.
            headers: Any = r.headers or None
            while True:
                try:
                    if r.partition is None:
                        produce(r.topic, r.value, r.key, headers=headers, on_delivery=cb)
                    else:
                        produce(r.topic, r.value, r.key, partition=r.partition, headers=headers, on_delivery=cb)
                    break
                except BufferError:  # local queue full: let librdkafka drain, then retry
                    poll(0.05)
            n += 1
        return n

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush_sync(self, timeout: float = 30.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryError(f"{left} records not acknowledged within {timeout}s")
        if self._errors:
            errs, self._errors = self._errors, []
            raise DeliveryError(f"{len(errs)} records failed: {errs[:3]}")

    async def send_batch(self, records: list[OutRecord], timeout: float = 30.0) -> None:
        if not records:
            return
        self.produce_all(records)
        await asyncio.get_running_loop().run_in_executor(None, self.flush_sync, timeout)

    def close(self) -> None:
        self._producer.flush(10)
