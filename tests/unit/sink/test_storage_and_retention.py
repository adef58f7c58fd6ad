"""Migration files, settings and the retention book: no ClickHouse needed."""
from __future__ import annotations

from agentstream.schemas import POLICY, Codec
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.retention import RetentionBook
from agentstream.sink.settings import SinkSettings
from agentstream.sink.storage import load_migrations, split_statements


def test_migrations_are_numbered_and_split_on_semicolon_lines():
    migs = load_migrations()
    assert [m.version for m in migs] == sorted(m.version for m in migs)
    assert migs[0].version == 1 and all(m.statements for m in migs)
    assert split_statements("-- c\nSELECT 1\n;\n-- only a comment\n;\nSELECT 2") == ["-- c\nSELECT 1", "SELECT 2"]


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("AGENTSTREAM_SINK_BATCH_MAX_ROWS", "123")
    monkeypatch.setenv("AGENTSTREAM_SINK_TOPICS", '["events"]')
    s = SinkSettings()
    assert s.batch_max_rows == 123 and s.topics == ["events"] and s.session_timeout_ms == 45_000
    assert s.embedded().session_timeout_ms == 6000 and s.clickhouse_dsn == "chdb://.agentstream/chdb"


def test_retention_book_follows_policies_and_tombstones():
    codec = Codec()
    book = RetentionBook(30, 90)
    book.apply_record(codec, b"t1", codec.encode(POLICY, {"tenant_id": "t1", "retention_days": 7}))
    book.apply_record(codec, b"t2", codec.encode(POLICY, {"tenant_id": "t2", "retention_days": 400}))
    assert (book.events_days("t1"), book.events_days("t2"), book.events_days("t3")) == (7, 400, 30)
    assert (book.alerts_days("t1"), book.alerts_days("t2")) == (90, 400)
    book.apply_record(codec, b"t1", None)
    book.apply_record(codec, b"x", b"not avro")  # skipped, not fatal
    assert book.events_days("t1") == 30


def test_dedup_token_names_the_range_and_its_first_timestamp():
    r = OffsetRange("agentstream.events", 3, 100, 199, 1_700_000_000_000)
    assert r.token == "agentstream.events/3/100-199@1700000000000"
    assert r.token != OffsetRange("agentstream.events", 3, 100, 199, 1).token
