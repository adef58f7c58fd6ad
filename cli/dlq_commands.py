"""``agentstream dlq tail`` and ``agentstream dlq summary``: the dead-letter topic for on-call.

Both read with a throwaway consumer group and commit nothing, so they never move anyone's
offsets. Records are shown by their headers (reason, stage, source), size and a digest of their
key, never their bytes (cli/dlq_records.py says why).

The processors and the sink write the topic at once, and on the embedded broker a fetch can then
skip a batch (schemas/offset_gaps.py): both read through an ``OffsetGapGuard``, which seeks a
partition back over a jump and reads it again, so ``summary`` does not undercount; offsets that
stayed undelivered are said on stderr.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Optional, TextIO

import typer

from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions

from .dlq_records import Summary, dlq_record, format_line

class DlqUnreadable(RuntimeError):
    """The dead-letter topic could not be read (said in one line by the commands)."""


dlq_app = typer.Typer(help="The dead-letter topic: what was refused, where from, and why.", no_args_is_help=True)


def read_dlq(bootstrap: str, topic: str, on_record: Callable[[dict[str, Any]], bool], *,
             from_beginning: bool, show_keys: bool = False, idle_timeout: float | None = None,
             session_timeout_ms: int = 30000, stop: threading.Event | None = None,
             join_timeout: float = 60.0, gaps: OffsetGapGuard | None = None) -> None:
    """Calls ``on_record`` for each record until it returns False, ``stop`` is set, or nothing
    arrived for ``idle_timeout`` seconds once the partitions were assigned (a group join takes
    seconds). The end is found by idling, never by the high watermark: the embedded broker
    reports end offsets short. With ``idle_timeout``, no assignment within ``join_timeout``
    raises ``DlqUnreadable`` (the topic missing, say) instead of waiting for ever. Reads through
    ``gaps`` (a default guard if None): a fetch that skipped offsets is read again."""
    from confluent_kafka import Consumer

    from agentstream.stream_processors.alerts_io import TAIL_CLOSE_S, close_within

    stop = stop or threading.Event()
    gaps = gaps if gaps is not None else OffsetGapGuard()
    reset = "earliest" if from_beginning else "latest"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-read-{uuid.uuid4().hex}",
                  "auto.offset.reset": reset,
                  "enable.auto.commit": False, "session.timeout.ms": session_timeout_ms})
    last: list[float | None] = [None]  # set when the partitions arrive: idling counts from then

    def assigned(consumer: Any, partitions: Any) -> None:
        gaps.assign(start_positions(consumer, partitions, reset))
        last[0] = time.monotonic()

    def revoked(_consumer: Any, partitions: Any) -> None:
        gaps.forget((tp.topic, tp.partition) for tp in partitions)

    seek = consumer_seek(c)
    try:
        c.subscribe([topic], on_assign=assigned, on_revoke=revoked)
        started = time.monotonic()
        while not stop.is_set():
            since = last[0]
            if idle_timeout is not None and since is None and time.monotonic() - started > join_timeout:
                raise DlqUnreadable(f"no partition of {topic} was assigned in {join_timeout:.0f} s: does the "
                                    "topic exist (agentstream topics create)?")
            if idle_timeout is not None and since is not None and time.monotonic() - since > idle_timeout:
                return
            msgs = c.consume(500, 0.5)
            if any(m.error() is None for m in msgs):
                last[0] = time.monotonic()  # records held back to be read again are no idling
            for m in gaps.admit(msgs, seek):
                if m.error() is not None:
                    continue
                if not on_record(dlq_record(m, show_keys)):
                    return
    finally:
        close_within(c, TAIL_CLOSE_S)


def _settings() -> tuple[str, str, str, int]:
    """Bootstrap servers, topic prefix, the DLQ's topic, session timeout (ms): the processors'
    settings, which ``up``'s stack.json or --bootstrap-servers fill in (cli/main.py)."""
    from agentstream.schemas import topic_name
    from agentstream.stream_processors.settings import ProcessorsSettings

    s = ProcessorsSettings()
    return s.bootstrap_servers, s.topic_prefix, topic_name("dlq", s.topic_prefix), int(s.broker_session_timeout * 1000)


def gap_guard() -> OffsetGapGuard:
    """The processors' ``offset_gap_*`` settings: how long a skipped offset is read again."""
    from agentstream.stream_processors.settings import ProcessorsSettings

    return OffsetGapGuard.from_settings(ProcessorsSettings())


def say_gaps(gaps: OffsetGapGuard, command: str) -> None:
    c = gaps.counts
    if c.accepted:
        typer.echo(f"agentstream {command}: {c.accepted_records} offset(s) of the topic were never delivered "
                   f"after {c.rechecks} re-read(s) (a transactional producer's markers, or records the broker "
                   "lost)", err=True)


def _stop_on_signals() -> threading.Event:
    # Ctrl-C and SIGTERM end the loop between polls, never inside a librdkafka call.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def matches(r: dict[str, Any], prefix: str, stage: str | None, source_topic: str | None,
            reason: str | None) -> bool:
    """The filters: a part, a source topic (``raw`` or ``agentstream.raw``), a reason's text."""
    return ((stage is None or r["stage"] == stage)
            and (source_topic is None or r["source_topic"] in (source_topic, prefix + source_topic))
            and (reason is None or reason.lower() in r["reason"].lower()))


def tail(out: TextIO, *, from_beginning: bool, limit: int, as_json: bool, show_keys: bool,
         stage: str | None, source_topic: str | None, reason: str | None,
         idle_timeout: float | None = None, stop: threading.Event | None = None,
         gaps: OffsetGapGuard | None = None) -> int:
    bootstrap, prefix, topic, session_ms = _settings()
    n = 0

    def show(r: dict[str, Any]) -> bool:
        nonlocal n
        if matches(r, prefix, stage, source_topic, reason):
            out.write((json.dumps(r) if as_json else format_line(r)) + "\n")
            out.flush()
            n += 1
        return not limit or n < limit

    read_dlq(bootstrap, topic, show, from_beginning=from_beginning, show_keys=show_keys,
             idle_timeout=idle_timeout, session_timeout_ms=session_ms, stop=stop, gaps=gaps or gap_guard())
    return n


def summarize(*, idle_s: float, stage: str | None = None, source_topic: str | None = None,
              reason: str | None = None, stop: threading.Event | None = None,
              gaps: OffsetGapGuard | None = None) -> Summary:
    bootstrap, prefix, topic, session_ms = _settings()
    summary = Summary()

    def count(r: dict[str, Any]) -> bool:
        if matches(r, prefix, stage, source_topic, reason):
            summary.add(r)
        return True

    read_dlq(bootstrap, topic, count, from_beginning=True, idle_timeout=idle_s,
             session_timeout_ms=session_ms, stop=stop, gaps=gaps or gap_guard())
    return summary


STAGE = typer.Option(None, "--stage", help="only records dead-lettered by this part (processors stages, sink)")
SOURCE = typer.Option(None, "--source-topic", help="only records from this topic (with or without the prefix)")
REASON = typer.Option(None, "--reason", help="only records whose reason contains this text")


@dlq_app.command("tail")
def dlq_tail(from_beginning: bool = typer.Option(False, "--from-beginning"),
             limit: int = typer.Option(0, help="stop after N records (0 = follow forever)"),
             json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
             show_keys: bool = typer.Option(False, "--show-keys", help="print record keys as they are "
                                            "(default: a digest; keys may be user data)"),
             stage: Optional[str] = STAGE, source_topic: Optional[str] = SOURCE,
             reason: Optional[str] = REASON) -> None:
    """Follow the dead-letter topic: when, which part, from where, the reason (never the bytes)."""
    gaps = gap_guard()
    tail(sys.stdout, from_beginning=from_beginning, limit=limit, as_json=json_out, show_keys=show_keys,
         stage=stage, source_topic=source_topic, reason=reason, stop=_stop_on_signals(), gaps=gaps)
    say_gaps(gaps, "dlq tail")


@dlq_app.command("summary")
def dlq_summary(idle_s: float = typer.Option(3.0, "--idle-s", help="the end: no record for this long"),
                json_out: bool = typer.Option(False, "--json", help="the groups as one JSON document"),
                stage: Optional[str] = STAGE, source_topic: Optional[str] = SOURCE,
                reason: Optional[str] = REASON) -> None:
    """Count everything on the dead-letter topic by part, source topic and reason."""
    gaps = gap_guard()
    try:
        s = summarize(idle_s=idle_s, stage=stage, source_topic=source_topic, reason=reason, stop=_stop_on_signals(),
                      gaps=gaps)
    except DlqUnreadable as exc:
        typer.echo(f"agentstream dlq summary: {exc}", err=True)
        raise typer.Exit(1) from None
    say_gaps(gaps, "dlq summary")
    typer.echo(json.dumps({"total": s.total, "groups": s.rows()}) if json_out else s.render())


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
