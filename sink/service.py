"""The sink: a Kafka consumer driving the chain of steps in ``flush_chain`` (batch into ledger
ranges -> plan -> insert in threads -> DLQ -> commit), rebuilt on each partition assignment with
the ledger's ranges to replay.

Exactly-once into ClickHouse rests on three things: offsets are committed only after the rows
(and any dead letters) are stored; every partition's range is recorded in the ``sink_batches``
ledger before its insert, and the flush's insert carries a dedup token derived from its ranges
(a retry is dropped as a repeat), so a replay after a crash re-forms the same range and stores
only what the table lacks (``replay_repair``); and ``events`` is a ReplacingMergeTree on
``event_id`` as the last line of defence. While ClickHouse is down the partitions are paused
and the insert retried with backoff; nothing is committed until it succeeds.

This module is the driver only: it reads, hands records to the chain, pauses the partitions
while the chain refuses them (``MessageRejected``) or retries an outage, and on a revocation
lets the chain commit what it stored (bounded by ``revoke_join_seconds``) before dropping it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from agentstream.schemas import PARTITIONER, Codec, make_resolver, topic_name
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions
from agentstream.schemas.step_driver import drop_chain, pump
from agentstream.schemas.steps import Abandoned, HeldBatch

from . import metrics as m
from .dlq import DeadLetters
from .flush_chain import SinkChain, build_chain
from .flush_policy import FlushPolicy
from .clickhouse_client import ClickHouseClient
from .ledger import OffsetRange, pending_plans
from .offset_commits import OffsetCommitter
from .range_batcher import RangeBatcher
from .chain_io import ChainIOMixin
from .readiness import ReadinessMixin
from .retention import PolicyFollower, RetentionBook
from .retrying import STOPPED, RetryingMixin
from .settings import SinkSettings
from .storage import apply_migrations, make_client
from .tables import TABLE_SPECS, TableSpec
from .writer import InsertWatch, RangeWriter

log = logging.getLogger(__name__)

# Records refused by the chain for longer than this pause the partitions, so that the consumer
# keeps serving rebalances and the broker stops sending what cannot be taken yet.
BLOCKED_PAUSE_S = 1.0


class Sink(ChainIOMixin, RetryingMixin, ReadinessMixin):
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
    - Backpressure is bounded: about two flushes of records are held (one being stored, the
      next being read, up to ``batch_max_rows``); past that the sink stops reading
      (``blocked_seconds``), and pauses its partitions after a second (``paused_seconds``).
    - On a revocation what was read is stored and committed before the partitions go (within
      ``revoke_join_seconds``); each assignment gets a new chain with the ledger's ranges.
    - ``run`` blocks until ``stop``/the stop event; ``start`` runs it on a thread.
    - ``commits`` (``offset_commits.OffsetCommitter``) holds the assignment and the commits;
      ``run`` gives it the consumer (a unit test may give it its own, see ``CommitConsumer``).
    """

    def __init__(self, settings: SinkSettings, client: Any = None, codec: Codec | None = None,
                 client_factory: Callable[[], Any] | None = None, watch: InsertWatch | None = None) -> None:
        self.settings = settings
        self.watch = watch
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
        self.writer = RangeWriter(self._db, self.codec, self.retention, settings.group_id,
                                  settings.insert_priority, settings.avro_as_rowbinary, settings.direct_event_rows,
                                  watch)
        st = settings
        self._stop = threading.Event()
        self._stopping = self._stop  # the event ``run`` was given
        # Held around every ClickHouse call that can overlap another: an insert on the insert
        # thread and a rebalance callback (reading the ledger) fired by the poll meanwhile.
        self._client_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The insert threads (each with its own connection), shared by the chains of successive
        # assignments.
        self._inserter: ThreadPoolExecutor | None = None
        self._consumer: Any = None
        self._dead: DeadLetters | None = None
        # The chain of the current assignment (flush_chain), the records it refused (submitted
        # again after its next poll) and since when it has been refusing them.
        self._chain: SinkChain | None = None
        self._held = HeldBatch()
        self._revoke_deadline: float | None = None
        # The partitions this member owns and what it committed for them.
        self.commits = OffsetCommitter()
        self.migrated = False
        self.paused = False
        self.last_error: str | None = None
        self.stored_rows = 0
        self.dlq_records = 0
        self.failed: str | None = None
        self._dlq_guard = DlqRatioGuard(st.dlq_max_ratio, st.dlq_window_records, st.dlq_min_records)
        self._paused_at: float | None = None
        self._progress_at = time.monotonic()  # last commit, or last moment with nothing to do
        self._lag = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def client(self) -> ClickHouseClient:
        if self._client is None:
            self._client = make_client(self.settings.clickhouse_dsn)
        return self._client

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

    def _migrate(self) -> None:
        # a migration may fill run_events from events (0010): as an insert of any run
        token = self.watch.begin(None) if self.watch is not None else 0
        try:
            apply_migrations(self.client)
        finally:
            if self.watch is not None:
                self.watch.end(token)

    def _run(self, stop: threading.Event) -> None:
        from confluent_kafka import Consumer, Producer

        if self._with_retry("migrations", self._migrate, stop) is STOPPED:
            return  # stopped during an outage: never reach Kafka with an unmigrated database
        # Asked once, before any range is planned: a range is recorded on the direct path only
        # where this process will store it so (its replay relies on the recorded path).
        if self.writer.capable and self._with_retry(
                "the direct path's table", lambda: self.writer.direct_takes(self.client), stop) is STOPPED:
            return
        self.migrated = True
        self._stopping = stop
        conf = self.kafka_conf()
        self._consumer = Consumer({**conf, **self.settings.consumer_config(), "stats_cb": lambda _s: None})
        self.commits.consumer = self._consumer
        self._dead = DeadLetters(Producer({**conf, "linger.ms": 5, "partitioner": PARTITIONER}),
                                 topic_name("dlq", self.settings.topic_prefix))
        follower = None
        if self.settings.read_policies:
            try:
                follower = PolicyFollower(conf, topic_name("policies", self.settings.topic_prefix),
                                          self.retention, self.codec)
            except Exception as exc:  # noqa: BLE001 - retention falls back to the default
                log.warning("cannot follow the policies topic, default retention applies: %s", exc)
        self._gaps = OffsetGapGuard.from_settings(self.settings, m.GAP_COUNTS)
        self._seek = consumer_seek(self._consumer)
        self._consumer.subscribe(list(self.specs), on_assign=self._on_assign, on_revoke=self._on_revoke)
        next_lag = 0.0
        try:
            while not stop.is_set():
                self._step()
                if follower is not None:
                    follower.poll()
                if time.monotonic() >= next_lag:
                    self._lag = m.report_lag(self._consumer, self.commits.assigned)
                    next_lag = time.monotonic() + 5.0
                if not self._pending_rows and not self._lag and not self._flushing:
                    self._progress_at = time.monotonic()
            self._drop_chain(join=True)  # the final flush: everything read is stored and committed
        except Abandoned:
            pass  # stopped during an outage: nothing more is committed; the ledger replays the rest
        finally:
            self._drop_chain(join=False)
            if self._inserter is not None:
                self._inserter.shutdown(wait=True)
                self._inserter = None
            for c in self._worker_clients:
                with contextlib.suppress(Exception):
                    c.close()
            self._worker_clients.clear()
            if follower is not None:
                follower.close()
            self.commits.consumer = None
            self._consumer.close()
            self._consumer = None

    # ---- the driver: Kafka in, the chain's backpressure out ------------------------------------

    def _step(self) -> None:
        """One turn of the loop: read unless the chain refused the last records, hand them to
        the chain, let it work, and pause the partitions while it retries an outage or has
        refused records for longer than ``BLOCKED_PAUSE_S``."""
        chain = self._chain
        wait_inserts = (not self.settings.read_during_insert and chain is not None
                        and chain.in_flight_rows > 0)
        if (self._held or wait_inserts) and not self.paused:
            t0 = time.perf_counter()
            time.sleep(0.002)  # blocked: the inserts are behind; wait for them without reading
            m.BLOCKED_SECONDS.inc(time.perf_counter() - t0)
        else:
            busy = chain is not None and (chain.inserts.busy() or chain.in_flight_rows > 0)
            msgs = self._gaps.admit(self._consumer.consume(num_messages=min(self.settings.batch_max_rows, 20_000),
                                                           timeout=0.005 if busy else 0.1), self._seek)
            chain = self._chain  # a rebalance during consume rebuilt it
            records = [msg for msg in msgs if msg.error() is None or self._consumer_error(msg.error())]
            if chain is not None:
                chain.batcher.polled(len(msgs))
            if records and chain is not None:
                self._held.add(records)
        if chain is None:
            return
        pump(self._held, chain.head)
        want = chain.failing or self._held.blocked_for() > BLOCKED_PAUSE_S
        if want != self.paused:
            self._pause(want)

    @staticmethod
    def _consumer_error(err: Any) -> bool:
        if err.code() != -191:  # _PARTITION_EOF
            log.warning("consumer error: %s", err)
        return False

    def _on_assign(self, consumer, partitions) -> None:
        """Builds the chain for the new assignment, with the ledger ranges to replay."""
        stored = consumer.committed(partitions, timeout=30)
        committed: dict[tuple[str, int], int] = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in stored}
        # Inside a librdkafka callback: retry without polling the consumer again.
        def read_ledger() -> dict[tuple[str, int], list[OffsetRange]]:
            with self._client_lock:
                return pending_plans(self.client, self.settings.group_id, committed)

        plans = self._with_retry("sink_batches", read_ledger, self._stopping)
        self._drop_chain(join=False)
        self.commits.assign(committed)
        self._gaps.assign(start_positions(consumer, partitions, self.settings.auto_offset_reset, committed=stored))
        if plans is STOPPED:
            return  # no chain without the ledger's ranges: a new range over one would double rows
        self._paused_at = None
        self.paused = False
        self._chain = self._new_chain(sorted(committed), plans)
        log.info("assigned %s; ledger ranges to replay: %s", sorted(committed),
                 {k: len(v) for k, v in plans.items()})

    def _on_revoke(self, consumer, partitions) -> None:
        # What is stored is committed before the partitions go (within ``revoke_join_seconds``);
        # anything else is left to the next owner, which replays the ledger.
        self._revoke_deadline = time.monotonic() + self.settings.revoke_join_seconds
        try:
            self._drop_chain(join=True, timeout=self.settings.revoke_join_seconds)
        except Abandoned:
            pass
        finally:
            self._revoke_deadline = None
            self._drop_chain(join=False)
        self.commits.assign(())
        self._gaps.forget((tp.topic, tp.partition) for tp in partitions)
        if self.paused:
            self._pause(False)

    def _new_chain(self, assigned: list[tuple[str, int]], plans: dict[tuple[str, int], list[OffsetRange]]) -> SinkChain:
        st = self.settings
        policy = FlushPolicy(st.batch_max_rows, st.batch_max_seconds, st.flush_idle_seconds,
                             st.flush_min_interval_seconds, st.flush_insert_share, st.flush_max_busy_seconds,
                             st.flush_busy_rows)
        batcher = RangeBatcher(assigned, plans, policy, self._wire_for, st.batch_max_rows, st.range_max_rows,
                               st.insert_per_flush)
        if self._inserter is None:
            self._inserter = ThreadPoolExecutor(max(1, st.insert_workers), initializer=self._mark_worker,
                                                thread_name_prefix="agentstream-sink-insert")
        assert self._dead is not None, "a chain is built by an assignment, after _run made the DLQ"
        return build_chain(self, batcher, self._dead, self._dlq_guard, st, self._give_up, self._inserter)

    def _give_up(self) -> bool:
        """A retry stops when the sink stops or a revocation's time is up."""
        return self._stopping.is_set() or (self._revoke_deadline is not None
                                           and time.monotonic() >= self._revoke_deadline)

    def _drop_chain(self, join: bool, timeout: float | None = None) -> None:
        """``join``: the records read (those the chain refused too) are stored and committed
        first, within ``timeout``; then whatever is left is dropped, uncommitted."""
        drop_chain(self._chain.head if self._chain is not None else None, self._held, join, timeout)
        self._chain = None

    @property
    def _pending_rows(self) -> int:
        """Records read and not yet cut into a flush (refused by the chain, or buffered)."""
        return len(self._held) + (self._chain.batcher.pending if self._chain is not None else 0)

    @property
    def _flushing(self) -> bool:
        return self._chain is not None and self._chain.in_flight_rows > 0

_STOPPED = STOPPED  # the name the sink's unit tests import
