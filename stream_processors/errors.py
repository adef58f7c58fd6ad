"""The raw loop's error classes (see ``agentstream.schemas.consumer_errors``) and the isolation
of a failing record.

When ``Chain.process`` raises for a batch, the batch is processed again one record at a time
(the detectors' state is written only at the end of a batch, so the failed attempt left none):
a record that raises again is the offending one and goes out on its own, the others proceed.
Where it goes depends on how far it got, so that nothing unredacted leaves the restricted
topics:

- it failed inside redaction: its original bytes go to ``quarantine`` (restricted), since
  nothing says they are safe;
- it passed redaction and a detector failed: the redacted event goes to ``events`` as usual and
  a copy to the ``dlq`` with the reason, so the detectors can be replayed on it once fixed.

The reason names the exception type and where it was raised, never its message (messages quote
the data). A stream where most records fail this way is a bug, not bad records: the DLQ ratio
guard stops the loop.
"""
from __future__ import annotations

import dataclasses
import logging
import traceback
from typing import Any

from agentstream.schemas.consumer_errors import ErrorClass, kafka_error_class, network_error_class

from .chain import Chain, GetState, PutState
from .records import InRecord, OutRecord
from .redaction_stage import failure_headers

log = logging.getLogger("agentstream.processors.raw")

# librdkafka delivery errors that clear up by themselves (on top of KafkaError.retriable()).
_TRANSIENT_DELIVERY = frozenset({-195, -192, -187, -185, -184, 5, 6, 7, 8, 13, 19, 20})


def classify(exc: BaseException) -> ErrorClass:
    """TRANSIENT or BUG for an exception out of a Kafka call of the loop."""
    for by in (kafka_error_class, network_error_class):
        got = by(exc)
        if got is not None:
            return got
    return ErrorClass.BUG


def delivery_transient(err: Any) -> bool:
    """Whether a delivery report's ``KafkaError`` is worth producing the record again."""
    return not err.fatal() and (err.retriable() or err.code() in _TRANSIENT_DELIVERY)


def failure_reason(stage: str, exc: BaseException) -> str:
    """``<stage> failed: <Type> at <file>:<line> in <function>``, without the message."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = ""
    if frames:
        f = frames[-1]
        at = f" at {f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}"
    return f"{stage} failed: {type(exc).__name__}{at}"


def coordinates(batch: list[InRecord]) -> str:
    """``topic[partition] offsets a-b`` per partition of ``batch``."""
    spans: dict[tuple[str, int], list[int]] = {}
    for r in batch:
        s = spans.setdefault((r.topic, r.partition), [r.offset, r.offset])
        s[0], s[1] = min(s[0], r.offset), max(s[1], r.offset)
    return ", ".join(f"{t}[{p}] offsets {a}-{b}" for (t, p), (a, b) in sorted(spans.items()))


def process_isolating(chain: Chain, batch: list[InRecord], get_state: GetState,
                      put_state: PutState) -> tuple[list[OutRecord], int]:
    """``chain.process(batch)``; if that raises, the batch record by record as described above.
    Returns the outputs and how many records failed with an exception."""
    counts = chain.redaction.counts
    saved = dataclasses.replace(counts, rules=dict(counts.rules))
    try:
        return chain.process(batch, get_state, put_state), 0
    except Exception as exc:  # noqa: BLE001 - isolated below: one record's failure must not stop the others
        chain.redaction.counts = saved  # the failed attempt's counts are recounted below
        log.warning("batch %s failed (%s); processing it record by record", coordinates(batch),
                    failure_reason("chain", exc))
    out: list[OutRecord] = []
    failed = 0
    for rec in batch:
        part: list[OutRecord] = []
        try:
            passed = chain.redaction.process([rec], part)
        except Exception as exc:  # the offending record: quarantined with its reason
            reason = failure_reason("redaction", exc)
            log.error("%s: %s; original to quarantine", coordinates([rec]), reason,
                      exc_info=_frames_only(exc))
            chain.redaction.counts.quarantine += 1
            failed += 1
            out.append(OutRecord(chain.redaction.quarantine_topic, rec.key, rec.value,
                                 failure_headers(reason, "redaction", rec)))
            continue
        try:
            part += chain.detect(passed, get_state, put_state)
        except Exception as exc:  # the offending record: its redacted event to the DLQ too
            reason = failure_reason("detectors", exc)
            failed += 1
            log.error("%s: %s; redacted event to the DLQ", coordinates([rec]), reason,
                      exc_info=_frames_only(exc))
            part += [OutRecord(chain.redaction.dlq_topic, o.key, o.value, failure_headers(reason, "detectors", rec))
                     for o in part if o.topic == chain.redaction.events_topic]
        out += part
    return out, failed


def _frames_only(exc: BaseException) -> tuple[type[BaseException], BaseException, Any]:
    """The traceback of ``exc`` for a log line, without its message (which may quote data)."""
    stand_in = RuntimeError(f"{type(exc).__name__} (message withheld: it may quote the record)")
    return RuntimeError, stand_in, exc.__traceback__
