"""cli/dlq_records.py: what `agentstream dlq tail|summary` print of a dead-letter record. The
record's bytes never passed redaction, so they are never printed, nor (by default) its key."""
from __future__ import annotations

import json

from agentstream.cli.dlq_commands import matches
from agentstream.cli.dlq_records import Summary, dlq_record, format_line, key_label
from agentstream.schemas import DLQ_HEADERS

SECRET = b"sk-live-51H8r3ALLYs3cr3tK3yTh4tMustN0tL34k"


class Msg:
    def __init__(self, key, value, headers, ts=1_796_580_000_000, partition=0, offset=7):
        self._k, self._v, self._h, self._ts, self._p, self._o = key, value, headers, ts, partition, offset

    def key(self):
        return self._k

    def value(self):
        return self._v

    def headers(self):
        return self._h

    def timestamp(self):
        return (1, self._ts) if self._ts else (0, -1)

    def partition(self):
        return self._p

    def offset(self):
        return self._o


def headers(reason="undecodable: Avro decode failed", stage="redaction", topic="agentstream.raw",
            partition="3", offset="42"):
    return [(DLQ_HEADERS["reason"], reason.encode()), (DLQ_HEADERS["stage"], stage.encode()),
            (DLQ_HEADERS["source_topic"], topic.encode()), (DLQ_HEADERS["source_partition"], partition.encode()),
            (DLQ_HEADERS["source_offset"], offset.encode())]


def test_a_record_is_shown_by_its_headers_size_and_key_digest_never_its_bytes():
    m = Msg(SECRET, b"\x00\x01" + SECRET * 3, headers())
    r = dlq_record(m)
    assert r == {"time": "2026-12-06T18:00:00.000+00:00", "dlq_partition": 0, "dlq_offset": 7,
                 "stage": "redaction", "source_topic": "agentstream.raw", "source_partition": 3,
                 "source_offset": 42, "reason_kind": "undecodable", "reason": "undecodable: Avro decode failed",
                 "key": key_label(SECRET, False), "bytes": 2 + 3 * len(SECRET)}
    shown = format_line(r) + json.dumps(r)
    assert SECRET.decode() not in shown and "sk-live" not in shown
    # the digest tells records of one key together, and only --show-keys prints the key
    assert key_label(SECRET, False) == dlq_record(Msg(SECRET, b"", headers()))["key"] != key_label(b"other", False)
    assert dlq_record(m, show_keys=True)["key"] == SECRET.decode()
    assert key_label(b"\xff\xfe", True) == "0xfffe" and key_label(None, True) == "-"


def test_missing_or_foreign_headers_and_no_timestamp_still_print():
    r = dlq_record(Msg(None, None, [("x-other", b"v")], ts=0))
    assert r["stage"] == "unknown" and r["source_topic"] == "" and r["source_partition"] is None
    assert r["reason_kind"] == "unknown" and r["time"] == "" and r["bytes"] == 0 and r["key"] == "-"
    assert "?" in format_line(r)
    r = dlq_record(Msg(b"k", b"v", headers(partition="x", offset="")))
    assert r["source_partition"] is None and r["source_offset"] is None


def test_a_long_reason_is_cut():
    r = dlq_record(Msg(b"k", b"v", headers(reason="row: " + "x" * 5000)))
    assert len(r["reason"]) == 300 and r["reason_kind"] == "row"


def test_filters_take_a_topic_with_or_without_the_prefix():
    r = dlq_record(Msg(b"k", b"v", headers(stage="sink", topic="agentstream.events", reason="row: bad seq")))
    assert matches(r, "agentstream.", None, "events", None) and matches(r, "agentstream.", None, "agentstream.events", None)
    assert not matches(r, "agentstream.", None, "raw", None) and not matches(r, "agentstream.", None, "vents", None)
    assert matches(r, "agentstream.", "sink", None, "BAD SEQ") and not matches(r, "agentstream.", "redaction", None, None)


def test_summary_groups_by_part_source_and_reason_largest_first():
    s = Summary()
    for i in range(5):
        s.add(dlq_record(Msg(b"k", b"v" * i, headers(partition=str(i % 2)), ts=1_796_580_000_000 + i * 1000)))
    s.add(dlq_record(Msg(b"k", b"v", headers(stage="sink", topic="agentstream.events", reason="row: seq out of range"))))
    rows = s.rows()
    assert [(r["stage"], r["reason_kind"], r["count"]) for r in rows] == [("redaction", "undecodable", 5), ("sink", "row", 1)]
    assert rows[0]["source_partitions"] == [0, 1] and rows[0]["bytes"] == 10
    assert rows[0]["first"] < rows[0]["last"]
    text = s.render()
    assert text.startswith("6 dead-lettered records") and "e.g. row: seq out of range" in text
    assert Summary().render() == "the dead-letter topic holds no records"
