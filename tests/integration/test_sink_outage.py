"""ClickHouse unavailable for a while (the real chDB, its table detached): the sink pauses,
retries with backoff, commits nothing meanwhile, and catches up with nothing lost or doubled."""
from __future__ import annotations

import time

import pytest

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.sink import Sink, SinkSettings, apply_migrations, make_client

from test_sink_support import own_topics, produce, run_events, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topic_prefix(bootstrap):
    """This module's own topics (see ``own_topics``), not the session's shared ones."""
    return own_topics(bootstrap)


def _count(client, tenant: str, final: str = "") -> int:
    return int(client.query(f"SELECT count() FROM events {final} WHERE tenant_id={{t:String}}",
                            parameters={"t": tenant}).result_rows[0][0])


def _settled(sink, quiet_s: float = 1.0) -> bool:
    """Nothing buffered, and no row stored nor range committed for ``quiet_s`` (several times
    the test's batch_max_seconds): every insert the sink started has been committed."""
    def snap():
        h = sink.health()
        return h["pending_rows"], h["stored_rows"], h["committed_ranges"]

    first = snap()
    time.sleep(quiet_s)
    return first[0] == 0 and snap() == first and sink.health()["last_commit_at"] is not None


def test_sink_rides_out_a_clickhouse_outage(bootstrap, topic_prefix, chdb_client, chdb_path, unique):
    apply_migrations(chdb_client)
    codec = Codec()
    tenant = f"tenant-{unique}"
    topic = topic_name("events", topic_prefix)
    before = run_events(tenant, f"run-{unique}-a", n_steps=2)
    during = [e for i in range(10) for e in run_events(tenant, f"run-{unique}-b{i}", n_steps=3)]
    settings = SinkSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, group_id=f"sink-{unique}",
                            session_timeout_ms=6000, batch_max_rows=200, batch_max_seconds=0.2,
                            topics=["events"], retry_initial_s=0.1, retry_max_s=0.5)
    # the default shape: two insert threads, each with its own handle on the same engine, so
    # ranges fail concurrently and are then retried one at a time
    sink = Sink(settings, client=chdb_client, client_factory=lambda: make_client(f"chdb://{chdb_path}")).start()
    detached = False
    try:
        produce(bootstrap, topic, [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in before])
        wait_for(lambda: _count(chdb_client, tenant) == len(before), what="first run stored")
        # Rows are visible before their offsets are committed, and the sink also works through
        # the shared topic's older records: wait until it is idle, so that no commit of an
        # insert already under way lands after the table is gone.
        wait_for(lambda: _settled(sink), what="the sink idle with everything committed")
        chdb_client.command("DETACH TABLE events")
        detached = True
        commits_at_outage = sink.committed_ranges
        produce(bootstrap, topic, [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in during])
        wait_for(lambda: sink.health()["paused"], what="the sink to pause its partitions")
        wait_for(lambda: sink.health()["last_error"], what="a failed insert")
        # While the table is gone nothing may be committed.
        assert sink.committed_ranges == commits_at_outage
        chdb_client.command("ATTACH TABLE events")
        detached = False
        wait_for(lambda: _count(chdb_client, tenant) == len(before) + len(during), what="catch-up")
        wait_for(lambda: not sink.health()["paused"], what="partitions resumed")
    finally:
        if detached:
            chdb_client.command("ATTACH TABLE events")
        sink.stop()
    assert _count(chdb_client, tenant, "FINAL") == len(before) + len(during)
    assert _count(chdb_client, tenant) == len(before) + len(during)
    runs = chdb_client.query("SELECT count(), sum(event_count) FROM runs FINAL WHERE tenant_id={t:String}",
                             parameters={"t": tenant}).result_rows[0]
    assert runs == (11, len(before) + len(during))
