"""The Kafka-facing half of the transport: online -> offline -> replaying, and the disk spool.

Runs only on the transport thread (``transport.py``). librdkafka's reports may run on another
tracer's (the handle is shared: ``shared_producer.py``); they go through ``transport_reports``.
"""
from __future__ import annotations

import enum
import functools
import logging
import os
import time
from typing import Any, Callable

from agentstream.schemas import PARTITIONER

from .settings import ProducerSettings
from .shared_producer import POOL
from .spool import Spool
from .transport_reports import Rejections, Reports, is_permanent, produce_refused

log = logging.getLogger("agentstream.producer")

_REPLAY_CHUNK = 1000
_FAIL_BLOCK = 10_000_000  # > librdkafka's queue.buffering.max.messages
_AWAIT_STEP_S = 0.05  # one producer.flush() turn while waiting for our own records

Record = tuple[int, bytes, bytes]  # (w, key, value)


class DeliveryState(enum.Enum):
    ONLINE = "online"        # records go straight to librdkafka
    OFFLINE = "offline"      # records go to the spool; the broker is probed
    REPLAYING = "replaying"  # the spool is being sent; new records join its tail


_ONLINE = DeliveryState.ONLINE


class Delivery:
    """Gets framed records into Kafka, or onto disk until Kafka is back.

    Every record is numbered ``w`` in the order ``send`` saw it. Guarantees:

    - **Online**, records are produced with an idempotent producer (acks=all); librdkafka keeps
      them in order per partition and retries without duplicates.
    - A record is never silently lost: it is acked by Kafka, or written to the spool, or
      counted in ``dropped`` (spool full or disk error, with a log line), or counted in
      ``rejected`` (Kafka or librdkafka refused that record for good: too large, malformed;
      ``transport_reports.is_permanent``). A rejected record is dropped and the delivery
      stays online: spooled, it was replayed first by every later process and failed forever.
    - **Offline** (a transport error, all brokers down, a fatal producer error, a failed
      delivery or a full librdkafka queue), new records are spooled in ``w`` order; records
      that fail in flight are numbered from a block reserved when going offline, so on disk
      they sort *before* everything sent after them.
    - The broker is probed every ``probe_interval_s``. When it answers, the producer is
      recreated (an embedded broker that restarted forgot our idempotence state) and the state
      is **replaying**: the spool is sent chunk by chunk, each chunk committed only after its
      acks, and records sent meanwhile join the spool's tail. Only then is the state online
      again, so a run's records reach Kafka in order, and a record is re-sent only if its
      delivery was not acknowledged (at-least-once across an outage; the pipeline dedups by
      event id).
    - Records a previous process left in the spool directory are replayed first.
    - With ``share_producer`` (the default) the librdkafka handle is the process's for this
      configuration (``shared_producer.py``); everything above is still per delivery, and
      ``flush`` waits for this delivery's records only.
    - Nothing here raises into the agent: the transport thread catches and counts.
    """

    def __init__(self, settings: ProducerSettings, topic: str,
                 producer_factory: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self._factory = producer_factory or _default_producer
        self.state = DeliveryState.ONLINE
        self.produced = 0
        self.delivery_failed = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0          # spool full or unwritable
        self.rejected = Rejections()  # refused for good (too large, malformed): never spooled
        self._w = 0
        self._fail_w = 0
        self._fatal = False
        self._next_probe = 0.0
        self._failed_batch: list[Record] = []
        self._to_spool: list[Record] = []
        self._spool: Spool | None = None
        self.producer: Any = None
        self._shared = settings.share_producer
        self._reports = Reports()
        self._report = self._reports.on_report  # bound once: one per record otherwise

    @property
    def online(self) -> bool:
        return self.state is DeliveryState.ONLINE

    def in_flight(self) -> int:
        """This delivery's records librdkafka holds (not the shared handle's whole queue)."""
        return self._reports.in_flight()

    def broker_error(self, err: Any) -> None:
        """A shared handle's error callback reaches every owner here (``shared_producer``)."""
        self._reports.on_error(err)

    def spool_bytes(self) -> int:
        return self._spool.bytes_used() if self._spool else 0

    # ---- lifecycle ----------------------------------------------------------------------
    def open(self) -> None:
        """Creates the producer; a spool an earlier process left behind starts us offline."""
        try:
            self.producer = self._new_producer()
        except Exception:  # never raise into the agent: spool until a probe works
            log.exception("agentstream: producer start failed")
            self.state = DeliveryState.OFFLINE
        self._reports.reopen()  # opened again after a close: settle on our thread again
        try:
            d = self.settings.spool_dir
            if os.path.isdir(d) and os.listdir(d) and not self._ensure_spool().empty():
                self.state = DeliveryState.OFFLINE
        except OSError:  # an unreadable spool: nothing to replay from it; online if we can
            log.exception("agentstream: spool directory unreadable")

    def close(self) -> None:
        """Flushes what it can (bounded by ``flush_timeout_s``) and spools the rest."""
        try:
            if self.producer is not None and self.online:
                self._await_own(time.monotonic() + self.settings.flush_timeout_s)
            if self.producer is not None and self._release(self.producer):
                # Whatever is still undelivered goes to disk for the next process to replay.
                self.producer.purge(in_queue=True, in_flight=False, blocking=True)
                self.producer.poll(0)
            self.settle()
            # Records the shared handle still holds (a flush that timed out) report later, on
            # other tracers' threads: their failures go to the spool from there.
            self._reports.after_close(self.settle)
        except Exception:  # at exit: log, and leave the spool consistent
            log.exception("agentstream: shutdown flush failed")
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def forget_after_fork(self, orphans: list[Any]) -> None:
        """In a forked child: the parent's producer and spool are not ours to use."""
        if self.producer is not None:
            # Destroying a librdkafka handle whose threads did not survive the fork crashes:
            # keep the parent's copy alive and unused for the child's lifetime.
            orphans.append(self.producer)
        self.producer = None
        self._spool = None
        self._failed_batch = []
        self._to_spool = []
        self._reports = Reports()
        self._report = self._reports.on_report
        self.state = DeliveryState.ONLINE

    # ---- records ------------------------------------------------------------------------
    def send(self, key: bytes, value: bytes) -> None:
        self._w += 1
        if self.state is not _ONLINE or self.producer is None:  # (``online``, without a call)
            self._to_spool.append((self._w, key, value))
            return
        reports = self._reports
        reports.sent += 1  # before: another thread may serve its report before produce returns
        try:
            self.producer.produce(self.topic, value, key, on_delivery=self._report)
            self.produced += 1
        except Exception as exc:  # noqa: BLE001 - BufferError (queue full), fatal, or refused
            reports.sent -= 1
            if produce_refused(exc):  # this record can never be sent: drop it, stay online
                self.rejected.add(exc, len(value))
                return
            self._go_offline()
            self._w += 1  # numbered after the block reserved for in-flight failures
            self._to_spool.append((self._w, key, value))

    def tick(self, busy: bool, drain_to_spool: Callable[[], object], probe: bool = True) -> None:
        """One turn of the transport loop: serve librdkafka's callbacks, move failures to
        the spool, and probe/replay when offline. ``drain_to_spool`` sends the queue's
        pending items (they are spooled while replaying). ``probe=False`` while closing: a
        probe takes up to a second, and a close that waited for it lost the records."""
        if self.producer is not None and (not self._shared or POOL.polls(self, self.producer)):
            self.producer.poll(0 if busy else 0.02)
        elif not busy:
            time.sleep(0.02)
        self.settle()
        if probe and not self.online and time.monotonic() >= self._next_probe:
            self._try_recover(drain_to_spool)

    def flush(self, timeout: float) -> bool:
        """True when every record sent so far is acked or spooled."""
        deadline = time.monotonic() + timeout
        self.settle()
        if self.online and self.producer is not None:
            self._await_own(deadline)
            self.settle()
        return self.in_flight() == 0 and not self._failed_batch

    def _await_own(self, deadline: float) -> None:
        """Until this delivery's records are all reported (or ``deadline``). Each turn is a short
        ``producer.flush``, which sends lingering batches at once and serves reports: a shared
        handle's queue may never empty while other tracers produce, so our own count decides."""
        while self.in_flight() > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.producer.flush(min(_AWAIT_STEP_S, left))

    def settle(self) -> None:
        """Moves failed deliveries and offline records to the spool (oldest ``w`` first)."""
        self._take_reports()
        for batch in (self._failed_batch, self._to_spool):
            self._spool_batch(batch)

    def _spool_batch(self, batch: list[Record]) -> None:
        if not batch:
            return
        batch.sort(key=lambda r: r[0])
        try:
            written = self._ensure_spool().append(batch)
        except Exception:  # disk trouble: the records are lost, say so
            log.exception("agentstream: spool write failed")
            written = 0
        self.spooled += written
        self.dropped += len(batch) - written
        batch.clear()

    def _take_reports(self) -> None:
        """Takes in what reports left (broker errors, failed records): a record that failed
        after being sent online is numbered from the block reserved going offline."""
        reports = self._reports
        while reports.broker_down:
            if reports.broker_down.popleft():
                self._fatal = True
            self._go_offline()
        while reports.failed:
            w, key, value, err = reports.failed.popleft()
            self.delivery_failed += 1
            if is_permanent(err):  # the broker refused this record: no outage to wait out
                self.rejected.add(err, len(value))
                continue
            self._go_offline()
            if w is None:  # sent online: numbered from the block reserved going offline
                w = self._fail_w
                self._fail_w += 1
            self._failed_batch.append((w, key, value))

    # ---- librdkafka callbacks -------------------------------------------------------------
    def conf(self) -> dict[str, Any]:
        """The librdkafka configuration every producer of this delivery is created with."""
        s = self.settings
        conf: dict[str, Any] = {
            "bootstrap.servers": s.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": s.compression,
            "linger.ms": s.linger_ms,
            # Below the partitions per broker, so a request waiting for a slot parks in
            # librdkafka's send queue: its backpressure keeps the broker thread asleep until a
            # response, where it would otherwise spin (settings.max_in_flight, docs/sdk.md).
            "max.in.flight.requests.per.connection": s.max_in_flight,
            "message.timeout.ms": s.delivery_timeout_ms,
            # Every record reports (to the ``on_delivery`` it was produced with): a delivery
            # counts its own records in flight, as a shared handle's length counts everyone's.
            "delivery.report.only.error": False,
            "queue.buffering.max.messages": 200_000,
            "error_cb": self.broker_error,
            "logger": logging.getLogger("agentstream.producer.kafka"),
            "client.id": "agentstream-sdk",
            # a run's records land where the gateway's, the processors' and Java clients' do
            "partitioner": PARTITIONER,
        }
        conf.update(s.client_conf)
        return conf

    def _new_producer(self, old: Any = None) -> Any:
        """This delivery's handle: the process's shared one for its configuration, or its
        own (``share_producer=False``). ``old``: the handle an outage left behind."""
        if not self._shared:
            return self._factory(self.conf())
        if old is None:
            return POOL.acquire(self, self.conf(), self._factory)
        return POOL.replace(self, old, self.conf(), self._factory)

    def _release(self, producer: Any) -> bool:
        """True when nobody else produces with ``producer`` (it may be purged)."""
        return POOL.release(self, producer) if self._shared else True

    def _go_offline(self) -> None:
        if self.online:
            log.warning("agentstream: Kafka unreachable, spooling events to %s",
                        self.settings.spool_dir)
            # Records still inside librdkafka were produced before anything spooled from now
            # on; their failures (reported in order) get numbers from a block reserved here,
            # so they replay before the newer records.
            self._fail_w = self._w + 1
            self._w += _FAIL_BLOCK
        self.state = DeliveryState.OFFLINE

    # ---- offline -> replaying -> online ---------------------------------------------------
    def _ensure_spool(self) -> Spool:
        if self._spool is None:
            s = self.settings
            self._spool = Spool(s.spool_dir, s.spool_max_bytes, s.spool_segment_bytes)
        return self._spool

    def _try_recover(self, drain_to_spool: Callable[[], object]) -> None:
        self._next_probe = time.monotonic() + self.settings.probe_interval_s
        if not self._probe():
            return
        old = self.producer
        if old is not None:
            # Only never-sent records are purged (no duplicate risk), and only from a handle
            # nobody else uses; in-flight ones resolve first and land in the spool if they
            # failed.
            if not self._shared or POOL.owners(old) <= 1:
                try:
                    old.purge(in_queue=True, in_flight=False, blocking=True)
                except Exception:  # a producer in a fatal state may refuse; flush next
                    log.debug("agentstream: purge before replay failed", exc_info=True)
            self._await_own(time.monotonic() + self.settings.delivery_timeout_ms / 1000)
            self.settle()
        self.producer = self._new_producer(old)
        self._fatal = False
        self.state = DeliveryState.REPLAYING
        spool = self._spool
        while spool is not None and not spool.empty():
            d, recs = spool.peek(_REPLAY_CHUNK)
            if not recs:
                break
            if not self._replay_chunk(spool, d, recs):
                return
            drain_to_spool()  # new items join the spool's tail between chunks
            self.settle()
        self.state = DeliveryState.ONLINE
        log.warning("agentstream: Kafka reachable again, spool replayed")

    def _replay_chunk(self, spool: Spool, d: Any, recs: list[Any]) -> bool:
        failed_before = self.delivery_failed
        rejected_before = self.rejected.count
        taken = []
        refused = 0  # refused at produce(): skipped for good (committed with the chunk)
        for rec in recs:
            w, key, value = rec[0], rec[1], rec[2]
            self._reports.sent += 1
            try:
                self.producer.produce(self.topic, value, key,
                                      on_delivery=functools.partial(self._report, w=w))
            except Exception as exc:  # noqa: BLE001 - queue full or fatal: stop this chunk here
                self._reports.sent -= 1
                if not produce_refused(exc):
                    break
                # A record no broker will take (a spool written before this check, or by an
                # older SDK): skipped and counted, never retried at the spool's head forever.
                self.rejected.add(exc, len(value))
                refused += 1
            taken.append(rec)
        self._await_own(time.monotonic() + self.settings.delivery_timeout_ms / 1000 + 1)
        self._take_reports()
        spool.commit(d, taken)
        failures = self.delivery_failed - failed_before
        outage = failures - (self.rejected.count - rejected_before - refused)
        self.produced += len(taken) - refused
        self.replayed += len(taken) - refused - failures
        self.settle()  # failed ones go back into the spool, sorted by their original w
        if outage or len(taken) < len(recs):
            self.state = DeliveryState.OFFLINE
            return False
        return True

    def _probe(self) -> bool:
        """Can the broker serve our topic? (a metadata request, bounded at 1 s)"""
        try:
            if self.producer is None:
                self.producer = self._new_producer()
            md = self.producer.list_topics(self.topic, timeout=1.0)
            t = md.topics.get(self.topic)
            return bool(t is not None and t.error is None and t.partitions)
        except Exception:  # noqa: BLE001 - any failure to get metadata means "not yet"
            return False


def _default_producer(conf: dict[str, Any]) -> Any:
    from confluent_kafka import Producer

    return Producer(conf)
