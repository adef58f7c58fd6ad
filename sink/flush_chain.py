"""The sink's hot path as a chain of steps (schemas/steps.py), built anew on each assignment:

    records -> Reduce(RangeBatcher)            cut flushes of ledger ranges (replays exactly)
            -> FlatMap(plan)                   record the flush's new ranges in ``sink_batches``
            -> RunTaskInThreads(store)         insert the ranges sharing a flush token together
                                               (a replay: again, then what its table still lacks)
            -> Reduce(FlushGrouper)            wait for every range of the flush, in order
            -> RunTask(guard)                  DLQ ratio guard (a mostly-invalid flush crashes)
            -> RunTask(dead_letter)            produce the flush's rejected records to the DLQ
            -> RunTask(commit) -> Terminal     commit past the flush's ranges

Every I/O step retries transient failures with backoff (``Retry``; the driver pauses the
partitions while one is failing) and turns anything else into ``ConsumerCrash`` naming the
ranges. The order of the steps is the exactly-once argument: a range is in the ledger before
its insert, and an offset is committed only after every range before it is stored and its
rejected records dead-lettered.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from agentstream.schemas.consumer_errors import DlqRatioGuard, ErrorClass
from agentstream.schemas.step_threads import RunTaskInThreads
from agentstream.schemas.steps import FlatMap, Reduce, Retry, RunTask, Terminal

from . import metrics as m
from .dlq import DeadLetters, Rejected
from .errors import classify
from .ledger import OffsetRange
from .range_batcher import Chunk, Flush, RangeBatcher, insert_units
from .retrying import coordinates, ranges_coordinates
from .tables import TableSpec


class SinkIO(Protocol):
    """What the chain needs of the sink that builds it."""

    specs: dict[str, TableSpec]

    def record_plans(self, ranges: list[tuple[OffsetRange, int]]) -> None: ...

    def store_chunks(self, spec: TableSpec, chunks: list[Chunk]) -> list[Rejected]: ...

    def commit_ranges(self, ranges: list[OffsetRange]) -> None: ...

    def dead_lettered(self, n: int) -> None: ...

    def recovered(self) -> None: ...

    def note_failure(self, what: str, exc: BaseException, delay: float, where: str) -> None: ...


class FlushGrouper:
    """A ``Batcher`` of stored inserts (lists of chunks): a flush is due once all its ranges are
    in. The inserts arrive in the order they were cut, so flushes complete in order."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    def add(self, unit: list[Chunk]) -> None:
        self.chunks.extend(unit)

    def full(self) -> bool:
        # a complete flush is waiting for the steps after it: take no more until it goes
        return self.due(0.0)

    def due(self, now: float) -> bool:
        return bool(self.chunks) and len(self.chunks) >= self.chunks[0].flush_size

    def cut(self, now: float, final: bool = False) -> list[Flush]:
        out = []
        while self.chunks and len(self.chunks) >= self.chunks[0].flush_size:
            n = self.chunks[0].flush_size
            flush = Flush(self.chunks[:n], id=self.chunks[0].flush_id)
            del self.chunks[:n]
            out.append(flush)
        return out


@dataclass
class SinkChain:
    """One assignment's chain: ``head`` takes ``consume()`` batches; ``failing`` while a step
    retries an outage (the driver pauses); ``in_flight_rows``: cut and not yet committed."""

    head: Reduce[list[Any], Flush]
    batcher: RangeBatcher
    inserts: RunTaskInThreads[list[Chunk], list[Chunk]]
    retries: list[Retry]
    in_flight_rows: int = 0

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.retries)


def build_chain(io: SinkIO, batcher: RangeBatcher, dead: DeadLetters, guard: DlqRatioGuard,
                settings: Any, give_up: Callable[[], bool], pool: ThreadPoolExecutor) -> SinkChain:
    def retry(label: str, where: Callable[[Any], str]) -> Retry:
        def failed(item: Any, exc: BaseException, _kind: ErrorClass, delay: float) -> None:
            io.note_failure(label, exc, delay, where(item))

        return Retry(classify, settings.retry_initial_s, settings.retry_max_s, on_failure=failed, give_up=give_up,
                     on_recover=io.recovered)

    def flush_where(flush: Flush) -> str:
        return ranges_coordinates(flush.ranges)

    chain_ref: list[SinkChain] = []

    def commit(flush: Flush) -> None:
        io.commit_ranges(flush.ranges)
        batcher.policy.stored(sum(c.insert_seconds for c in flush.chunks), flush.rows)
        chain_ref[0].in_flight_rows -= flush.rows

    r_commit = retry("commit", flush_where)
    committer = RunTask(commit, Terminal(), r_commit, what=lambda f: f)

    def dead_letter(flush: Flush) -> Flush:
        rejected = [r for c in flush.chunks for r in c.rejected]
        if rejected:
            dead.send(rejected)
            io.dead_lettered(len(rejected))
        return flush

    r_dlq = retry("dlq", flush_where)
    dead_letters = RunTask(dead_letter, committer, r_dlq, what=lambda f: f)

    def check_ratio(flush: Flush) -> Flush:
        # Before anything of this flush is dead-lettered or committed: a tripped guard leaves
        # the whole flush to be re-read (its stored rows dedup under their tokens on replay).
        rejected = [r for c in flush.chunks for r in c.rejected]
        last = rejected[-1] if rejected else None
        guard.observe(flush.rows, len(rejected),
                      coordinates(last.topic, last.partition, last.offset, last.offset) if last else "")
        return flush

    grouped = Reduce(FlushGrouper(), RunTask(check_ratio, dead_letters))

    def store(unit: list[Chunk]) -> list[Chunk]:
        t0 = time.perf_counter()
        unit[0].rejected = io.store_chunks(io.specs[unit[0].range.topic], unit)
        unit[0].insert_seconds = time.perf_counter() - t0
        return unit

    def store_failed(unit: list[Chunk], exc: BaseException, _kind: ErrorClass, delay: float) -> None:
        io.note_failure(io.specs[unit[0].range.topic].table, exc, delay,
                        ranges_coordinates([c.cell["range"] for c in unit]))

    r_store = Retry(classify, settings.retry_initial_s, settings.retry_max_s, on_failure=store_failed,
                    give_up=give_up, on_recover=io.recovered)
    workers = max(1, settings.insert_workers)
    inserts: RunTaskInThreads[list[Chunk], list[Chunk]] = RunTaskInThreads(
        store, grouped, concurrency=workers, max_pending=max(workers, 2), retry=r_store, what=lambda c: c,
        executor=pool)

    def plan(flush: Flush) -> list[list[Chunk]]:
        new = [(c.range, len(c.msgs)) for c in flush.chunks if not c.replay]
        io.record_plans(new)
        for c in flush.chunks:
            if c.replay:
                m.REPLAYS.labels(c.range.topic).inc()
        chain_ref[0].in_flight_rows += flush.rows
        return insert_units(flush)

    r_plan = retry("sink_batches", flush_where)
    # One flush in flight at a time (the next one is read meanwhile, up to batch_max_rows): the
    # sink holds at most about two flushes of records, as it did before it was a chain.
    planner = FlatMap(plan, inserts, r_plan, what=lambda f: f, admit=lambda: chain_ref[0].in_flight_rows == 0)
    head: Reduce[list[Any], Flush] = Reduce(batcher, planner)
    chain = SinkChain(head, batcher, inserts, [r_plan, r_store, r_dlq, r_commit])
    chain_ref.append(chain)
    return chain

