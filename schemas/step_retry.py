"""``BoundedRetry``: a ``Retry`` (schemas/steps.py) for calls to a remote service that says when
to come back, as webhooks and OTLP backends do: jittered exponential backoff, the server's
``Retry-After`` honoured, and a limit on the tries, past which the item is given up loudly.

``steps.Retry`` retries a transient failure for as long as it lasts, which is right for the
consumers' own infrastructure (the broker, ClickHouse: nothing else can make progress without
them). A third party's endpoint is different: after ``max_retries`` the consumer stops without
committing, so that an operator sees the outage and a restart resumes at the item, instead of
a forwarder or exporter hammering a dead endpoint forever behind a green health check.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from .consumer_errors import ConsumerCrash, ErrorClass
from .steps import Abandoned, Retry


class RetryLater(Exception):
    """One attempt failed for a reason that may clear (a 5xx, a 429, a network error);
    ``retry_after``: the seconds the server asked for, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After`` header; None for an absent or HTTP-date one (the
    backoff applies then)."""
    return float(value) if value and value.strip().isdigit() else None


def backoff_delay(attempt: int, initial_s: float, max_s: float, retry_after: float | None = None,
                  rand: Callable[[], float] = random.random) -> float:
    """The wait before try ``attempt + 1``: what the server asked (capped at ``max_s``), else
    ``initial_s * 2**attempt`` capped at ``max_s``, times a jitter in [0.5, 1) so that many
    clients failing together do not retry together."""
    if retry_after is not None:
        return min(max_s, retry_after)
    return min(max_s, initial_s * 2.0 ** attempt) * (0.5 + rand() / 2)


def transient_attempt(exc: BaseException) -> ErrorClass:
    """The classes of a step whose work turns every failure worth retrying into ``RetryLater``:
    anything else it raises is a bug."""
    return ErrorClass.TRANSIENT if isinstance(exc, RetryLater) else ErrorClass.BUG


@dataclass
class BoundedRetry(Retry):
    """``Retry`` with at most ``max_retries`` retries of an item (1 + max_retries tries): the
    next transient failure raises ``exhausted(what, exc)`` (after ``on_failure``) instead of
    waiting again. The wait is ``backoff_delay`` with the ``retry_after`` of a ``RetryLater``."""

    max_retries: int = 6
    exhausted: Callable[[Any, BaseException], BaseException] = field(
        default=lambda what, exc: RuntimeError(f"{what}: gave up after retries: {exc}"))
    rand: Callable[[], float] = random.random

    def failed(self, what: Any, exc: BaseException, attempt: int) -> float:
        kind = self.classify(exc)
        retry_after = exc.retry_after if isinstance(exc, RetryLater) else None
        delay = backoff_delay(attempt, self.initial_s, self.max_s, retry_after, self.rand)
        self.on_failure(what, exc, kind, delay)
        if kind is not ErrorClass.TRANSIENT:
            raise exc
        if attempt >= self.max_retries:
            raise self.exhausted(what, exc) from exc
        self.failing = True
        if self.give_up():
            raise Abandoned(f"{what}: gave up retrying {type(exc).__name__}: {exc}") from exc
        return delay


def crash_with(describe: Callable[[Any], str], crash: Callable[[str], BaseException]) -> \
        Callable[[Any, BaseException, ErrorClass, float], None]:
    """An ``on_failure`` that turns a bug into ``crash(message)`` naming the item (its
    coordinates, by ``describe``); transient failures pass (the ``Retry`` waits them out), and
    so does a ``ConsumerCrash`` already raised (a DLQ ratio guard tripping names its window)."""

    def on_failure(what: Any, exc: BaseException, kind: ErrorClass, _delay: float) -> None:
        if kind is ErrorClass.BUG and not isinstance(exc, ConsumerCrash):
            raise crash(f"{type(exc).__name__} at {describe(what)}: {exc}; nothing from there on was "
                        "committed") from exc

    return on_failure


def bugs_only(_exc: BaseException) -> ErrorClass:
    """The classes of pure work (decoding, routing, mapping): a failure is a bug, never retried."""
    return ErrorClass.BUG
