"""The pure half of view_repair: which keys a view target lacks, and a view's query re-sourced."""
from __future__ import annotations

import pytest

from agentstream.sink.cluster import ClusterPlan, ClusterSchemaError, cluster_statements
from agentstream.sink.storage import load_migrations
from agentstream.sink.view_repair import DERIVED_FROM_EVENTS, NO_DERIVED_VIEWS, DerivedTable, classify, over

RUNS = DerivedTable("runs", "runs_mv", ("tenant_id", "run_id"), "event_count")
PER_EVENT = DerivedTable("run_events", "run_events_mv", ("tenant_id", "run_id", "event_id"), None)


def test_a_key_is_held_when_the_target_agrees_with_events_and_lacking_when_short_by_the_range():
    contrib = {1: 3.0, 2: 5.0, 3: 2.0}
    truth = {1: 10.0, 2: 5.0, 3: 4.0}
    have = {1: 10.0, 2: 0.0, 3: 2.0}
    assert classify(RUNS, contrib, truth, have) == ([2, 3], [])


def test_a_key_short_by_anything_but_the_range_is_left_unsure_never_filled():
    # another insert caught between events and the target (short by 1, not by the range's 3),
    # and a key the target counts more than events do (a fill would make it worse)
    contrib = {1: 3.0, 2: 3.0}
    truth = {1: 10.0, 2: 10.0}
    have = {1: 9.0, 2: 13.0}
    assert classify(RUNS, contrib, truth, have) == ([], [1, 2])


def test_a_per_event_target_is_held_by_any_row_of_the_key():
    assert classify(PER_EVENT, {1: 1.0, 2: 1.0}, {}, {1: 2.0}) == ([2], [])


@pytest.mark.parametrize("source", [
    "FROM default.events", "FROM events", "FROM `default`.`events`", "FROM events_local AS events",
])
def test_a_view_query_is_re_sourced_from_deduplicated_events_whatever_its_spelling(source):
    select = f"SELECT tenant_id, count() AS n {source} WHERE events.kind = 'STEP' GROUP BY tenant_id"
    got = over(select, "tenant_id IN {tenants:Array(String)}")
    assert "FROM (SELECT * FROM events FINAL WHERE tenant_id IN {tenants:Array(String)}) AS events WHERE" in got
    assert got.count("FROM") == 2


@pytest.mark.parametrize("select", ["SELECT 1 FROM events_avro_staging", "SELECT 1 FROM eventsx", "SELECT 1"])
def test_a_query_without_events_as_its_source_is_refused(select):
    with pytest.raises(ValueError):
        over(select, "1")


def test_every_view_derived_from_events_is_settled_and_skips_the_marked_inserts():
    """A new view over events that the repair does not know would be left short after a kill,
    and one that does not skip the marked inserts would count a repaired record twice."""
    latest: dict[str, str] = {}  # view -> its body as last created
    for mig in load_migrations():
        for stmt in mig.statements:
            body = "\n".join(line for line in stmt.splitlines() if not line.lstrip().startswith("--")).strip()
            head = body.split("\n", 1)[0]
            if head.startswith("CREATE MATERIALIZED VIEW") and "\nFROM events\n" in body + "\n":
                latest[head.split()[6]] = body
    assert set(latest) == {t.view for t in DERIVED_FROM_EVENTS}
    for view, body in latest.items():
        assert f"getSetting('log_comment') != '{NO_DERIVED_VIEWS}'" in body, view


def test_a_recreated_view_reads_the_shards_local_tables_on_a_cluster():
    plan = ClusterPlan("c1")
    out = []
    for mig in load_migrations():
        for stmt in mig.statements:
            out.extend(cluster_statements(plan, stmt))
    drops = [s for s in out if s.startswith("DROP VIEW")]
    assert sorted(drops) == sorted(f"DROP VIEW IF EXISTS {t.view} ON CLUSTER c1 SYNC" for t in DERIVED_FROM_EVENTS)
    for t in DERIVED_FROM_EVENTS:
        created = [s for s in out if s.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {t.view} ")]
        assert len(created) == 2 and all("FROM events_local AS events" in s for s in created)
        assert NO_DERIVED_VIEWS in created[-1] and out.index(created[-1]) > out.index(
            f"DROP VIEW IF EXISTS {t.view} ON CLUSTER c1 SYNC")
    with pytest.raises(ClusterSchemaError):
        cluster_statements(ClusterPlan("c1"), "DROP VIEW IF EXISTS nobody_mv")
