"""The sink: poll -> batch (by rows and time) -> plan -> insert -> DLQ -> commit.

Exactly-once into ClickHouse rests on three things: offsets are committed only after the rows
(and any dead letters) are stored; every partition's range is recorded in the ``sink_batches``
ledger before its insert and carries a dedup token derived from it, so a replay after a crash
re-forms the same range and ClickHouse drops the repeat; and ``events`` is a ReplacingMergeTree
on ``event_id`` as the last line of defence. While ClickHouse is down the partitions are paused
and the insert retried with backoff; nothing is committed until it succeeds.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from agentstream.schemas import PARTITIONER, Codec, make_resolver, topic_name
from . import metrics as m
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard

from .dlq import DeadLetters, Rejected
from .flush_policy import FlushPolicy
from .ledger import OffsetRange, cut_ranges, next_offsets, pending_plans, record_plans
from .retention import PolicyFollower, RetentionBook
from .settings import SinkSettings
from .storage import apply_migrations, make_client
from .tables import TABLE_SPECS, TableSpec
from .readiness import ReadinessMixin
from .retrying import STOPPED, RetryingMixin, coordinates, range_coordinates, ranges_coordinates
from .writer import RangeWriter

log = logging.getLogger(__name__)

_INVALID = -1001  # librdkafka's OFFSET_INVALID: nothing committed yet


class Sink(RetryingMixin, ReadinessMixin):
    """One consumer-group member moving the raw/events/alerts topics into ClickHouse.

    What callers may rely on:

    - Exactly-once rows: a Kafka offset is committed only after every row before it is stored
      in ClickHouse (or dead-lettered); each range is in the ``sink_batches`` ledger before its
      insert and is re-formed identically after a crash, under the same dedup tokens.
    - A record that cannot be decoded or mapped goes to the DLQ with its reason; the rest of its
      batch is stored. A flush that is mostly dead letters stops the sink instead (ratio guard).
    - A transient ClickHouse or Kafka failure pauses the partitions and retries with backoff;
      nothing is committed meanwhile. Anything else stops the sink (``health()["alive"]`` False,
      ``/healthz`` 503) naming the range, rather than retrying a bug.
    - ``run`` blocks until ``stop``/the stop event; ``start`` runs it on a thread.
    """

    def __init__(self, settings: SinkSettings, client: Any = None, codec: Codec | None = None,
                 client_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._client = client
        # Makes each insert thread's own connection; without one (a client object given), the
        # insert threads share ``client`` under ``_client_lock``.
        self._client_factory = client_factory if client_factory is not None else (
            None if client is not None else (lambda: make_client(settings.clickhouse_dsn)))
        self._local = threading.local()
        self._worker_clients: list[Any] = []
        self._stats_lock = threading.Lock()
        self.codec = codec or Codec(make_resolver(settings.schema_registry_url))
        self.retention = RetentionBook(settings.default_retention_days, settings.default_alert_retention_days)
        self.specs: dict[str, TableSpec] = {
            topic_name(t, settings.topic_prefix): TABLE_SPECS[t] for t in settings.topics
        }
        self.writer = RangeWriter(self._db, self.codec, self.retention, settings.group_id)
        self._buffers: dict[tuple[str, int], list] = {}
        self._plans: dict[tuple[str, int], list[OffsetRange]] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._pending_rows = 0
        self._oldest_at: float | None = None
        st = settings
        self._flush_policy = FlushPolicy(st.batch_max_rows, st.batch_max_seconds, st.flush_idle_seconds,
                                         st.flush_min_interval_seconds)
        self._stop = threading.Event()
        # Held around every ClickHouse call that can overlap another: an insert on the insert
        # thread and a rebalance callback (reading the ledger) fired by the poll meanwhile.
        self._client_lock = threading.Lock()
        self._inserter: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._consumer = None
        self.migrated = False
        self.paused = False
        self.last_error: str | None = None
        self.stored_rows = 0
        self.committed_ranges = 0
        self.dlq_records = 0
        self.last_commit_at: float | None = None
        self.failed: str | None = None
        self._dlq_guard = DlqRatioGuard(st.dlq_max_ratio, st.dlq_window_records, st.dlq_min_records)
        self._paused_at: float | None = None
        self._progress_at = time.monotonic()  # last commit, or last moment with nothing to do
        self._lag = 0
        self._flushing = False  # a flush is under way: its rows were cut from pending_rows

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.settings.clickhouse_dsn)
        return self._client

    def _db(self):
        """The connection of the calling thread: an insert thread's own, or the main one."""
        return self._own_client() or self.client

    def _own_client(self):
        """On an insert thread with a factory: its own connection, made on first use (inside
        the insert's retry, so a server that is down is retried like any insert)."""
        if not getattr(self._local, "worker", False) or self._client_factory is None:
            return None
        if getattr(self._local, "client", None) is None:
            self._local.client = self._client_factory()
            with self._stats_lock:
                self._worker_clients.append(self._local.client)
        return self._local.client

    def _mark_worker(self) -> None:
        self._local.worker = True

    def kafka_conf(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.settings.bootstrap_servers, **self.settings.kafka_config}

    def start(self) -> "Sink":
        """Runs the sink in a daemon thread; ``stop()`` ends it after a final flush."""
        self._thread = threading.Thread(target=self.run, name="agentstream-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Blocks until ``stop_event`` (or ``stop()``) is set; applies migrations first. Raises
        ``ConsumerCrash`` (after logging it with the range's coordinates) on a bug or when most
        records of a window are dead letters; transient failures are retried, never raised."""
        stop = stop_event or self._stop
        try:
            self._run(stop)
        except BaseException as exc:
            # A bug or a DLQ ratio over its limit: the loop is gone, nothing past the last
            # commit is, and /healthz says so until the process is restarted.
            self.failed = f"{type(exc).__name__}: {exc}"
            log.critical("sink stopped: %s", self.failed, exc_info=not isinstance(exc, ConsumerCrash))
            raise

    def _run(self, stop: threading.Event) -> None:
        from confluent_kafka import Consumer, Producer

        if self._with_retry("migrations", lambda: apply_migrations(self.client), stop) is STOPPED:
            return  # stopped during an outage: never reach Kafka with an unmigrated database
        self.migrated = True
        conf = self.kafka_conf()
        self._consumer = Consumer({
            **conf,
            "group.id": self.settings.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.settings.auto_offset_reset,
            "session.timeout.ms": self.settings.session_timeout_ms,
            "heartbeat.interval.ms": max(100, self.settings.session_timeout_ms // 6),
            "fetch.wait.max.ms": self.settings.fetch_wait_max_ms,
            "statistics.interval.ms": 5000,
            "stats_cb": lambda _s: None,
        })
        dead = DeadLetters(Producer({**conf, "linger.ms": 5, "partitioner": PARTITIONER}), topic_name("dlq", self.settings.topic_prefix))
        follower = None
        if self.settings.read_policies:
            try:
                follower = PolicyFollower(conf, topic_name("policies", self.settings.topic_prefix),
                                          self.retention, self.codec)
            except Exception as exc:  # noqa: BLE001 - retention falls back to the default
                log.warning("cannot follow the policies topic, default retention applies: %s", exc)
        self._consumer.subscribe(list(self.specs), on_assign=self._on_assign, on_revoke=self._on_revoke)
        if self.settings.read_during_insert or self.settings.insert_workers > 1:
            self._inserter = ThreadPoolExecutor(max(1, self.settings.insert_workers), initializer=self._mark_worker,
                                                thread_name_prefix="agentstream-sink-insert")
        next_lag = 0.0
        try:
            while not stop.is_set():
                self._flush_policy.polled(self._poll(timeout=0.1))
                if follower is not None:
                    follower.poll()
                if self._due():
                    self._flush(dead, stop)
                if time.monotonic() >= next_lag:
                    if self._consumer is not None:
                        self._lag = m.report_lag(self._consumer, self._assigned)
                    next_lag = time.monotonic() + 5.0
                if not self._pending_rows and not self._lag:
                    self._progress_at = time.monotonic()
            if self._pending_rows:
                self._flush(dead, stop, final=True)
        finally:
            if self._inserter is not None:
                self._inserter.shutdown(wait=True)
                self._inserter = None
            for c in self._worker_clients:
                with contextlib.suppress(Exception):
                    c.close()
            self._worker_clients.clear()
            if follower is not None:
                follower.close()
            self._consumer.close()
            self._consumer = None

    # ---- consuming -------------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        committed = {}
        for tp in consumer.committed(partitions, timeout=30):
            committed[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else 0
        # Inside a librdkafka callback: retry without polling the consumer again.
        def read_ledger():
            with self._client_lock:
                return pending_plans(self.client, self.settings.group_id, committed)

        plans = self._with_retry("sink_batches", read_ledger, self._stop, poll=False)
        plans = plans if isinstance(plans, dict) else {}
        for key in committed:
            self._assigned.add(key)
            self._buffers[key] = []
            self._plans[key] = plans.get(key, [])
        log.info("assigned %s; ledger ranges to replay: %s", sorted(committed),
                 {k: len(v) for k, v in plans.items()})

    def _on_revoke(self, consumer, partitions) -> None:
        # Uncommitted records go back to the group; the next owner replays the ledger.
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._assigned.discard(key)
            self._pending_rows -= len(self._buffers.pop(key, []))
            self._plans.pop(key, None)
        if not self._pending_rows:
            self._oldest_at = None

    def _poll(self, timeout: float) -> int:
        msgs = self._consumer.consume(num_messages=min(self.settings.batch_max_rows, 20_000), timeout=timeout)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if not err.code() == -191:  # _PARTITION_EOF
                    log.warning("consumer error: %s", err)
                continue
            key = (msg.topic(), msg.partition())
            buf = self._buffers.get(key)
            if buf is None:  # a record from a partition revoked meanwhile
                continue
            buf.append(msg)
            self._pending_rows += 1
        if self._pending_rows and self._oldest_at is None:
            self._oldest_at = time.monotonic()
        return len(msgs)

    def _due(self) -> bool:
        return self._flush_policy.due(self._pending_rows, self._oldest_at, time.monotonic())

    def _cut(self) -> list[tuple[OffsetRange, list, bool]]:
        chunks = cut_ranges(self._buffers, self._plans, lambda topic: self.settings.avro_fast_path
                            and RangeWriter.fast_path_for(self.specs[topic]), self.settings.range_max_rows)
        for rng, _msgs, replay in chunks:
            if replay:
                m.REPLAYS.labels(rng.topic).inc()
        self._pending_rows -= sum(len(c[1]) for c in chunks)
        self._oldest_at = time.monotonic() if self._pending_rows else None
        self._flush_policy.flushed(time.monotonic())
        return chunks

    # ---- storing ---------------------------------------------------------------------------

    def _flush(self, dead: DeadLetters, stop: threading.Event, final: bool = False) -> None:
        self._flushing = True
        try:
            self._flush_chunks(dead, stop)
        finally:
            self._flushing = False

    def _flush_chunks(self, dead: DeadLetters, stop: threading.Event) -> None:
        chunks = self._cut()
        if not chunks:
            return
        new = [(r, len(msgs)) for r, msgs, replay in chunks if not replay]
        where = ranges_coordinates([r for r, _msgs, _replay in chunks])
        if self._with_retry("sink_batches", lambda: record_plans(self.client, self.settings.group_id, new), stop,
                            where=where) is STOPPED:
            return
        todo = [(rng, msgs) for rng, msgs, _replay in chunks if (rng.topic, rng.partition) in self._assigned]
        results = self._store_all(todo, stop)
        if results is STOPPED:
            return  # nothing more is committed; the ledger replays the rest on restart
        rejected = [r for bad in results for r in bad]
        # Before anything of this flush is dead-lettered or committed: a tripped guard leaves
        # the whole flush to be re-read (its stored rows dedup under their tokens on replay).
        self._dlq_guard.observe(sum(len(msgs) for _rng, msgs in todo), len(rejected),
                                coordinates(rejected[-1].topic, rejected[-1].partition, rejected[-1].offset,
                                             rejected[-1].offset) if rejected else "")
        if rejected:
            if self._with_retry("dlq", lambda: dead.send(rejected), stop, where=where) is STOPPED:
                return
            self.dlq_records += len(rejected)
        self._commit([r for r, _ in todo if (r.topic, r.partition) in self._assigned], stop)

    def _store_all(self, todo: list[tuple[OffsetRange, list]], stop: threading.Event) -> Any:
        """Stores every range of a flush; returns the rejected records of each (or STOPPED).

        The ranges are independent (each has its own ledger row and tokens, whether of one
        partition or of several), so up to ``insert_workers`` are inserted at once. A range whose concurrent
        attempt fails is then retried on its own, with backoff and the partitions paused, as
        every insert is; the commit waits for all of them either way."""
        cells = [{"range": rng} for rng, _ in todo]
        calls = [(lambda spec=self.specs[rng.topic], cell=cell, msgs=msgs: self._store(spec, cell, msgs))
                 for (rng, msgs), cell in zip(todo, cells)]
        first: list[Future | None] = [None] * len(calls)
        if self._inserter is not None and self.settings.insert_workers > 1 and len(calls) > 1:
            first = self._while_reading(calls)
        results = []
        for (rng, _msgs), call, fut in zip(todo, calls, first):
            if fut is not None and fut.exception() is None:
                results.append(fut.result())
                continue
            table, where = self.specs[rng.topic].table, range_coordinates(rng)
            if fut is not None:
                self._note_failure(table, fut.exception(), where=where)
            if self._inserter is None:
                result = self._with_retry(table, call, stop, where=where)
            else:
                result = self._with_retry(table, lambda call=call: self._while_reading([call])[0].result(),
                                          stop, where=where)
            if result is STOPPED:
                return STOPPED
            results.append(result)
        return results

    def _while_reading(self, calls: list[Callable[[], Any]]) -> list[Future]:
        """Runs ``calls`` on the insert threads while this thread keeps reading the next batch
        into the buffers. An insert spends most of its time in ClickHouse (chDB and the HTTP
        client release the GIL), so polling overlaps it instead of adding to it. Reading stops
        at ``batch_max_rows`` buffered; nothing read here is stored or committed before its turn."""
        futs = [self._inserter.submit(c) for c in calls]
        while not all(f.done() for f in futs):
            if (self.settings.read_during_insert and self._consumer is not None and not self.paused
                    and self._pending_rows < self.settings.batch_max_rows):
                self._poll(timeout=0.005)
            else:
                t0 = time.perf_counter()
                wait(futs, timeout=0.05)
                m.BLOCKED_SECONDS.inc(time.perf_counter() - t0)
        return futs

    def _store(self, spec: TableSpec, cell: dict[str, OffsetRange], msgs: list) -> list[Rejected]:
        """Inserts one range under its dedup tokens (see ``writer``); returns the records it
        rejected. ``cell`` keeps the range's path choice across retries."""
        t0 = time.perf_counter()
        own = self._own_client()
        with contextlib.nullcontext() if own is not None else self._client_lock:
            by_path, rejected = self.writer.store(spec, cell, msgs)
        stored = sum(by_path.values())
        m.INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)
        m.BATCH_ROWS.labels(spec.table).observe(stored)
        m.BATCHES.labels(spec.table).inc()
        for path, n in by_path.items():
            if n:
                m.ROWS.labels(spec.table, path).inc(n)
        with self._stats_lock:
            self.stored_rows += stored
        return rejected

    def _commit(self, ranges: list[OffsetRange], stop: threading.Event) -> None:
        from confluent_kafka import TopicPartition

        if not ranges:
            return
        offsets = [TopicPartition(t, p, nxt) for (t, p), nxt in next_offsets(ranges).items()]

        def commit():
            live = [tp for tp in offsets if (tp.topic, tp.partition) in self._assigned]
            if live:
                self._consumer.commit(offsets=live, asynchronous=False)

        if self._with_retry("commit", commit, stop, where=ranges_coordinates(ranges)) is not STOPPED:
            self.committed_ranges += len(ranges)
            self.last_commit_at = time.time()
            self._progress_at = time.monotonic()


_STOPPED = STOPPED  # the name the sink's unit tests import
