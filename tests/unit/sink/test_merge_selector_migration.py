"""Migration 0012: the write-heavy tables merge each row again less often (merge_selector_base
10), and the other tables keep ClickHouse's default."""
from __future__ import annotations

import uuid

import clickhouse_connect
import pytest

from agentstream.sink.storage import apply_migrations


@pytest.fixture
def db(chdb_client, chdb_path):
    name = f"msb_{uuid.uuid4().hex[:8]}"
    chdb_client.command(f"CREATE DATABASE {name}")
    yield clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), database=name)
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")


def test_events_run_events_and_runs_merge_with_base_10_and_the_rest_keep_the_default(db):
    apply_migrations(db)
    full = dict(db.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
                         "AND engine LIKE '%MergeTree'").result_rows)
    tuned = {t for t, e in full.items() if "merge_selector_base = 10" in e}
    assert tuned == {"events", "run_events", "runs"}
    # applying again (a restart) changes nothing
    apply_migrations(db)
    again = dict(db.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
                          "AND engine LIKE '%MergeTree'").result_rows)
    assert again == full
