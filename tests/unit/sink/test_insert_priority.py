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


class _Refusing:
    """A client whose server profile constrains the ``priority`` setting (ClickHouse code 452)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def insert(self, table, rows, column_names, settings):
        self.calls.append(dict(settings))
        if "priority" in settings:
            err = RuntimeError("Code: 452. DB::Exception: Setting priority should not be changed. "
                               "(SETTING_CONSTRAINT_VIOLATION)")
            err.code = 452
            raise err


def test_a_server_that_refuses_the_priority_gets_the_insert_without_it_from_then_on() -> None:
    from kafka_records import Rec

    from agentstream.schemas import EVENT
    from agentstream.sink.ledger import OffsetRange
    from agentstream.sink.tables import TABLE_SPECS
    from agentstream.stream_processors import synthetic as syn

    codec = Codec()

    class EventRec(Rec):
        def value(self) -> bytes:
            return codec.encode(EVENT, syn.run_start("t", f"r{self.offset()}"))

    client = _Refusing()
    w = RangeWriter(lambda: client, codec, RetentionBook(30, 90), "g")
    msgs = [EventRec(i) for i in range(2)]
    rng = OffsetRange(msgs[0].topic(), 0, 0, 1)
    stored, rejected = w.store(TABLE_SPECS["events"], {"range": rng}, msgs)
    assert stored["python"] == 2 and not rejected
    assert [("priority" in c) for c in client.calls] == [True, False]  # refused once, then without
    assert w.priority == 0 and "priority" not in w.insert_settings("t2")
    w.store(TABLE_SPECS["events"], {"range": rng}, msgs)
    assert "priority" not in client.calls[-1] and len(client.calls) == 3
