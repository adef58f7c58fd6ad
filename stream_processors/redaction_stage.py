"""The raw → events step for a batch: decode, redact under the tenant's policy, re-encode.

Hot path first: the field reader (stream_processors/event_reader.py) walks the raw record once,
giving the detectors' fields and the record's text (its strings and map keys); a record whose
text the prefilter clears (``text_may_need_redaction``, a superset trigger) and that carries no
content preview goes on as its own bytes, with the redaction summary spliced in where the null
one was, never a fastavro decode. Everything else, and anything the reader cannot read exactly,
takes the full path below.

An event time (``ts_us``, a payload's ``started_us``) more than ``max_event_ahead_s`` after now
is clamped to now and flagged (stream_processors/event_time.py); such a record takes the full path.

Three exits, never a silent loss: redacted events to ``events``; records the codec cannot read to
``dlq`` with the reason in headers; events redaction cannot make safe to ``quarantine`` (original
bytes, restricted topic) plus an alert that says so without the content.
"""
from __future__ import annotations

import hashlib
import time
from itertools import repeat
from dataclasses import dataclass, field
from typing import Any

from agentstream.schemas import ALERT, DLQ_HEADERS, EVENT, Codec, DecodeError, topic_name

from .policies import PolicyBook
from .event_reader import EventReader
from .event_time import clamp_future_times, flag_clamped, has_future_time
from .records import InRecord, OutRecord, Redacted
from .redaction.engine import RedactionError, Redactor
from .redaction.prefilter import batch_rule_hits, text_may_need_redaction
from .summary_patch import SummaryPatcher

STAGE = "redaction"


@dataclass
class StageCounts:
    events: int = 0
    passed_bytes: int = 0  # of ``events``: went on as their own bytes (no decode, no re-encode)
    dlq: int = 0
    quarantine: int = 0
    clamped: int = 0  # of ``events``: a far-future time set to the processing time
    rules: dict[str, int] = field(default_factory=dict)


def failure_headers(reason: str, stage: str, src: InRecord) -> list[tuple[str, bytes]]:
    h = list(src.headers or [])
    h += [
        (DLQ_HEADERS["reason"], reason.encode()[:1000]),
        (DLQ_HEADERS["stage"], stage.encode()),
        (DLQ_HEADERS["source_topic"], src.topic.encode()),
        (DLQ_HEADERS["source_partition"], str(src.partition).encode()),
        (DLQ_HEADERS["source_offset"], str(src.offset).encode()),
    ]
    return h


def record_may_need_redaction(reader: EventReader, redactor: Redactor, raw: bytes | None) -> bool:
    """The hot path's prefilter question for one raw record, as ``process`` asks it: True
    unless the record's text clears ``text_may_need_redaction`` (or the reader cannot read it)."""
    got = reader.read_text(raw)
    return got is None or text_may_need_redaction(got[2], got[3], got[4], got[5], got[6], redactor)


def source_alert_id(kind: str, src: InRecord) -> str:
    return hashlib.sha256(f"{kind}|{src.topic}|{src.partition}|{src.offset}".encode()).hexdigest()[:32]


class RedactionStage:
    def __init__(self, codec: Codec, redactor: Redactor, policies: PolicyBook, prefix: str,
                 max_event_ahead_s: float = 86_400.0) -> None:
        self.codec = codec
        self.max_event_ahead_s = max_event_ahead_s
        self.redactor = redactor
        self.policies = policies
        self.events_topic = topic_name("events", prefix)
        self.dlq_topic = topic_name("dlq", prefix)
        self.quarantine_topic = topic_name("quarantine", prefix)
        self.alerts_topic = topic_name("alerts", prefix)
        self.counts = StageCounts()
        sid = codec.resolver.writer_id(EVENT)
        self.patcher = SummaryPatcher(codec.catalog.latest(EVENT).text, sid)
        self.reader = EventReader(codec)

    def process(self, batch: list[InRecord], out: list[OutRecord]) -> list[Redacted]:
        """Appends every output record to ``out``; returns the redacted events for the detectors."""
        passed: list[Redacted] = []
        codec = self.codec
        counts = self.counts
        events_topic = self.events_topic
        now_us = int(time.time() * 1_000_000)
        horizon_us = now_us + int(self.max_event_ahead_s * 1_000_000)
        # The hot path (a record that needs no redaction goes on as its bytes) inline in the loop,
        # its lookups hoisted and the summary found once per tenant and batch: at ~17 µs a record,
        # the method call, tuple and lookups it was cost ~1 µs.
        read_text, redactor, policies = self.reader.read_text, self.redactor, self.policies
        summary = self.patcher.summary
        append, keep = out.append, passed.append
        versions: dict[str, tuple[str, bytes]] = {}  # tenant -> policy version, its summary bytes
        raws = [rec.value for rec in batch]
        gots = [None if raw is None else read_text(raw) for raw in raws]
        # One rule-pattern scan over the batch's texts (prefilter.batch_rule_hits), one verdict
        # per text read, in order; past its match limit each text is scanned on its own.
        hits = batch_rule_hits([got[2] for got in gots if got is not None])
        next_hit = repeat(True).__next__ if hits is None else iter(hits).__next__
        for rec, raw, got in zip(batch, raws, gots):
            if got is not None:
                rule_hit = next_hit()  # taken for every text read, whatever the checks below say
                event, at, text, attrs_at, attrs_end, longest, ends = got
                payload = event["payload"]
                # content goes by the tenant's capture mode, not by its text: the engine's; a
                # far-future time is clamped on the full path
                fits = (not (payload.__class__ is dict and payload.get("content"))
                        and not has_future_time(event, horizon_us))
                if (fits and at >= 0 and raw[at] == 0  # type: ignore[index]
                        and not text_may_need_redaction(text, attrs_at, attrs_end, longest, ends, redactor,
                                                        rule_hit)):
                    tenant = event["tenant_id"]
                    v = versions.get(tenant)
                    if v is None:
                        version = policies.get(tenant).version
                        v = versions[tenant] = (version, summary(version))
                    event["redaction"] = {"policy_version": v[0], "rule_counts": {}}
                    counts.events += 1
                    counts.passed_bytes += 1
                    h = rec.headers
                    append(OutRecord(events_topic, rec.key, b"".join((raw[:at], v[1], raw[at + 1:])),  # type: ignore[index]
                                     list(h) if h else []))
                    keep(Redacted(event, rec))
                    continue
            try:
                name, event = codec.decode(rec.value)
                if name != EVENT:
                    raise DecodeError(f"expected {EVENT} on raw, got {name}")
            except DecodeError as exc:
                self.counts.dlq += 1
                out.append(OutRecord(self.dlq_topic, rec.key, rec.value,
                                     failure_headers(exc.reason, STAGE, rec)))
                continue
            clamped = clamp_future_times(event, now_us, self.max_event_ahead_s)
            policy = self.policies.get(event["tenant_id"])
            try:
                clean = self.redactor.redact_event(event, policy.actions, policy.version, policy.capture_mode)
                if clamped:
                    flag_clamped(clean, clamped)
                # Nothing redacted (the common case): the input bytes plus the summary, no re-encode.
                value = (None if clean["redaction"]["rule_counts"] or rec.value is None or clamped
                         else self.patcher.patch(rec.value, policy.version))
                if value is None:
                    value = codec.encode(EVENT, clean)
            except (RedactionError, ValueError) as exc:
                # fastavro's messages quote the datum: only the exception type leaves this process.
                reason = exc.reason if isinstance(exc, RedactionError) else f"re-encode failed: {type(exc).__name__}"
                self.counts.quarantine += 1
                out.append(OutRecord(self.quarantine_topic, rec.key, rec.value,
                                     failure_headers(reason, STAGE, rec)))
                out.append(self._quarantine_alert(event, rec, reason))
                continue
            self.counts.events += 1
            self.counts.clamped += clamped is not None
            rules = clean["redaction"]["rule_counts"]
            if rules:
                for k, n in rules.items():
                    self.counts.rules[k] = self.counts.rules.get(k, 0) + n
            out.append(OutRecord(self.events_topic, rec.key, value, list(rec.headers or [])))
            passed.append(Redacted(clean, rec))
        return passed

    def _clean_id(self, value: Any) -> str | None:
        # The identifier that failed may itself be the secret: only clean ones go into the alert.
        if not isinstance(value, str):
            return None
        try:
            return None if self.redactor.scan(value) else value
        except RedactionError:
            return None

    def _quarantine_alert(self, event: dict[str, Any], src: InRecord, reason: str) -> OutRecord:
        alert = {
            "alert_id": source_alert_id("redaction_quarantine", src),
            "alert_type": "redaction_quarantine",
            "severity": "WARNING",
            "tenant_id": event["tenant_id"],
            "agent_id": self._clean_id(event.get("agent_id")),
            "agent_version": self._clean_id(event.get("agent_version")),
            "run_id": self._clean_id(event.get("run_id")),
            "title": "event quarantined: redaction could not make it safe",
            # The reason names rules and fields, never the matched value.
            "evidence": {"reason": reason, "event_id": self._clean_id(event.get("event_id")) or ""},
            "detected_us": int(time.time() * 1_000_000),
            "source_offsets": [{"topic": src.topic, "partition": src.partition, "offset": src.offset}],
        }
        return OutRecord(self.alerts_topic, event["tenant_id"].encode(), self.codec.encode(ALERT, alert))
