"""Output side of the hot path: a confluent-kafka producer shared by every stage.

librdkafka batches and compresses in its own threads, so producing a record costs the event loop
about a microsecond; aiokafka's pure-Python record building was the largest single cost of the
per-event faust path. ``send_batch`` returns only when every record is acknowledged, and the
caller acks (commits) the input batch after that: at-least-once, never ahead of the output.

``errors_only`` (the raw loop's emitter): librdkafka reports only refused records to Python
(``delivery.report.only.error``; the binding frees a delivered record's state in C). A record
reported nowhere is known delivered once the producer's queue has been seen empty after it was
produced (``settled``): librdkafka counts a record in ``len(producer)`` until its delivery report,
error or not, has been served by ``poll``, so an empty queue means every earlier record is
acknowledged or has had its error callback run. Measured on the embedded broker: a Python
callback per record cost ~0.8 µs of the raw thread's CPU per output, the keyword arguments of
``produce`` another ~0.4.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterable

from agentstream.schemas import IDEMPOTENT_MAX_IN_FLIGHT, PARTITIONER

from .records import OutRecord


def producer_conf(bootstrap_servers: str, errors_only: bool = False, extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The worker's librdkafka producer configuration (``extra`` overrides)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        # The embedded broker (Tansu) stores and serves a batch per its bytes, and keeps every
        # batch in memory: lz4 took its produce cost from 1.71 to 0.92 us and its fetch cost from
        # 0.75 to 0.33 per event, at ~0.3 more in this producer (bench/RESULTS.md); Kafka's
        # disks and network gain the same way.
        "compression.type": "lz4",
        # acks=all + idempotence (issue #23): an acknowledged output is on min.insync.replicas
        # brokers, and librdkafka's own retries neither duplicate nor reorder a partition's
        # records. A fatal idempotence error is not transient: the loop stops, the pod restarts.
        "enable.idempotence": True,
        "acks": "all",
        # Java/aiokafka-compatible key hashing, so run_id lands where other clients put it.
        "partitioner": PARTITIONER,
        "delivery.report.only.error": errors_only,
        "max.in.flight.requests.per.connection": IDEMPOTENT_MAX_IN_FLIGHT,  # no spin on a slow broker
        **(extra or {}),
    }


class DeliveryError(RuntimeError):
    pass


class Emitter:
    def __init__(self, bootstrap_servers: str, extra: dict[str, Any] | None = None,
                 errors_only: bool = False) -> None:
        from confluent_kafka import Producer

        self.errors_only = errors_only
        self._producer = Producer(producer_conf(bootstrap_servers, errors_only, extra))
        self._errors: list[str] = []
        # Records handed to librdkafka so far, and how many of the first of them are known
        # reported (all of them, the last time the queue was seen empty).
        self.produced = 0
        self.settled = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def produce_all(self, records: Iterable[OutRecord], on_delivery: Any = None) -> int:
        """Queues every record; ``on_delivery(err, msg)`` (default: collect errors for
        ``flush_sync``) runs from ``poll``/``flush``: for every record, or with ``errors_only``
        for the refused ones only. Returns how many were queued."""
        producer = self._producer
        produce = producer.produce
        cb = on_delivery or self._on_delivery
        self.poll(0.0)  # records acknowledged meanwhile settle before these join the queue
        n = 0
        for r in records:
            # Positional: keyword arguments cost ~0.4 µs a record. (topic, value, key, partition,
            # on_delivery, -, timestamp, headers) is produce()'s order.
            partition = -1 if r.partition is None else r.partition
            # Our (str, bytes) pairs are what produce() takes; its stub types the list invariantly.
            headers: Any = r.headers
            while True:
                try:
                    if headers:
                        produce(r.topic, r.value, r.key, partition, cb, None, 0, headers)
                    else:
                        produce(r.topic, r.value, r.key, partition, cb)
                    break
                except BufferError:  # local queue full: let librdkafka drain, then retry
                    producer.poll(0.05)
            n += 1
        self.produced += n
        return n

    def poll(self, timeout: float = 0.0) -> int:
        served = self._producer.poll(timeout)
        if not len(self._producer):
            self.settled = self.produced
        return served

    def flush_sync(self, timeout: float = 30.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryError(f"{left} records not acknowledged within {timeout}s")
        self.settled = self.produced
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
