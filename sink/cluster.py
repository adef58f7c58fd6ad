"""The ClickHouse cluster schema, generated from the same migrations as the embedded one.

Each embedded statement becomes its cluster form (``cluster_statements``), so there is one
source of truth for columns, views and rollups:

- a tenant table ``T`` becomes ``T_local`` on every node (``ON CLUSTER``), its engine the
  ``Replicated`` form of the embedded one (Keeper path per shard), plus a ``Distributed`` table
  named ``T`` over it. Readers (the API, /v1/sql, analysts) and the sink keep the embedded names,
  so the API's queries, its tenant filter and the /v1/sql rewrite are unchanged;
- a materialized view stays on each shard, reading and writing the local tables, so a shard's
  rollups and ``runs`` are computed from the rows that shard holds;
- the sink's batch ledger and the migration table are *global*: one Keeper path for the whole
  cluster, every node a replica, so any node answers for the whole cluster;
- a backfill (``INSERT ... SELECT``) runs once, on the node running the migration, through the
  ``Distributed`` tables.

The sharding key keeps a run's rows on one shard: ``kafkaMurmurHash(run_id)`` (the hash Kafka's
partitioner uses for the run_id key) wherever the table has a run. ``runs`` (a run's row merged
from its events) and ``events FINAL`` are then correct per shard, and a Distributed read just
concatenates shards. With the shard count dividing the events topic's partitions, a sink range
(one Kafka partition's records) lands whole on one shard. The sink inserts through the
``Distributed`` tables with ``insert_distributed_sync=1`` (docs/storage.md: why): a retried range
reaches the same shard as the same block under the same dedup token, and that shard's replicated
dedup log drops it.

A statement the generator does not understand is an error, never passed through: a future
migration must teach this module its cluster form (tests/unit/sink/test_cluster_schema.py runs
every migration through it).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from .clickhouse_client import ClickHouseClient
from .storage import DDL_SETTINGS, MIGRATIONS_DIR, load_migrations

log = logging.getLogger(__name__)

# Not tenant data: the sink's ledger must be readable from whichever node a restarted sink
# reaches, and the migration record is the cluster's, not a shard's.
GLOBAL_TABLES = frozenset({"schema_migrations", "sink_batches"})
LOCAL_SUFFIX = "_local"
# Inserts through Distributed wait for every shard's ack (see the module docstring), and the
# Replicated tables' dedup window replaces the embedded non_replicated one.
CLUSTER_INSERT_SETTINGS = {"insert_distributed_sync": 1}

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# An unquoted identifier: it appears bare in ON CLUSTER and Distributed(), and in Keeper paths.
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CREATE_TABLE = re.compile(rf"^CREATE TABLE IF NOT EXISTS ({_IDENT})\s*\(", re.S)
_CREATE_MV = re.compile(rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS ({_IDENT}) TO ({_IDENT}) AS\b", re.S)
_ALTER = re.compile(rf"^ALTER TABLE ({_IDENT})\s+(ADD|DROP|MODIFY|MATERIALIZE|CLEAR|RENAME|COMMENT)\s+(\w+)", re.S)
_DROP_VIEW = re.compile(rf"^DROP VIEW IF EXISTS ({_IDENT})\s*$", re.S)
_INSERT = re.compile(rf"^INSERT INTO ({_IDENT})\b", re.S)
_ENGINE = re.compile(rf"\bENGINE\s*=\s*({_IDENT})(\s*\(([^()]*)\))?")
_FROM = re.compile(rf"\b(FROM|JOIN)\s+({_IDENT})\b(?!\s*\()")
_COLUMN_LINE = re.compile(rf"^\s*`?({_IDENT})`?\s+[A-Z]")
_NOT_COLUMNS = {"INDEX", "PROJECTION", "CONSTRAINT"}
# ALTER commands a Distributed table must follow (its columns mirror the local table's);
# everything else (indexes, settings, TTL) is storage and lives on the local tables only.
_COLUMN_ALTERS = {"COLUMN"}


class ClusterSchemaError(ValueError):
    """A migration statement with no known cluster form, or a bad cluster name."""


@dataclass
class ClusterPlan:
    """What the generator learned about each table while walking the migrations in order."""

    cluster: str
    sharded: dict[str, list[str]] = field(default_factory=dict)  # table -> its columns
    global_tables: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)  # materialized views (on every shard)

    def zk_path(self, table: str, shard_macro: str = "{shard}") -> str:
        return f"/clickhouse/agentstream/{self.cluster}/{shard_macro}/{{database}}/{table}"


def _must(m: re.Match[str] | None, what: str, text: str) -> re.Match[str]:
    # The statement's form was recognised before its parts are read: a miss here is a form this
    # module half knows, reported as such rather than as an AttributeError.
    if m is None:
        raise ClusterSchemaError(f"no {what} in statement: {text[:120]!r}")
    return m


def check_cluster_name(name: str) -> str:
    if not _CLUSTER_NAME.match(name):
        raise ClusterSchemaError(f"cluster name {name!r}: use letters, digits and '_' (an identifier, as in remote_servers)")
    return name


def strip_comments(stmt: str) -> str:
    # Whole-line comments only: the migrations keep code and comments on separate lines, and a
    # '--' inside a string literal must survive.
    return "\n".join(ln for ln in stmt.splitlines() if not ln.lstrip().startswith("--")).strip()


def _columns(body: str) -> list[str]:
    start = body.index("(")
    end = _must(_ENGINE.search(body), "ENGINE clause", body).start()
    cols = []
    for line in body[start + 1:end].splitlines():
        m = _COLUMN_LINE.match(line)
        if m and m.group(1).upper() not in _NOT_COLUMNS:
            cols.append(m.group(1))
    return cols


def sharding_key(columns: list[str]) -> str:
    if "tenant_id" in columns and "run_id" in columns:
        # Kafka's own partitioner hash (murmur2, sign bit cleared): with shards dividing the
        # events topic's partitions, every record of one Kafka partition, and so every range
        # the sink inserts, goes to one shard as one block.
        return "kafkaMurmurHash(run_id)"
    if "tenant_id" in columns:
        return "cityHash64(tenant_id)"
    raise ClusterSchemaError(f"a sharded table needs tenant_id to pick its shard (columns {columns})")


def _replicated_engine(plan: ClusterPlan, table: str, engine: str, args: str | None, everywhere: bool) -> str:
    if engine == "Null":
        return "ENGINE = Null"
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ClusterSchemaError(f"table {table}: engine {engine} has no replicated form here")
    path = plan.zk_path(table, "all" if everywhere else "{shard}")
    params = [f"'{path}'", "'{replica}'"] + ([args.strip()] if args and args.strip() else [])
    return f"ENGINE = Replicated{engine}({', '.join(params)})"


def _dedup_setting(sql: str) -> str:
    return re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", sql)


def _create_table(plan: ClusterPlan, body: str) -> list[str]:
    head_m = _must(_CREATE_TABLE.match(body), "CREATE TABLE", body)
    table = head_m.group(1)
    m = _ENGINE.search(body)
    if m is None:
        raise ClusterSchemaError(f"table {table}: no ENGINE clause")
    cols = _columns(body)
    on = f"ON CLUSTER {plan.cluster}"
    if table in GLOBAL_TABLES:
        plan.global_tables.add(table)
        head = f"CREATE TABLE IF NOT EXISTS {table} {on} "
        engine = _replicated_engine(plan, table, m.group(1), m.group(3), everywhere=True)
        return [_dedup_setting(head + body[head_m.end() - 1:m.start()] + engine + body[m.end():])]
    local = table + LOCAL_SUFFIX
    engine = _replicated_engine(plan, local, m.group(1), m.group(3), everywhere=False)
    key = sharding_key(cols)
    plan.sharded[table] = cols
    local_ddl = (f"CREATE TABLE IF NOT EXISTS {local} {on} " + body[head_m.end() - 1:m.start()]
                 + engine + body[m.end():])
    dist = (f"CREATE TABLE IF NOT EXISTS {table} {on} AS {local}\n"
            f"ENGINE = Distributed({plan.cluster}, currentDatabase(), {local}, {key})")
    return [_dedup_setting(local_ddl), dist]


def _local_sources(plan: ClusterPlan, select: str, where: str) -> str:
    def swap(m: re.Match[str]) -> str:
        kw, name = m.group(1), m.group(2)
        if name in plan.sharded:
            # aliased to the embedded name, so qualified columns (events.kind) keep working
            return f"{kw} {name}{LOCAL_SUFFIX} AS {name}"
        if name in plan.global_tables:
            return m.group(0)
        raise ClusterSchemaError(f"{where}: reads {name}, a table the cluster schema does not know")
    return _FROM.sub(swap, select)


def _create_view(plan: ClusterPlan, body: str) -> list[str]:
    m = _must(_CREATE_MV.match(body), "CREATE MATERIALIZED VIEW", body)
    view, target = m.group(1), m.group(2)
    if target not in plan.sharded:
        raise ClusterSchemaError(f"view {view}: target {target} is not a sharded table")
    select = _local_sources(plan, body[m.end():], f"view {view}")
    plan.views.add(view)
    return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} ON CLUSTER {plan.cluster} "
            f"TO {target}{LOCAL_SUFFIX} AS{select}"]


def _alter(plan: ClusterPlan, body: str) -> list[str]:
    m = _must(_ALTER.match(body), "ALTER TABLE", body)
    table, obj = m.group(1), m.group(3).upper()
    rest = _dedup_setting(body[len(f"ALTER TABLE {table}"):])
    on = f"ON CLUSTER {plan.cluster}"
    if table in plan.global_tables:
        return [f"ALTER TABLE {table} {on}{rest}"]
    if table not in plan.sharded:
        raise ClusterSchemaError(f"ALTER of {table}, a table the cluster schema does not know")
    out = [f"ALTER TABLE {table}{LOCAL_SUFFIX} {on}{rest}"]
    if obj in _COLUMN_ALTERS:
        out.append(f"ALTER TABLE {table} {on}{rest}")
        _track_column_alter(plan, table, m.group(2).upper(), rest)
    return out


def _track_column_alter(plan: ClusterPlan, table: str, verb: str, rest: str) -> None:
    name = _must(re.search(rf"COLUMN\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?({_IDENT})", rest),
                 f"column name of ALTER TABLE {table}", rest).group(1)
    cols = plan.sharded[table]
    if verb == "ADD" and name not in cols:
        cols.append(name)
    elif verb == "DROP" and name in cols:
        cols.remove(name)


def _drop_view(plan: ClusterPlan, view: str) -> list[str]:
    if view not in plan.views:
        raise ClusterSchemaError(f"DROP VIEW {view}, a view the cluster schema does not know")
    plan.views.discard(view)
    return [f"DROP VIEW IF EXISTS {view} ON CLUSTER {plan.cluster} SYNC"]


def _insert(plan: ClusterPlan, body: str) -> list[str]:
    target = _must(_INSERT.match(body), "INSERT INTO", body).group(1)
    if target not in plan.sharded:
        raise ClusterSchemaError(f"INSERT into {target}, not a sharded table")
    # Once, on this node, through the Distributed tables: reads every shard, writes by the key.
    return [body]


def cluster_statements(plan: ClusterPlan, statement: str) -> list[str]:
    """The cluster form of one embedded migration statement (in order)."""
    body = strip_comments(statement)
    if _CREATE_TABLE.match(body):
        return _create_table(plan, body)
    if _CREATE_MV.match(body):
        return _create_view(plan, body)
    if _ALTER.match(body):
        return _alter(plan, body)
    if _INSERT.match(body):
        return _insert(plan, body)
    if m := _DROP_VIEW.match(body):
        return _drop_view(plan, m.group(1))
    raise ClusterSchemaError(f"no cluster form for statement: {body[:120]!r}")


@dataclass(frozen=True)
class ClusterMigration:
    version: int
    name: str
    statements: tuple[str, ...]


def cluster_migrations(cluster: str, directory: Path = MIGRATIONS_DIR) -> list[ClusterMigration]:
    """Every migration in its cluster form. The plan is built from all of them in order, since a
    later ALTER needs to know what an earlier CREATE made of its table."""
    plan = ClusterPlan(check_cluster_name(cluster))
    out: list[ClusterMigration] = []
    for mig in load_migrations(directory):
        stmts = [s for stmt in mig.statements for s in cluster_statements(plan, stmt)]
        out.append(ClusterMigration(mig.version, mig.name, tuple(stmts)))
    return out


def is_backfill(stmt: str) -> bool:
    return bool(_INSERT.match(stmt))


def apply_cluster_migrations(client: ClickHouseClient, cluster: str, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Applies the cluster migrations not yet recorded in the cluster's (global, replicated)
    ``schema_migrations``. Each DDL runs ON CLUSTER (the server waits for every host, up to
    distributed_ddl_task_timeout); re-running after an interruption is safe (IF NOT EXISTS)."""
    migrations = cluster_migrations(cluster, directory)
    done: set[int] = set()
    if int(client.command("EXISTS TABLE schema_migrations")):
        done = {int(r[0]) for r in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied: list[int] = []
    for mig in migrations:
        if mig.version in done:
            continue
        for stmt in mig.statements:
            settings = dict(DDL_SETTINGS)
            if is_backfill(stmt):
                settings.update(CLUSTER_INSERT_SETTINGS)
            client.command(stmt, settings=settings)
        client.insert("schema_migrations", [[mig.version, mig.name]], column_names=["version", "name"],
                      settings=CLUSTER_INSERT_SETTINGS)
        log.info("applied cluster migration %04d_%s on %s", mig.version, mig.name, cluster)
        applied.append(mig.version)
    return applied


def render_sql(cluster: str, directory: Path = MIGRATIONS_DIR) -> str:
    """The whole cluster schema as one script (for review, or a DBA's own tooling)."""
    parts: list[str] = []
    for mig in cluster_migrations(cluster, directory):
        parts.append(f"-- {mig.version:04d}_{mig.name}")
        parts.extend(f"{s};\n" for s in mig.statements)
    return "\n".join(parts)
