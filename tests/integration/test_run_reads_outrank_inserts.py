"""Inside ClickHouse (chDB here), run reads outrank the sink's inserts: an insert sent with the
sink's settings pauses while a run read at ``READ_FIRST`` executes, and reads at the default
priority never pause it (ClickHouse counts each pause in ``QueryPreempted``)."""
from __future__ import annotations

import threading
from typing import Any

from agentstream.api.db import Db, sibling_factory
from agentstream.api.store.read_priority import DefaultPriority
from agentstream.api.store.runs import run_events
from agentstream.schemas import Codec
from agentstream.sink import apply_migrations
from agentstream.sink.retention import RetentionBook
from agentstream.sink.writer import RangeWriter


def preempted(db: Db) -> int:
    row = db.one("SELECT value AS n FROM system.events WHERE event = 'QueryPreempted'")
    return int(row["n"]) if row else 0


def pauses_beside_reads(chdb_client: Any, reads: Any, counter: Db, table: str, token: str) -> int:
    """QueryPreempted's growth while one insert with the sink's settings runs and ``reads``
    keeps reading a run's events on handles of its own."""
    factory = sibling_factory(chdb_client)
    assert factory is not None
    inserter = factory()
    settings = RangeWriter(lambda: inserter, Codec(), RetentionBook(30, 90), "g").insert_settings(token)
    before = preempted(counter)
    done = threading.Event()

    def insert() -> None:
        try:
            inserter.command(f"INSERT INTO {table} SELECT number, toString(sipHash64(number)) "
                             "FROM numbers(4000000)", settings=settings)
        finally:
            done.set()

    t = threading.Thread(target=insert)
    t.start()
    reads_done = 0
    while not done.is_set() or reads_done == 0:
        assert run_events(reads, "tenant-prio", "no-such-run") == []
        reads_done += 1
    t.join()
    inserter.close()
    return preempted(counter) - before


def test_run_reads_pause_the_sinks_inserts_and_default_reads_do_not(chdb_client, unique):
    apply_migrations(chdb_client)
    table = f"prio_scratch_{unique}"
    chdb_client.command(f"CREATE TABLE {table} (x UInt64, s String) ENGINE = MergeTree ORDER BY x")
    try:
        db = Db(None, sibling_factory(chdb_client), pool_size=2)
        # the control first: reads at the default priority leave the insert alone
        assert pauses_beside_reads(chdb_client, DefaultPriority(db), db, table, f"a-{unique}") == 0
        assert pauses_beside_reads(chdb_client, db, db, table, f"b-{unique}") > 0
    finally:
        chdb_client.command(f"DROP TABLE IF EXISTS {table}")
