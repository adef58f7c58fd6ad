"""The alert forwarder as a chain of steps (schemas/steps.py), built anew on each assignment:

    consume() batch -> FlatMap(decode)   alerts with their coordinates; an undecodable record is
                                         reported and committed, unless most of a window is
                                         undecodable (DlqRatioGuard: the forwarder stops)
                    -> FlatMap(route)    one post per destination of the tenant's rules (or the
                                         static one), none for a silenced or unrouted alert
                    -> RunTask(post)     one POST per try, skipping what the ledger holds; a
                                         settled post goes in the ledger (fsynced) at once
                    -> RunTask(commit)   past the alert once its last post settled
                    -> Terminal

The order is the at-most-once-per-destination argument: a post is checked against the ledger
just before it is made and written there as soon as it settles, and an offset is committed
only after every destination of its alert settled. A post refused for a reason that may clear
(5xx, 408, 429, a network error) is tried again with jittered backoff (``Retry-After``
honoured, the driver pausing meanwhile) up to ``max_retries`` times; then ``WebhookUnavailable``
stops the forwarder with that alert uncommitted. A 4xx other than 408/429 settles it as
rejected (no retry can change it). Anything else is a bug: ``ConsumerCrash`` naming the
alert's topic, partition and offset.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from agentstream.schemas import ALERT, Codec, DecodeError
from agentstream.schemas.alerting import AlertingBook, Destination
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioGuard, ErrorClass, kafka_error_class
from agentstream.schemas.step_retry import BoundedRetry, bugs_only, crash_with, transient_attempt
from agentstream.schemas.step_driver import describe_batch
from agentstream.schemas.steps import FlatMap, Retry, RunTask, Terminal

from .alerts_io import DELIVERED, REJECTED, pagerduty_body, post_once, slack_body

log = logging.getLogger("agentstream.alerts.forward")


class WebhookUnavailable(RuntimeError):
    """A destination kept failing after every retry: the forwarder stops with the alert
    uncommitted, so a restart resumes at it (the ledger keeps the destinations that accepted it
    from getting it again)."""


@dataclass
class AlertRecord:
    """One record of the alerts topic: ``alert`` is None when it is not to be routed
    (undecodable, or another tenant's under ``--tenant``); its offset is committed all the same."""

    topic: str
    partition: int
    offset: int
    alert: dict[str, Any] | None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}] offset {self.offset}"


@dataclass
class Post:
    """One destination of an alert (``dest`` None: nothing to post, only the commit);
    ``last``: its alert's offset is committed once this settles."""

    record: AlertRecord
    dest: Destination | None
    last: bool

    def describe(self) -> str:
        alert = self.record.alert or {}
        to = f" to {self.dest.kind} destination {self.dest.dest_id}" if self.dest is not None else ""
        return f"alert {alert.get('alert_id', '?')}{to} ({self.record.where})"


@dataclass
class ForwardStats:
    delivered: int = 0
    silenced: int = 0
    unrouted: int = 0
    rejected: int = 0
    duplicate: int = 0
    undecodable: int = 0
    by_destination: dict[str, int] = field(default_factory=dict)


class Ledger(Protocol):
    """The delivery ledger (alert_forwarder.DeliveryLedger): settled (destination, alert) pairs."""

    def __contains__(self, pair: tuple[str, str]) -> bool: ...

    def add(self, dest_id: str, alert_id: str) -> None: ...


def body_for(dest: Destination, alert: dict[str, Any]) -> dict[str, Any]:
    if dest.kind == "slack":
        return slack_body(alert)
    if dest.kind == "pagerduty":
        return pagerduty_body(alert, dest.routing_key)
    return {"alert": alert}


def decode_alerts(codec: Codec, msgs: list[Any], tenant: str | None, stats: ForwardStats,
                  guard: DlqRatioGuard) -> list[AlertRecord]:
    """The records of a ``consume()`` batch, in order; an undecodable one is reported with its
    reason (and committed, not routed) until the guard trips on a mostly undecodable window."""
    out = []
    bad = 0
    for m in msgs:
        rec = AlertRecord(m.topic(), m.partition(), m.offset(), None)
        try:
            alert = codec.decode_as(ALERT, m.value())
        except DecodeError as exc:
            print(f"undecodable alert at {m.partition()}/{m.offset()}: {exc.reason}", file=sys.stderr)
            bad += 1
        else:
            rec.alert = alert if not tenant or alert["tenant_id"] == tenant else None
        out.append(rec)
    if out:
        stats.undecodable += bad
        guard.observe(len(out), bad, out[-1].where)
    return out


def plan_posts(rec: AlertRecord, book: AlertingBook, static: Destination | None, now_us: int,
               stats: ForwardStats) -> list[Post]:
    """The posts of one alert: none (a commit only) when it is silenced, at its detection time
    or now, or no rule routes it; else one per destination, the last one carrying the commit."""
    a = rec.alert
    if a is None:
        return [Post(rec, None, True)]
    if book.silenced_by(a, a["detected_us"]) or book.silenced_by(a, now_us):
        stats.silenced += 1
        return [Post(rec, None, True)]
    dests = [static] if static is not None else book.destinations(a)
    if not dests:
        stats.unrouted += 1
        return [Post(rec, None, True)]
    return [Post(rec, d, i == len(dests) - 1) for i, d in enumerate(dests)]


@dataclass
class ForwardIO:
    """What the chain needs of the forwarder that builds it."""

    codec: Codec
    book: AlertingBook
    static: Destination | None
    tenant: str | None
    http: Any
    ledger: Ledger
    stats: ForwardStats
    guard: DlqRatioGuard
    commit: Callable[[str, int, int], None]  # (topic, partition, offset): commit past it
    give_up: Callable[[], bool]
    max_retries: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    now_us: Callable[[], int] = lambda: int(time.time() * 1_000_000)


@dataclass
class ForwardChain:
    head: FlatMap[list[Any]]
    retries: list[Retry]

    @property
    def failing(self) -> bool:
        return any(r.failing for r in self.retries)


def build_forward_chain(io: ForwardIO) -> ForwardChain:
    crash = crash_with(str, ConsumerCrash)

    def commit(p: Post) -> None:
        if p.last:
            io.commit(p.record.topic, p.record.partition, p.record.offset)

    def commit_class(exc: BaseException) -> ErrorClass:
        return kafka_error_class(exc) or ErrorClass.BUG

    def commit_failed(what: Any, exc: BaseException, kind: ErrorClass, delay: float) -> None:
        crash(what, exc, kind, delay)
        log.warning("commit of %s failed, retrying in %.1fs: %s", what, delay, exc)

    r_commit = Retry(commit_class, io.base_s, io.cap_s, on_failure=commit_failed, give_up=io.give_up)
    committer = RunTask(commit, Terminal(), r_commit, what=lambda p: p.record.where)

    def post(p: Post) -> Post:
        a, dest = p.record.alert, p.dest
        if a is None or dest is None:
            return p
        if (dest.dest_id, a["alert_id"]) in io.ledger:
            io.stats.duplicate += 1
            return p
        outcome = post_once(io.http, dest.url, body_for(dest, a),
                            headers={"Idempotency-Key": f"{dest.dest_id}:{a['alert_id']}"})
        io.ledger.add(dest.dest_id, a["alert_id"])  # rejected for good is settled too: never re-posted
        if outcome == DELIVERED:
            io.stats.delivered += 1
            io.stats.by_destination[dest.dest_id] = io.stats.by_destination.get(dest.dest_id, 0) + 1
        elif outcome == REJECTED:
            io.stats.rejected += 1
        return p

    def unavailable(p: Post, exc: BaseException) -> BaseException:
        kind, dest_id = (p.dest.kind, p.dest.dest_id) if p.dest is not None else ("?", "?")
        alert_id = (p.record.alert or {}).get("alert_id", "?")
        return WebhookUnavailable(f"webhook unavailable ({kind} destination {dest_id}); alert {alert_id} not "
                                  f"delivered after {io.max_retries + 1} tries ({exc}); {p.record.where} not "
                                  "committed: a restart resumes there")

    r_post = BoundedRetry(transient_attempt, io.base_s, io.cap_s, max_retries=io.max_retries,
                          exhausted=unavailable, on_failure=crash_with(lambda p: p.describe(), ConsumerCrash),
                          give_up=io.give_up)
    poster = RunTask(post, committer, r_post, what=lambda p: p)

    def route(rec: AlertRecord) -> list[Post]:
        return plan_posts(rec, io.book, io.static, io.now_us(), io.stats)

    router = FlatMap(route, poster, Retry(bugs_only, on_failure=crash), what=lambda r: r.where)

    def decode(msgs: list[Any]) -> list[AlertRecord]:
        return decode_alerts(io.codec, msgs, io.tenant, io.stats, io.guard)

    head: FlatMap[list[Any]] = FlatMap(decode, router, Retry(bugs_only, on_failure=crash), what=describe_batch)
    return ForwardChain(head, [r_post, r_commit])
