"""The OTLP exporter as a chain of steps (schemas/steps.py), built anew on each assignment:

    consume() batch -> FlatMap(decode)     events with their coordinates; an undecodable record is
                                           counted and skipped (the sink dead-letters it) unless
                                           most of a window is undecodable (the exporter stops)
                    -> Reduce(SpanBatcher) up to ``batch_max_spans`` events, or what came within
                                           ``linger_s`` of the batch's first record
                    -> RunTask(post)       one OTLP/JSON POST per try
                    -> RunTask(commit)     past every record of the batch
                    -> Terminal

The order is the at-least-once argument: a batch's offsets (its skipped records' too) are
committed only after the backend settled it, and batches go out in the order they were read.
A retryable answer (408, 429, 502, 503, 504, a network error) is tried again with jittered
backoff (``Retry-After`` honoured, the driver pausing meanwhile) up to ``max_retries`` times;
then ``BackendUnavailable`` stops the exporter with the batch uncommitted. Another 4xx/5xx is
logged and the batch skipped (no retry can make the backend take that body). Anything else is
a bug: ``ConsumerCrash`` naming the batch's offsets.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from agentstream.schemas import EVENT, Codec, DecodeError
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard, ErrorClass, kafka_error_class
from agentstream.schemas.step_retry import (BoundedRetry, RetryLater, bugs_only, crash_with, parse_retry_after,
                                            transient_attempt)
from agentstream.schemas.step_driver import describe_batch
from agentstream.schemas.steps import FlatMap, Reduce, Retry, RunTask, Terminal

from .otlp_out import export_request

log = logging.getLogger("agentstream.export.otlp")
RETRYABLE = {408, 429, 502, 503, 504}


class BackendUnavailable(RuntimeError):
    """The backend kept failing after every retry: the exporter stops with the batch
    uncommitted, so a restart sends it again."""


@dataclass
class Decoded:
    """One record of the events topic; ``event`` is None when it is not exported (undecodable,
    or another tenant's under ``--tenant``); its offset is committed with its batch."""

    topic: str
    partition: int
    offset: int
    event: dict[str, Any] | None


@dataclass
class ExportBatch:
    events: list[dict[str, Any]]
    last: dict[tuple[str, int], int]  # (topic, partition) -> the last offset read

    @property
    def where(self) -> str:
        return ", ".join(f"{t}[{p}] up to offset {o}" for (t, p), o in sorted(self.last.items()))


def decode_events(codec: Codec, msgs: list[Any], tenant: str | None, stats: dict[str, int],
                  guard: DlqRatioGuard) -> list[Decoded]:
    out = []
    bad = 0
    for m in msgs:
        rec = Decoded(m.topic(), m.partition(), m.offset(), None)
        try:
            ev = codec.decode_as(EVENT, m.value())
        except DecodeError:
            bad += 1  # the sink sends those to the DLQ, with the reason
        else:
            if tenant and ev["tenant_id"] != tenant:
                stats["skipped"] += 1
            else:
                rec.event = ev
        out.append(rec)
    if out:
        stats["undecodable"] += bad
        guard.observe(len(out), bad, f"{out[-1].topic}[{out[-1].partition}] offset {out[-1].offset}")
    return out


class SpanBatcher:
    """A ``Batcher`` of decoded records: due at ``max_spans`` events (then full) or ``linger_s``
    after its first record, exported or not (skipped records are committed with a batch)."""

    def __init__(self, max_spans: int, linger_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_spans, self.linger_s, self.clock = max_spans, linger_s, clock
        self.events: list[dict[str, Any]] = []
        self.last: dict[tuple[str, int], int] = {}
        self.first_at: float | None = None

    def add(self, item: Decoded) -> None:
        if self.first_at is None:
            self.first_at = self.clock()
        if item.event is not None:
            self.events.append(item.event)
        self.last[(item.topic, item.partition)] = item.offset

    def full(self) -> bool:
        return len(self.events) >= self.max_spans

    def due(self, now: float) -> bool:
        return self.first_at is not None and (self.full() or now - self.first_at >= self.linger_s)

    def cut(self, now: float, final: bool = False) -> list[ExportBatch]:
        if self.first_at is None:
            return []
        out = [ExportBatch(self.events, self.last)]
        self.events, self.last, self.first_at = [], {}, None
        return out


def post_once(client: Any, url: str, body: dict[str, Any], headers: dict[str, str], timeout_s: float) -> bool:
    """One POST: True when accepted (2xx), False when refused for good; raises ``RetryLater``
    for a retryable answer or a network error. Any other exception is a bug and propagates."""
    import httpx

    try:
        r = client.post(url, json=body, headers=headers, timeout=timeout_s)
    except (httpx.TransportError, ConnectionError, TimeoutError) as exc:
        log.warning("OTLP post failed: %s: %s", type(exc).__name__, exc)
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= r.status_code < 300:
        try:
            doc = r.json() if r.content else {}
        except ValueError:
            return True  # a 2xx whose body is not JSON: accepted all the same
        partial = (doc.get("partialSuccess") if isinstance(doc, dict) else None) or {}
        if partial.get("rejectedSpans"):
            log.warning("backend rejected %s spans: %s", partial["rejectedSpans"], partial.get("errorMessage", ""))
        return True
    if r.status_code not in RETRYABLE:
        log.error("backend refused a batch (%s): %s", r.status_code, r.text[:300])
        return False
    raise RetryLater(f"HTTP {r.status_code}", parse_retry_after(r.headers.get("retry-after")))


@dataclass
class ExportIO:
    """What the chain needs of the exporter that builds it."""

    codec: Codec
    tenant: str | None
    http: Any
    url: str
    headers: dict[str, str]
    stats: dict[str, int]
    guard: DlqRatioGuard
    commit: Callable[[dict[tuple[str, int], int]], None]  # commit past these offsets
    give_up: Callable[[], bool]
    batch_max_spans: int = 500
    linger_s: float = 1.0
    timeout_s: float = 10.0
    max_retries: int = 8
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    clock: Callable[[], float] = time.monotonic


@dataclass
class ExportChain:
    head: FlatMap[list[Any]]
    retries: list[Retry] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.retries)


def build_export_chain(io: ExportIO) -> ExportChain:
    crash = crash_with(lambda b: b.where if isinstance(b, ExportBatch) else str(b), ConsumerCrash)

    def commit(batch: ExportBatch) -> None:
        io.commit(batch.last)

    def commit_class(exc: BaseException) -> ErrorClass:
        return kafka_error_class(exc) or ErrorClass.BUG

    def commit_failed(what: Any, exc: BaseException, kind: ErrorClass, delay: float) -> None:
        crash(what, exc, kind, delay)
        log.warning("commit of %s failed, retrying in %.1fs: %s", what.where, delay, exc)

    r_commit = Retry(commit_class, io.retry_initial_s, io.retry_max_s, on_failure=commit_failed,
                     give_up=io.give_up)
    committer = RunTask(commit, Terminal(), r_commit, what=lambda b: b)

    def post(batch: ExportBatch) -> ExportBatch:
        body, n = export_request(batch.events)
        if not n:
            return batch
        if post_once(io.http, io.url, body, io.headers, io.timeout_s):
            io.stats["spans"] += n
            io.stats["batches"] += 1
        else:
            io.stats["rejected_batches"] += 1
        return batch

    def unavailable(_batch: ExportBatch, exc: BaseException) -> BaseException:
        return BackendUnavailable(f"{io.url} did not accept a batch after {io.max_retries + 1} tries ({exc})")

    r_post = BoundedRetry(transient_attempt, io.retry_initial_s, io.retry_max_s, max_retries=io.max_retries,
                          exhausted=unavailable, on_failure=crash, give_up=io.give_up)
    poster = RunTask(post, committer, r_post, what=lambda b: b)
    batches = Reduce(SpanBatcher(io.batch_max_spans, io.linger_s, io.clock), poster, clock=io.clock)

    def decode(msgs: list[Any]) -> list[Decoded]:
        return decode_events(io.codec, msgs, io.tenant, io.stats, io.guard)

    head: FlatMap[list[Any]] = FlatMap(decode, batches, Retry(bugs_only, on_failure=crash), what=describe_batch)
    return ExportChain(head, [r_post, r_commit])
