"""Part of ``Sink``: what its chain of steps asks of it (``flush_chain.SinkIO``) — the path a new
range is planned on, the ledger rows, the inserts with their metrics, the commits — and the
ClickHouse connection each of those calls runs on (an insert thread's own, or the main one)."""
from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from . import event_rows
from . import metrics as m
from .ledger import OffsetRange, record_plans as write_plans
from .thread_sched import spent, thread_sched
from .writer import RangeWriter

if TYPE_CHECKING:
    from .clickhouse_client import ClickHouseClient
    from .dlq import Rejected
    from .offset_commits import OffsetCommitter
    from .range_batcher import Chunk
    from .settings import SinkSettings
    from .tables import TableSpec


class ChainIOMixin:
    settings: SinkSettings
    specs: dict[str, TableSpec]
    writer: RangeWriter
    commits: OffsetCommitter
    _client_factory: Callable[[], Any] | None
    _local: threading.local
    _worker_clients: list[Any]
    _stats_lock: threading.Lock
    _client_lock: threading.Lock
    _progress_at: float
    stored_rows: int
    dlq_records: int
    last_error: str | None

    if TYPE_CHECKING:
        @property
        def client(self) -> ClickHouseClient: ...

    # ---- connections ---------------------------------------------------------------------------

    def _db(self) -> ClickHouseClient:
        """The connection of the calling thread: an insert thread's own, or the main one."""
        return self._own_client() or self.client

    def _own_client(self) -> ClickHouseClient | None:
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

    # ---- the chain's I/O (flush_chain.SinkIO) --------------------------------------------------

    def _wire_for(self, topic: str, rows: int) -> int:
        """The path a new range of ``rows`` records of ``topic`` is planned on (its ledger row
        keeps it for a replay). The direct path has no fixed cost of its own, so it takes a range
        of any size; the staging views cost ClickHouse ~100 ms per insert, so a small range is
        cheaper in Python (``avro_min_rows``)."""
        st = self.settings
        if not (st.avro_fast_path and RangeWriter.fast_path_for(self.specs[topic])):
            return event_rows.WIRE_PYTHON
        if self.writer.direct_ready:
            return event_rows.WIRE_DIRECT
        return event_rows.WIRE_STAGED if rows >= st.avro_min_rows else event_rows.WIRE_PYTHON

    def record_plans(self, ranges: list[tuple[OffsetRange, int]]) -> None:
        with self._client_lock:  # the insert threads may share the main client
            write_plans(self.client, self.settings.group_id, ranges)

    def recovered(self) -> None:
        self.last_error = None

    def dead_lettered(self, n: int) -> None:
        self.dlq_records += n

    def store_chunks(self, spec: TableSpec, chunks: list[Chunk]) -> list[Rejected]:
        """Inserts ranges that share a flush token together, or replays them (see ``writer``);
        returns the records rejected. ``chunk.cell`` keeps each range's path choice across retries."""
        t0 = time.perf_counter()
        sched0 = thread_sched()
        own = self._own_client()
        parts = [(c.cell, c.msgs) for c in chunks]
        with contextlib.nullcontext() if own is not None else self._client_lock:
            if chunks[0].replay:
                by_path, rejected = self.writer.replay(spec, parts)
            else:
                by_path, rejected = self.writer.store_group(spec, parts)
        stored = sum(by_path.values())
        m.INSERT_SECONDS.labels(spec.table).observe(time.perf_counter() - t0)
        if (sched := spent(sched0)) is not None:
            m.INSERT_CPU_SECONDS.labels(spec.table).observe(sched[0])
            m.INSERT_CPU_WAIT_SECONDS.labels(spec.table).observe(sched[1])
        m.BATCH_ROWS.labels(spec.table).observe(stored)
        m.BATCHES.labels(spec.table).inc()
        for path, n in by_path.items():
            if n:
                m.ROWS.labels(spec.table, path).inc(n)
        with self._stats_lock:
            self.stored_rows += stored
        return rejected

    def commit_ranges(self, ranges: list[OffsetRange]) -> None:
        """Commits past ``ranges`` (all stored) for the partitions still assigned (``commits``)."""
        if ranges:
            self.commits.commit(ranges)
            self._progress_at = time.monotonic()

    @property
    def committed_ranges(self) -> int:
        return self.commits.committed_ranges

    @property
    def last_commit_at(self) -> float | None:
        return self.commits.last_commit_at
