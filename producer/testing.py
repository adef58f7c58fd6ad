"""Helpers for agent teams' tests.

- ``InMemoryTransport``: test an instrumented agent without Kafka. A tracer built on it runs
  the SDK's whole path (queue, worker, encoding, the outage spool) and "delivers" to memory,
  where the test reads the events back decoded, like OpenTelemetry's ``InMemorySpanExporter``.
- ``read_events``: read back what a tracer produced, straight from a real Kafka topic.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from types import SimpleNamespace
from typing import Any, Callable, Iterable

from agentstream.schemas import EVENT, Codec

from .tracer import Tracer


class InMemoryTransport:
    """Kafka, as far as a ``Tracer`` can tell, kept in this process's memory.

    ``memory.tracer(...)`` (or ``Tracer(..., producer_factory=memory.producer_factory)``)
    builds a tracer whose records land here instead of in a topic. Everything before the
    broker is the real SDK: the bounded queue, the worker thread, the wire encoding, sampling,
    redaction by capture policy, and the disk spool. Guarantees:

    - ``tracer.flush()`` returning True means every event emitted before it is readable here.
    - ``events()`` returns them decoded with the same codec the pipeline uses (so a test sees
      exactly what the stream processors would), in produce order, which within one run is
      ``seq`` order - also across a simulated outage.
    - ``set_reachable(False)`` simulates a broker outage: deliveries fail and metadata probes
      fail, so the tracer spools to its ``spool_dir`` (give it a temporary directory) and
      replays once ``set_reachable(True)``; nothing is lost or duplicated.
    - ``fail_next(code)`` makes the broker answer the next delivery with that librdkafka error
      code: a refusal for good (``10``, MSG_SIZE_TOO_LARGE) is dropped and counted in
      ``stats()["rejected"]``; an outage (``-192``, _MSG_TIMED_OUT) is spooled and replayed.
    - Thread-safe: tracers on several threads (or several tracers) may share one instance.
    """

    def __init__(self, codec: Codec | None = None) -> None:
        self._codec = codec or Codec()
        self._lock = threading.Lock()
        self._records: list[tuple[str, bytes, bytes]] = []
        self._reachable = True
        self._failures: deque[int] = deque()

    # ---- building tracers ---------------------------------------------------------------
    def producer_factory(self, conf: dict[str, Any]) -> "_InMemoryKafkaClient":
        """Pass as ``Tracer(producer_factory=...)``: called with the librdkafka config."""
        return _InMemoryKafkaClient(self, conf)

    def tracer(self, tenant_id: str, agent_id: str, agent_version: str, environment: str,
               **overrides: Any) -> Tracer:
        """A ``Tracer`` delivering here. Remote commands and the policy follower are off unless
        asked for (they need a real broker; without one, an ``action_class`` tool would fail
        closed waiting for a policy that never comes): name durable classes with
        ``tracer.set_durable_tools`` instead. ``overrides`` are ``ProducerSettings`` fields as for
        ``Tracer``."""
        overrides.setdefault("commands_enabled", False)
        overrides.setdefault("follow_policy", False)
        return Tracer(tenant_id, agent_id, agent_version, environment,
                      producer_factory=self.producer_factory, **overrides)

    # ---- reading back -------------------------------------------------------------------
    def records(self) -> list[tuple[str, bytes, bytes]]:
        """Every delivered record as ``(topic, key, framed value)``, in delivery order."""
        with self._lock:
            return list(self._records)

    def events(self, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Delivered events, decoded; only one run's and/or one kind's when given."""
        out = []
        for _topic, key, value in self.records():
            if run_id is not None and key != run_id.encode():
                continue
            event = self._codec.decode_as(EVENT, value)
            if kind is None or event["kind"] == kind:
                out.append(event)
        return out

    def runs(self) -> dict[str, list[dict[str, Any]]]:
        """Delivered events grouped by run id, each run's in ``seq`` order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for event in self.events():
            out.setdefault(event["run_id"], []).append(event)
        return out

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # ---- simulating an outage -----------------------------------------------------------
    @property
    def reachable(self) -> bool:
        return self._reachable

    def set_reachable(self, reachable: bool) -> None:
        self._reachable = reachable

    def fail_next(self, error_code: int, count: int = 1) -> None:
        """The next ``count`` deliveries the broker answers fail with librdkafka's
        ``error_code`` in their delivery report (a ``KafkaError``), in produce order: e.g.
        ``10`` (MSG_SIZE_TOO_LARGE, a refusal for good) or ``-192`` (_MSG_TIMED_OUT, an
        outage). While unreachable, deliveries time out as usual and these wait."""
        with self._lock:
            self._failures.extend([int(error_code)] * count)

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _deliver(self, topic: str, key: bytes, value: bytes) -> None:
        with self._lock:
            self._records.append((topic, key, value))


class _InMemoryMessage:
    """The part of ``confluent_kafka.Message`` a delivery callback reads."""

    def __init__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return -1

    def error(self) -> None:
        return None


class _InMemoryKafkaClient:
    """The part of ``confluent_kafka.Producer`` the SDK uses, with librdkafka's semantics:
    ``produce`` only queues, ``poll``/``flush`` deliver and serve callbacks (successes too,
    unless configured with ``delivery.report.only.error``: the transport counts its records in
    flight from them), ``len()`` is what is still undelivered, ``purge`` fails queued records
    with ``_PURGE_QUEUE``. Thread-safe: the tracers of a process share one client."""

    def __init__(self, memory: InMemoryTransport, conf: dict[str, Any]) -> None:
        self._memory = memory
        self._default_cb: Callable[[Any, Any], None] | None = conf.get("on_delivery")
        self._error_cb: Callable[[Any], None] | None = conf.get("error_cb")
        self._only_errors = str(conf.get("delivery.report.only.error", False)).lower() == "true"
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes | None, bytes | None, Any, int | None]] = []
        self._max_bytes = int(conf.get("message.max.bytes", 1_000_000))  # librdkafka's default

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                on_delivery: Callable[[Any, Any], None] | None = None, **_: Any) -> None:
        if len(value or b"") + len(key or b"") > self._max_bytes:
            # as librdkafka refuses a record over message.max.bytes, before queueing it
            from confluent_kafka import KafkaError, KafkaException

            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        with self._lock:
            self._pending.append((topic, key, value, on_delivery, None))

    def poll(self, timeout: float | None = None) -> int:
        from confluent_kafka import KafkaError

        reachable = self._memory.reachable
        with self._lock:
            # Taken and stored in one step: tracers sharing this client poll and flush on their
            # own threads, and a later record must not reach the log before an earlier one.
            pending, self._pending = self._pending, []
            if reachable:
                pending = [(t, k, v, cb, self._memory._next_failure() if code is None else code)
                           for t, k, v, cb, code in pending]
                for topic, key, value, _cb, err_code in pending:
                    if err_code is None:
                        self._memory._deliver(topic, key or b"", value or b"")
        if not pending and timeout:
            time.sleep(min(timeout, 0.01))
        if pending and not reachable and self._error_cb is not None:
            self._error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN, "in-memory broker down"))
        for topic, key, value, cb, err_code in pending:
            cb = cb or self._default_cb
            if err_code is None and reachable:
                if cb is not None and not self._only_errors:
                    cb(None, _InMemoryMessage(topic, key, value))
                continue
            if cb is not None:
                code = KafkaError._MSG_TIMED_OUT if err_code is None else err_code
                cb(KafkaError(code), _InMemoryMessage(topic, key, value))
        return len(pending)

    def flush(self, timeout: float | None = None) -> int:
        self.poll(0)
        return len(self)

    def purge(self, in_queue: bool = True, in_flight: bool = True,
              blocking: bool = True) -> None:
        from confluent_kafka import KafkaError

        if in_queue:
            with self._lock:
                self._pending = [(t, k, v, cb, KafkaError._PURGE_QUEUE)
                                 for t, k, v, cb, _ in self._pending]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        from confluent_kafka import KafkaError, KafkaException

        if not self._memory.reachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "in-memory broker down"))
        meta = SimpleNamespace(error=None, partitions={0: SimpleNamespace(id=0)})
        return SimpleNamespace(topics={topic: meta} if topic else {})

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


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
            if msg is None or msg.error() is not None:
                continue
            key = msg.key()
            if key is None or key not in wanted:
                continue
            out[key.decode()].append(codec.decode_as(EVENT, msg.value()))
        return out
    finally:
        c.close()
