"""Migration 0010 (run_events, run detail's own copy of each event): events stored before it are
copied once, events stored after it arrive through its view, and both read back as events does."""
from __future__ import annotations

import shutil
import uuid

import clickhouse_connect
import pytest

from agentstream.api.store.runs import decode_run_event
from agentstream.sink.storage import MIGRATIONS_DIR, apply_migrations

INSERT = """
INSERT INTO events (tenant_id, ts, event_id, agent_id, agent_version, environment, run_id, seq, kind,
                    step_kind, name, status, latency_ms, run_status, duration_ms, retention_days)
SELECT {t:String}, now64(6) - toIntervalSecond(100 - number), concat({r:String}, '-', toString(number)),
       'ag', '1', 'prod', {r:String}, number, multiIf(number = 0, 'RUN_START', number = 4, 'RUN_END', 'STEP'),
       if(number IN (1, 2, 3), 'TOOL', ''), concat('n', toString(number)), if(number IN (1, 2, 3), 'OK', ''),
       number * 1.5, if(number = 4, 'SUCCESS', ''), if(number = 4, 40.0, 0), 7
FROM numbers(5)"""
COPIES = """
SELECT r.event_id, r.ts = e.ts AND r.retention_days = e.retention_days AND r.inserted_at = e.inserted_at,
       base64Encode(r.detail), e.kind, e.name, e.latency_ms, e.seq
FROM run_events AS r LEFT JOIN (SELECT * FROM events FINAL) AS e USING (tenant_id, run_id, event_id)
WHERE r.tenant_id = {t:String}"""


@pytest.fixture
def db(chdb_client, chdb_path):
    name = f"mig_{uuid.uuid4().hex[:8]}"
    chdb_client.command(f"CREATE DATABASE {name}")
    yield clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), database=name)
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")  # async: its files go in the background


def test_events_stored_before_0010_are_copied_once_and_later_ones_flow_through_its_view(db, tmp_path):
    before = tmp_path / "migrations"
    before.mkdir()
    for f in MIGRATIONS_DIR.glob("*.sql"):
        if int(f.name[:4]) < 10:
            shutil.copy(f, before / f.name)
    assert 10 not in apply_migrations(db, before)
    db.command(INSERT, parameters={"t": "acme", "r": "old-run"})

    assert 10 in apply_migrations(db)
    db.command(INSERT, parameters={"t": "acme", "r": "new-run"})
    assert apply_migrations(db) == []  # recorded: a restart does not copy again

    per_run = dict(db.query("SELECT run_id, count() FROM run_events WHERE tenant_id = 'acme' GROUP BY run_id").result_rows)
    assert per_run == {"old-run": 5, "new-run": 5}
    # every copy carries its event's key, time, retention, insert time and fields
    for eid, same_keys, detail, kind, name, latency, seq in db.query(COPIES, parameters={"t": "acme"}).result_rows:
        ev = decode_run_event(detail)
        assert same_keys and (ev["event_id"], ev["kind"], ev["name"], ev["latency_ms"], ev["seq"]) == (
            eid, kind, name, latency, seq)
    # and the table's own keys: expiry by the event's own retention, one row kept per event
    ddl = db.command("SHOW CREATE TABLE run_events")
    assert "ReplacingMergeTree(inserted_at)" in ddl and "ORDER BY (tenant_id, run_id, event_id)" in ddl
    assert "TTL toDateTime(ts) + toIntervalDay(retention_days)" in ddl
