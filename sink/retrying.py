"""The sink's retry discipline: transient failures pause consumption and back off; anything
else is a bug and stops the sink with the coordinates of what it was doing (issue #24)."""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from agentstream.schemas.consumer_errors import ConsumerCrash, ErrorClass

from . import metrics as m
from .errors import classify
from .ledger import OffsetRange

if TYPE_CHECKING:
    from .offset_commits import OffsetCommitter
    from .settings import SinkSettings

log = logging.getLogger("agentstream.sink.service")


class _Stopped:
    def __repr__(self) -> str:
        return "STOPPED"


STOPPED = _Stopped()


def coordinates(topic: str, partition: int, start: int, end: int) -> str:
    return f"{topic}[{partition}] offsets {start}-{end}"


def range_coordinates(rng: OffsetRange) -> str:
    return coordinates(rng.topic, rng.partition, rng.start, rng.end)


def ranges_coordinates(ranges: list[OffsetRange]) -> str:
    shown = ", ".join(range_coordinates(r) for r in ranges[:3])
    return shown + (f" and {len(ranges) - 3} more ranges" if len(ranges) > 3 else "")


class RetryingMixin:
    """Part of ``Sink``: needs its ``settings``, ``_consumer``, ``commits``, ``paused``,
    ``_paused_at`` and ``last_error``. The chain's steps retry through ``schemas.steps.Retry``
    with ``note_failure`` as its judge; ``_with_retry`` is for the calls made outside the chain
    (migrations before Kafka, the ledger read inside the assignment callback)."""

    settings: SinkSettings
    _consumer: Any
    commits: OffsetCommitter
    _paused_at: float | None
    paused: bool
    last_error: str | None

    def _with_retry(self, what: str, fn: Callable[[], Any], stop: threading.Event, where: str = "") -> Any:
        """Calls ``fn`` until it succeeds while its failures are transient (``errors.classify``),
        backing off exponentially without polling Kafka. Returns ``STOPPED`` if asked to stop
        first; any other failure is a bug and raises ``ConsumerCrash`` naming ``where``."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - classified: only transient ones retry
                self.note_failure(what, exc, delay, where)
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if stop.is_set():
                        return STOPPED
                    time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, self.settings.retry_max_s)
                continue
            self.last_error = None
            return result

    def note_failure(self, what: str, exc: BaseException, delay: float = 0.0, where: str = "") -> None:
        """Counts and logs a failed call; raises ``ConsumerCrash`` unless it is transient."""
        self.last_error = f"{what}: {exc}"
        kind = classify(exc)
        m.INSERT_FAILURES.labels(what).inc()
        m.ERRORS.labels(what, kind.value).inc()
        if kind is not ErrorClass.TRANSIENT:
            at = f" at {where}" if where else ""
            raise ConsumerCrash(f"{what}{at} failed with {type(exc).__name__} (not a transient error, not "
                                f"retried; nothing from here on is committed): {exc}") from exc
        log.warning("%s%s failed, retrying in %.1fs: %s", what, f" ({where})" if where else "", delay, exc)

    def _pause(self, on: bool) -> None:
        from confluent_kafka import TopicPartition

        if on and self._paused_at is None:
            self._paused_at = time.monotonic()
        elif not on and self._paused_at is not None:
            m.PAUSED_SECONDS.inc(time.monotonic() - self._paused_at)
            self._paused_at = None
        self.paused = on
        m.PAUSED.set(1 if on else 0)
        if self._consumer is None:
            return
        parts = [TopicPartition(t, p) for t, p in self.commits.assigned]
        if parts:
            (self._consumer.pause if on else self._consumer.resume)(parts)
