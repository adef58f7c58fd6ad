"""``agentstream dlq tail`` and ``dlq summary`` on the session broker: dead letters produced the
way the processors and the sink produce them (original key and bytes, the reason in headers) are
listed and counted by part, source and reason, and their bytes and keys are never printed."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from agentstream.cli.dlq_commands import summarize, tail
from agentstream.schemas import DLQ_HEADERS, topic_name

pytestmark = pytest.mark.integration
SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def dead_letter(producer: Producer, dlq: str, source: str, stage: str, reason: str, offset: int) -> None:
    producer.produce(dlq, key=f"run-with-{SECRET}".encode(), value=f"\x00garbage {SECRET}".encode(), headers=[
        (DLQ_HEADERS["reason"], reason.encode()), (DLQ_HEADERS["stage"], stage.encode()),
        (DLQ_HEADERS["source_topic"], source.encode()), (DLQ_HEADERS["source_partition"], b"2"),
        (DLQ_HEADERS["source_offset"], str(offset).encode())])


@pytest.fixture
def letters(bootstrap, topic_prefix, unique, monkeypatch):
    monkeypatch.setenv("AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("AGENTSTREAM_PROCESSORS_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("AGENTSTREAM_PROCESSORS_BROKER_SESSION_TIMEOUT", "6")
    source = f"{topic_prefix}src-{unique}"
    p = Producer({"bootstrap.servers": bootstrap})
    dlq = topic_name("dlq", topic_prefix)
    for i in range(3):
        dead_letter(p, dlq, source, "redaction", "undecodable: not an Avro record", i)
    dead_letter(p, dlq, source, "sink", "row: seq out of range", 3)
    assert p.flush(30) == 0
    return source


def test_tail_lists_each_dead_letter_by_its_headers_never_its_bytes(letters):
    out = io.StringIO()
    n = tail(out, from_beginning=True, limit=0, as_json=True, show_keys=False, stage=None,
             source_topic=letters, reason=None, idle_timeout=4.0)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == 4 and [(r["stage"], r["source_offset"]) for r in rows] == [
        ("redaction", 0), ("redaction", 1), ("redaction", 2), ("sink", 3)]
    assert all(r["source_partition"] == 2 and r["bytes"] > 0 and r["key"].startswith("k:") for r in rows)
    assert SECRET not in out.getvalue()
    out = io.StringIO()
    assert tail(out, from_beginning=True, limit=1, as_json=False, show_keys=False, stage="sink",
                source_topic=letters, reason="SEQ", idle_timeout=4.0) == 1
    assert "row: seq out of range" in out.getvalue() and SECRET not in out.getvalue()


def test_summary_counts_by_part_source_and_reason(letters):
    s = summarize(idle_s=3.0, source_topic=letters)
    assert [(r["stage"], r["reason_kind"], r["count"]) for r in s.rows()] == [("redaction", "undecodable", 3),
                                                                              ("sink", "row", 1)]


def test_the_command_line(letters, bootstrap, topic_prefix):
    env = {**os.environ, "AGENTSTREAM_PROCESSORS_TOPIC_PREFIX": topic_prefix}
    proc = subprocess.run([sys.executable, "-m", "agentstream.cli.main", "--bootstrap-servers", bootstrap,
                           "dlq", "summary", "--json", "--idle-s", "3", "--source-topic", letters],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total"] == 4 and {g["stage"] for g in doc["groups"]} == {"redaction", "sink"}
    assert SECRET not in proc.stdout + proc.stderr


def test_a_topic_that_is_not_there_is_one_clear_error(bootstrap, unique):
    from agentstream.cli.dlq_commands import DlqUnreadable, read_dlq

    seen: list = []
    with pytest.raises(DlqUnreadable, match=f"absent-{unique}.dlq.*topics create"):
        read_dlq(bootstrap, f"absent-{unique}.dlq", seen.append, from_beginning=True, idle_timeout=2.0,
                 session_timeout_ms=6000, join_timeout=8.0)
    assert seen == []
