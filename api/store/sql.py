"""/v1/sql execution: tenant-scoped by a tree rewrite (api/sql/), checked on ClickHouse's own
query tree, read-only and limited."""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import hashlib
import ipaddress
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..db import Db
from ..errors import ApiError
from ..pagination import decode_cursor, encode_cursor
from ..settings import ApiSettings
from ..sql.describe import aggregate_hint, describe, describe_target
from ..sql.error_map import map_sql_error
from ..sql.rejections import SqlRejected
from ..sql.rewrite import TENANT_PARAM, scope_query
from ..sql.tree_check import check_query_tree, parse_query_tree, result_columns
from ..sql_guard import check_tokens, lex, strip_statement

CATALOG_TTL_S = 30.0
# Engines whose tables hold rows a tenant may read; views, MVs and Null staging tables are not.
_STORAGE_ENGINE_SUFFIX = "MergeTree"
# The cluster schema (sink/cluster.py): storage table T_local on each shard, read as T (Distributed).
_LOCAL_SUFFIX = "_local"


def readable_tables(tables: dict[str, str]) -> set[str]:
    """Of a database's tenant tables (name -> engine), those /v1/sql reads: the storage tables,
    except that on a cluster a shard's ``T_local`` is read only through its ``Distributed`` ``T``
    (the local one holds one shard's rows), and a ``Distributed`` over anything but storage
    (the Avro staging tables' Null) is not readable."""
    storage = {n for n, e in tables.items() if e.endswith(_STORAGE_ENGINE_SUFFIX)}
    dist = {n for n, e in tables.items() if e == "Distributed" and n + _LOCAL_SUFFIX in storage}
    return dist | {n for n in storage if not (n.endswith(_LOCAL_SUFFIX) and n[:-len(_LOCAL_SUFFIX)] in dist)}


@dataclass
class Catalog:
    database: str
    readable: set[str]  # tenant tables of the current database (readable_tables)
    loaded: float


class SqlRunner:
    """Runs one analyst query: token look, tree rewrite, ClickHouse's query-tree check, execution.

    ``db`` is the SQL pool (its own connections, apart from the API routes' pool).
    """

    def __init__(self, db: Db, settings: ApiSettings) -> None:
        self.db = db
        self.settings = settings
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def catalog(self) -> Catalog:
        c = self._catalog
        if c is not None and time.monotonic() - c.loaded < CATALOG_TTL_S:
            return c
        with self._lock:
            rows = self.db.rows(
                "SELECT currentDatabase() AS db, t.name AS name, t.engine AS engine FROM system.tables AS t "
                "WHERE t.database = currentDatabase() "
                "  AND (endsWith(t.engine, {suffix:String}) OR t.engine = 'Distributed') "
                "  AND t.name IN (SELECT table FROM system.columns "
                "                 WHERE database = currentDatabase() AND name = 'tenant_id')",
                {"suffix": _STORAGE_ENGINE_SUFFIX})
            database = rows[0]["db"] if rows else self.db.rows("SELECT currentDatabase() AS db")[0]["db"]
            readable = readable_tables({r["name"]: r["engine"] for r in rows})
            self._catalog = c = Catalog(database, readable, time.monotonic())
        return c

    def run(self, tenant: str, sql: str, limit: int | None, cursor: str | None) -> dict[str, Any]:
        s = self.settings
        if len(sql) > s.sql_max_query_chars:
            raise SqlRejected("sql_too_long", f"the query is longer than {s.sql_max_query_chars} characters")
        sql = strip_statement(sql)
        tokens = lex(sql)
        check_tokens(tokens)
        cat = self.catalog()
        target = describe_target(tokens, cat.database)
        if target is not None:
            return describe(target, cat.readable, cat.database,
                            lambda q: self._call(q, {}, self.query_settings(tenant), sql).result_rows)
        scoped = scope_query(sql, cat.readable, cat.database)
        page = min(limit or s.sql_max_rows, s.sql_max_rows)
        digest = hashlib.sha256(sql.encode()).hexdigest()[:16]
        after = decode_cursor("sql", cursor, (str, int))
        offset = 0
        if after is not None:
            if after[0] != digest:
                raise ApiError(400, "invalid_cursor", "this cursor belongs to another query")
            offset = after[1]
        wrapped = f"SELECT * FROM ({scoped.sql}) LIMIT {page + 1} OFFSET {offset}"
        params = {TENANT_PARAM: tenant}
        qs = self.query_settings(tenant)
        tree = parse_query_tree([r[0] for r in self._call(f"EXPLAIN QUERY TREE {wrapped}", params, qs,
                                                          sql).result_rows])
        check_query_tree(tree, tenant, cat.readable, cat.database)
        _check_result_types(result_columns(tree))
        started = time.perf_counter()
        result = self._call(wrapped, params, qs, sql)
        elapsed_ms = (time.perf_counter() - started) * 1000
        rows = [list(r) for r in result.result_rows]
        next_cursor = None
        if len(rows) > page:
            rows = rows[:page]
            next_cursor = encode_cursor("sql", [digest, offset + page])
        return {
            "columns": [{"name": n, "type": t.name} for n, t in zip(result.column_names, result.column_types)],
            "rows": [[jsonable(v) for v in r] for r in rows],
            "row_count": len(rows),
            "next_cursor": next_cursor,
            "elapsed_ms": round(elapsed_ms, 3),
        }

    def query_settings(self, tenant: str) -> dict[str, Any]:
        """The ClickHouse settings every /v1/sql query of ``tenant`` runs with: its row-policy
        tenant (when row policies are on), the time, memory and rows limits, readonly."""
        s = self.settings
        out: dict[str, Any] = {}
        if s.sql_tenant_setting:
            # The row policies' tenant (api/sql/row_policies.py); their profile enforces readonly.
            out[s.sql_tenant_setting] = tenant
        out.update({
            "max_execution_time": s.sql_max_execution_time_s,
            "max_memory_usage": s.sql_max_memory_bytes,
            "max_rows_to_read": s.sql_max_rows_to_read,
        })
        if not s.sql_tenant_setting:
            # Last: on a server, settings after readonly=1 in the same request would be refused.
            out["readonly"] = 1
        return out

    def _call(self, sql: str, params: dict[str, Any], settings: dict[str, Any], caller_sql: str):
        try:
            return self.db.raw_query(sql, params, settings=settings)
        except ApiError:
            raise
        except Exception as exc:  # every ClickHouse error maps to a clear answer
            raise map_sql_error(exc, caller_sql) from exc


_STATE_TYPE = re.compile(r"(?<!Simple)AggregateFunction\(")


def _check_result_types(columns: list[str]) -> None:
    for line in columns:
        # SimpleAggregateFunction columns hold plain values; only AggregateFunction is a state.
        m = _STATE_TYPE.search(line)
        if m:
            name = line[:m.start()].rsplit(" ", 1)[0]
            hint = aggregate_hint(name, line[m.start():])
            raise SqlRejected("sql_aggregate_state",
                              f"column {name} is an aggregate state and cannot be returned as a "
                              f"value; {hint or 'read it with finalizeAggregation()'}",
                              {"column": name})


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(v)).decode()
    if isinstance(v, dict):
        return {str(jsonable(k)): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    return str(v)
