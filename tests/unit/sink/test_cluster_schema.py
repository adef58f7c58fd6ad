"""The cluster schema (sink/cluster.py): parsed by ClickHouse's own parser, and held to the
embedded schema's columns by running it, reduced to one node, in chDB next to the embedded one.

chDB has no Keeper and no remote_servers, so it cannot execute ``ON CLUSTER`` or a
``Replicated``/``Distributed`` engine; it parses them. The reduction (``single_node``) changes
only those three things, so what it runs is otherwise the generated text itself: its columns,
views (reading the local tables), backfills and the per-cluster migration record.
"""
from __future__ import annotations

import re
import uuid

import clickhouse_connect
import pytest

from agentstream.sink.cluster import (GLOBAL_TABLES, LOCAL_SUFFIX, ClusterSchemaError, ClusterPlan,
                                      apply_cluster_migrations, cluster_migrations, cluster_statements,
                                      render_sql)
from agentstream.sink.storage import apply_migrations, load_migrations

CLUSTER = "agentstream_prod"


def single_node(stmt: str) -> str:
    """The cluster DDL as one node without Keeper would run it (test-only reduction)."""
    s = stmt.replace(f" ON CLUSTER {CLUSTER}", "")
    s = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", s)
    s = s.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    s = re.sub(rf"Distributed\({CLUSTER}, currentDatabase\(\), (\w+), .*\)$", r"Merge(currentDatabase(), '^\1$')", s)
    # a backfill goes through Distributed; a Merge table cannot be written, so write its local table
    return re.sub(r"^INSERT INTO (\w+)", rf"INSERT INTO \1{LOCAL_SUFFIX}", s)


class SingleNode:
    """A chDB client that runs each cluster statement through ``single_node``."""

    def __init__(self, client):
        self.client = client
        self.ran: list[str] = []

    def command(self, sql, settings=None):
        self.ran.append(sql)
        return self.client.command(single_node(sql), settings=settings)

    def query(self, sql, **kw):
        return self.client.query(sql, **kw)

    def insert(self, *a, **kw):
        return self.client.insert(*a, **kw)


@pytest.fixture(scope="module")
def databases(chdb_client, chdb_path):
    suffix = uuid.uuid4().hex[:8]
    emb, clu = f"emb_{suffix}", f"clu_{suffix}"
    for db in (emb, clu):
        chdb_client.command(f"CREATE DATABASE {db}")
    e = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), database=emb)
    c = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), database=clu)
    apply_migrations(e)
    node = SingleNode(c)
    applied = apply_cluster_migrations(node, CLUSTER)
    yield {"emb": emb, "clu": clu, "client": chdb_client, "node": node, "applied": applied, "c": c}
    for db in (emb, clu):
        chdb_client.command(f"DROP DATABASE IF EXISTS {db} SYNC")


def _statements() -> list[str]:
    return [s for m in cluster_migrations(CLUSTER) for s in m.statements]


def _columns(client, db: str) -> dict[str, list[tuple]]:
    rows = client.query(
        "SELECT table, name, type, default_kind, default_expression FROM system.columns "
        "WHERE database = {db:String} AND table IN (SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine != 'MaterializedView') ORDER BY table, position", parameters={"db": db}).result_rows
    out: dict[str, list[tuple]] = {}
    for table, *col in rows:
        out.setdefault(table, []).append(tuple(col))
    return out


def _format(client, sql: str) -> str:
    return client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}).result_rows[0][0]


def test_every_cluster_statement_parses_and_formats_as_clickhouse_reads_it(chdb_client):
    stmts = _statements()
    assert len(stmts) > 40
    for stmt in stmts:
        ast = chdb_client.query("EXPLAIN AST " + stmt).result_rows
        assert ast, stmt[:80]
        formatted = _format(chdb_client, stmt)
        if stmt.startswith(("CREATE", "ALTER")):
            # ClickHouse's own rendering holds the clause: nothing was lost in a comment or string
            assert f"ON CLUSTER {CLUSTER}" in formatted, formatted[:200]
        # and it parses to the same statement again
        assert _format(chdb_client, formatted) == formatted


def test_engines_are_replicated_with_keeper_paths_and_reads_are_distributed():
    for stmt in _statements():
        if not stmt.startswith("CREATE TABLE"):
            continue
        name = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", stmt).group(1)
        engine = re.search(r"ENGINE = (\w+)", stmt).group(1)
        if name in GLOBAL_TABLES:
            assert engine.startswith("Replicated") and f"/{CLUSTER}/all/" in stmt
        elif name.endswith(LOCAL_SUFFIX):
            assert engine == "Null" or (engine.startswith("Replicated") and f"/{CLUSTER}/{{shard}}/" in stmt)
            assert "non_replicated_deduplication_window" not in stmt
        else:
            assert engine == "Distributed", name
            assert f"AS {name}{LOCAL_SUFFIX}" in stmt


def test_a_run_stays_on_one_shard_whichever_table_holds_it():
    keys = {}
    for stmt in _statements():
        m = re.search(r"CREATE TABLE IF NOT EXISTS (\w+) .*Distributed\(\S+, currentDatabase\(\), \w+, (.*)\)$", stmt, re.S)
        if m:
            keys[m.group(1)] = m.group(2)
    # the sink's two paths (Avro staging v1/v2, rows into events) and the run's own row and alerts
    for table in ("events", "events_avro_staging", "events_avro_staging_v2", "runs", "alerts"):
        assert keys[table] == "kafkaMurmurHash(run_id)", table
    assert set(keys) >= {"step_rollup_hourly", "cost_rollup_daily", "cost_rollup_daily_user"}


def test_one_kafka_partition_lands_on_one_shard_when_shards_divide_partitions(chdb_client):
    """The key is Kafka's partitioner hash: a sink range (one partition's records) is one shard's
    block, so a container ClickHouse refuses is refused whole, as on one server."""
    import random

    from agentstream.schemas.topics import partition_for

    rnd = random.Random(23)
    alphabet = "abcXYZ019-_:/é漢🙂 \t'\""
    ids = [""] + [f"run-{rnd.random()}"] + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 60)))
                                           for _ in range(400)]
    hashes = chdb_client.query("SELECT arrayMap(x -> kafkaMurmurHash(x), {ids:Array(String)})",
                               parameters={"ids": ids}).result_rows[0][0]
    for run_id, h in zip(ids, hashes):
        for partitions, shards in ((8, 2), (12, 4), (48, 4), (48, 3), (64, 8)):
            assert h % partitions == partition_for(run_id.encode(), partitions), run_id
            # the Distributed table's shard (key modulo the shards) is a function of the partition
            assert h % shards == partition_for(run_id.encode(), partitions) % shards


def test_cluster_and_embedded_schemas_have_the_same_columns(databases):
    emb = _columns(databases["client"], databases["emb"])
    clu = _columns(databases["client"], databases["clu"])
    for table, cols in emb.items():
        if table in GLOBAL_TABLES:
            assert clu[table] == cols, table
            continue
        assert clu[table + LOCAL_SUFFIX] == cols, table
        assert clu[table] == cols, f"{table} (the read table)"
    assert set(clu) == set(emb) | {t + LOCAL_SUFFIX for t in emb if t not in GLOBAL_TABLES}


def test_views_run_on_the_shard_tables(databases):
    c, node = databases["c"], databases["node"]
    views = [s for s in node.ran if s.startswith("CREATE MATERIALIZED VIEW")]
    assert views and all(re.search(r" TO \w+_local AS", v) for v in views)
    c.command(
        "INSERT INTO events_local (tenant_id, ts, event_id, agent_id, agent_version, environment, run_id, seq, "
        "kind, step_kind, name, status, request_model, input_tokens, cost_usd, attributes, redaction_counts) "
        "VALUES ('t1', now64(6), 'e1', 'a', '1', 'prod', 'r1', 1, 'STEP', 'LLM', 'call', 'OK', "
        "'m', 10, 0.5, {}, {})")
    assert c.query("SELECT run_id, step_count, llm_calls FROM runs_local FINAL").result_rows == [("r1", 1, 1)]
    assert c.command("SELECT sum(events) FROM step_rollup_hourly_local") == 1
    assert float(c.command("SELECT sum(cost_usd) FROM cost_rollup_daily_local")) == 0.5
    # (a timestamp of now: the tables' TTL drops rows older than their retention on insert)
    # and the read table (Merge here, Distributed on a cluster) answers for it
    assert c.command("SELECT count() FROM events WHERE tenant_id = 't1'") == 1


def test_the_migration_record_is_the_clusters_and_a_rerun_applies_nothing(databases):
    assert databases["applied"] == [m.version for m in load_migrations()]
    assert apply_cluster_migrations(databases["node"], CLUSTER) == []


@pytest.mark.parametrize("stmt", [
    "DROP TABLE events",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Log",
    "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = MergeTree ORDER BY x",  # no tenant_id to shard on
    "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO events AS SELECT * FROM somewhere_else",
    "ALTER TABLE unknown_table ADD COLUMN x UInt8",
    "ALTER TABLE events ADD COLUMN `quoted` UInt8",  # a form half known: its column is not read
    "INSERT INTO sink_batches SELECT 1",
])
def test_statements_without_a_known_cluster_form_are_refused(stmt):
    plan = ClusterPlan(CLUSTER)
    for s in load_migrations()[0].statements:
        cluster_statements(plan, s)
    with pytest.raises(ClusterSchemaError):
        cluster_statements(plan, stmt)


@pytest.mark.parametrize("name", ["", "prod; DROP TABLE events", "a b", "x'y", "{shard}", "prod-eu", "1st", "a.b"])
def test_bad_cluster_names_are_refused(name):
    with pytest.raises(ClusterSchemaError):
        cluster_migrations(name)


def test_render_sql_lists_every_migration_in_order():
    text = render_sql(CLUSTER)
    heads = re.findall(r"^-- (\d{4})_", text, re.M)
    assert [int(h) for h in heads] == [m.version for m in load_migrations()]


def test_migrate_command_prints_the_cluster_schema_and_refuses_bad_names():
    import typer
    from typer.testing import CliRunner

    from agentstream.sink.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = runner.invoke(app, ["migrate", "--cluster", CLUSTER, "--print"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == render_sql(CLUSTER).strip()
    same = runner.invoke(app, ["sink", "migrate", "--cluster", CLUSTER, "--print"])
    assert same.output == out.output
    bad = runner.invoke(app, ["migrate", "--cluster", "prod;DROP", "--print"])
    assert bad.exit_code == 2 and "cluster name" in bad.output


def test_sql_reads_the_distributed_tables_and_never_a_shard(databases):
    """/v1/sql's catalog (api/store/sql.py readable_tables) on the cluster schema's tables and
    engines is exactly the embedded one: the same names, now Distributed; no *_local table."""
    from agentstream.api.store.sql import readable_tables

    def tenant_tables(db: str) -> dict[str, str]:
        rows = databases["client"].query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String} "
            "AND engine != 'MaterializedView' AND name IN "
            "(SELECT table FROM system.columns WHERE database = {db:String} AND name = 'tenant_id')",
            parameters={"db": db}).result_rows
        return dict(rows)

    embedded = readable_tables(tenant_tables(databases["emb"]))
    # the engines as the cluster has them (the reduction ran Merge/plain engines in their place)
    engines = {}
    for stmt in _statements():
        m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) .*?ENGINE = (\w+)", stmt, re.S)
        if m:
            engines[m.group(1)] = m.group(2)
    cluster = {n: engines[n] for n in tenant_tables(databases["clu"])}
    assert any(e == "Distributed" for e in cluster.values())
    assert readable_tables(cluster) == embedded
    assert embedded >= {"events", "runs", "alerts", "step_rollup_hourly", "cost_rollup_daily"}
    assert not any(n.endswith(LOCAL_SUFFIX) or "staging" in n for n in embedded)


def test_a_future_migration_gets_its_cluster_form(tmp_path):
    """A new migration's statements, one of each kind, in a directory of their own."""
    (tmp_path / "0001_base.sql").write_text(
        "CREATE TABLE IF NOT EXISTS facts\n(\n    tenant_id String,\n    run_id String,\n    n UInt64,\n"
        "    INDEX idx_n n TYPE minmax GRANULARITY 1\n)\nENGINE = ReplacingMergeTree(n)\nORDER BY (tenant_id, run_id)\n"
        "SETTINGS non_replicated_deduplication_window = 1000\n;\n"
        "CREATE TABLE IF NOT EXISTS per_tenant\n(\n    tenant_id String,\n    total SimpleAggregateFunction(sum, UInt64)\n)\n"
        "ENGINE = AggregatingMergeTree\nORDER BY tenant_id\n;\n"
        "CREATE MATERIALIZED VIEW IF NOT EXISTS per_tenant_mv TO per_tenant AS\n"
        "SELECT tenant_id, sum(facts.n) AS total FROM facts GROUP BY tenant_id\n;\n"
        "ALTER TABLE facts ADD COLUMN IF NOT EXISTS extra String DEFAULT '' AFTER n\n;\n"
        "ALTER TABLE facts DROP COLUMN IF EXISTS extra\n;\n"
        "ALTER TABLE facts ADD INDEX IF NOT EXISTS idx_run run_id TYPE bloom_filter(0.01) GRANULARITY 1\n;\n"
        "INSERT INTO per_tenant SELECT tenant_id, sum(n) FROM facts FINAL GROUP BY tenant_id\n")
    (mig,) = cluster_migrations("c1", tmp_path)
    s = list(mig.statements)
    assert s[0].startswith("CREATE TABLE IF NOT EXISTS facts_local ON CLUSTER c1 (")
    # the engine's own argument (the version column) follows the Keeper path and replica
    assert "ReplicatedReplacingMergeTree('/clickhouse/agentstream/c1/{shard}/{database}/facts_local', '{replica}', n)" in s[0]
    assert "SETTINGS replicated_deduplication_window = 1000" in s[0]
    assert s[1].endswith("Distributed(c1, currentDatabase(), facts_local, kafkaMurmurHash(run_id))")
    assert s[3].endswith("Distributed(c1, currentDatabase(), per_tenant_local, cityHash64(tenant_id))")
    assert s[4] == ("CREATE MATERIALIZED VIEW IF NOT EXISTS per_tenant_mv ON CLUSTER c1 TO per_tenant_local AS\n"
                    "SELECT tenant_id, sum(facts.n) AS total FROM facts_local AS facts GROUP BY tenant_id")
    # a column change reaches the shard tables and the read table; an index only the shards
    assert s[5:7] == ["ALTER TABLE facts_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS extra String DEFAULT '' AFTER n",
                      "ALTER TABLE facts ON CLUSTER c1 ADD COLUMN IF NOT EXISTS extra String DEFAULT '' AFTER n"]
    assert s[7:9] == ["ALTER TABLE facts_local ON CLUSTER c1 DROP COLUMN IF EXISTS extra",
                      "ALTER TABLE facts ON CLUSTER c1 DROP COLUMN IF EXISTS extra"]
    assert s[9] == "ALTER TABLE facts_local ON CLUSTER c1 ADD INDEX IF NOT EXISTS idx_run run_id TYPE bloom_filter(0.01) GRANULARITY 1"
    assert s[10].startswith("INSERT INTO per_tenant SELECT") and len(s) == 11


def test_views_over_a_table_function_or_subquery_keep_their_shape():
    plan = ClusterPlan(CLUSTER)
    for m in load_migrations():
        for st in m.statements:
            cluster_statements(plan, st)
    out = cluster_statements(plan, "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO runs AS\n"
                                   "SELECT tenant_id, run_id FROM (SELECT tenant_id, run_id FROM events)")
    assert out[0].endswith("FROM (SELECT tenant_id, run_id FROM events_local AS events)")


def test_readable_tables_rules():
    from agentstream.api.store.sql import readable_tables

    embedded = {"events": "ReplacingMergeTree", "runs": "AggregatingMergeTree", "events_avro_staging": "Null"}
    assert readable_tables(embedded) == {"events", "runs"}
    cluster = {"events": "Distributed", "events_local": "ReplicatedReplacingMergeTree",
               "events_avro_staging": "Distributed", "events_avro_staging_local": "Null",
               "sink_batches_like": "ReplicatedReplacingMergeTree"}
    assert readable_tables(cluster) == {"events", "sink_batches_like"}
    # a storage table that merely ends in _local, with no Distributed over it, stays readable
    assert readable_tables({"cache_local": "MergeTree"}) == {"cache_local"}
    # a Distributed table over something that is not storage (or absent) is not readable
    assert readable_tables({"x": "Distributed"}) == set()
