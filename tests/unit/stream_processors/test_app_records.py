"""The fleet agent's faust messages become the chain's records with list headers and milliseconds."""
from __future__ import annotations

from types import SimpleNamespace

from agentstream.stream_processors.app import in_record


def _msg(headers, timestamp):
    return SimpleNamespace(topic="t.fleet", partition=3, offset=41, key=b"k", value=b"v",
                           headers=headers, timestamp=timestamp)


def test_mapping_headers_become_a_list_and_seconds_become_milliseconds():
    rec = in_record(_msg({"agentstream-stage": b"fleet"}, 1796540000.1234))
    assert rec.headers == [("agentstream-stage", b"fleet")]
    assert rec.timestamp_ms == 1796540000123
    assert (rec.topic, rec.partition, rec.offset, rec.key, rec.value) == ("t.fleet", 3, 41, b"k", b"v")


def test_list_headers_and_a_missing_timestamp_pass_as_they_are():
    rec = in_record(_msg([("a", b"1")], None))
    assert rec.headers == [("a", b"1")] and rec.timestamp_ms is None
