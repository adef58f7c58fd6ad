"""The sink's inserts carry a ClickHouse priority below the API's run reads (0 turns it off)."""
from __future__ import annotations

from agentstream.schemas import Codec
from agentstream.sink.retention import RetentionBook
from agentstream.sink.settings import SinkSettings
from agentstream.sink.writer import INSERT_PRIORITY, RangeWriter


def writer(**kw) -> RangeWriter:
    return RangeWriter(lambda: None, Codec(), RetentionBook(30, 90), "g", **kw)


def test_inserts_run_at_the_sink_priority_with_their_dedup_token() -> None:
    s = writer().insert_settings("tok")
    assert s["priority"] == INSERT_PRIORITY > 1
    assert s["insert_deduplication_token"] == "tok" and s["insert_deduplicate"] == 1


def test_priority_zero_sends_no_priority() -> None:
    assert "priority" not in writer(priority=0).insert_settings("tok")


def test_the_setting_defaults_to_the_writer_priority() -> None:
    assert SinkSettings().insert_priority == INSERT_PRIORITY
