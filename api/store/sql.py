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

from ..db import Db, clamped_times
from ..errors import ApiError
from ..pagination import decode_cursor, encode_cursor
from ..settings import ApiSettings
from ..sql.describe import aggregate_hint, describe, describe_target
from ..sql.error_map import error_code, map_sql_error
from ..sql.limits import Deadline, ResultBudget, too_many_columns
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
    databases: frozenset[str] = frozenset()  # every database of the server


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
            databases = frozenset(r["name"] for r in self.db.rows("SELECT name FROM system.databases"))
            self._catalog = c = Catalog(database, readable, time.monotonic(), databases)
        return c

    def run(self, tenant: str, sql: str, limit: int | None, cursor: str | None) -> dict[str, Any]:
        s = self.settings
        deadline = Deadline(s.sql_max_execution_time_s)
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
        scoped = scope_query(sql, cat.readable, cat.database, cat.databases)
        if scoped.width > s.sql_max_columns:
            raise too_many_columns(scoped.width, s.sql_max_columns)
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
        deadline.check()
        tree = parse_query_tree(self._explain(wrapped, params, tenant, sql, deadline))
        check_query_tree(tree, tenant, cat.readable, cat.database)
        columns = result_columns(tree)
        if len(columns) > s.sql_max_columns:
            raise too_many_columns(len(columns), s.sql_max_columns)
        _check_result_types(columns)
        deadline.check()
        started = time.perf_counter()
        qs = self.query_settings(tenant, result_rows=page + 1, deadline=deadline)
        names, types, rows = self._fetch(wrapped, params, qs, sql, deadline)
        elapsed_ms = (time.perf_counter() - started) * 1000
        next_cursor = None
        if len(rows) > page:
            rows = rows[:page]
            next_cursor = encode_cursor("sql", [digest, offset + page])
        return {
            "columns": [{"name": n, "type": t.name} for n, t in zip(names, types)],
            "rows": rows,
            "row_count": len(rows),
            "next_cursor": next_cursor,
            "elapsed_ms": round(elapsed_ms, 3),
        }

    def _explain(self, wrapped: str, params: dict[str, Any], tenant: str, caller_sql: str,
                 deadline: Deadline) -> list[str]:
        """The query tree's lines; a tree past ``sql_max_explain_lines`` is refused unread (two
        thousand ``*`` made 400k lines, seconds of parsing)."""
        limit = self.settings.sql_max_explain_lines
        qs = self.query_settings(tenant, result_rows=limit, deadline=deadline)
        try:
            rows = self.db.raw_query(f"EXPLAIN QUERY TREE {wrapped}", params, settings=qs).result_rows
        except ApiError:
            raise
        except Exception as exc:
            if error_code(exc) == _TOO_MANY_ROWS_OR_BYTES:
                raise SqlRejected("sql_too_complex", f"the query's resolved tree is longer than {limit} "
                                  "lines; select fewer columns or expressions", {"max_tree_lines": limit}) from exc
            raise map_sql_error(exc, caller_sql) from exc
        return [r[0] for r in rows]

    def _fetch(self, wrapped: str, params: dict[str, Any], settings: dict[str, Any], caller_sql: str,
               deadline: Deadline) -> tuple[list[str], list[Any], list[list[Any]]]:
        """Reads the result block by block, converting each row to JSON values as it comes and
        stopping (the stream closed, the query cancelled) once past the byte budget or the
        deadline: a result never grows in memory past what the answer may hold."""
        try:
            try:
                return self._stream(wrapped, params, settings, deadline, clamp=False)
            except (ValueError, OverflowError) as exc:
                if error_code(exc) is not None:
                    raise
                # A time Python cannot hold: read times as integers and clamp them (api/db.py).
                return self._stream(wrapped, params, settings, deadline, clamp=True)
        except ApiError:
            raise
        except Exception as exc:  # every ClickHouse error maps to a clear answer
            raise map_sql_error(exc, caller_sql) from exc

    def _stream(self, sql: str, params: dict[str, Any], settings: dict[str, Any], deadline: Deadline,
                clamp: bool) -> tuple[list[str], list[Any], list[list[Any]]]:
        budget = ResultBudget(self.settings.sql_max_result_bytes)
        out: list[list[Any]] = []
        formats = {"Date*": "int"} if clamp else None
        with self.db.lease() as client:
            with client.query_row_block_stream(sql, parameters=params, settings=settings,
                                               query_formats=formats) as stream:
                names, types = list(stream.source.column_names), list(stream.source.column_types)
                for block in stream:
                    if clamp:
                        block = clamped_times(_Block(names, types, block)).result_rows
                    for r in block:
                        row = [jsonable(v) for v in r]
                        budget.add(row)
                        out.append(row)
                    deadline.check()
        return names, types, out

    def query_settings(self, tenant: str, result_rows: int | None = None,
                       deadline: Deadline | None = None) -> dict[str, Any]:
        """The ClickHouse settings every /v1/sql query of ``tenant`` runs with: its row-policy
        tenant (when row policies are on), the time (what is left of the request's), memory, rows
        and result limits, readonly."""
        s = self.settings
        out: dict[str, Any] = {}
        if s.sql_tenant_setting:
            # The row policies' tenant (api/sql/row_policies.py); their profile enforces readonly.
            out[s.sql_tenant_setting] = tenant
        seconds = s.sql_max_execution_time_s
        if deadline is not None:
            # ClickHouse reads 0 as "no limit": a spent deadline still gets a bound.
            seconds = max(0.001, min(seconds, deadline.remaining()))
        out.update({
            "max_execution_time": round(seconds, 3),
            "max_memory_usage": s.sql_max_memory_bytes,
            "max_rows_to_read": s.sql_max_rows_to_read,
            # Counts stored data; a constant column counts once per block (limits.py covers that).
            "max_result_bytes": s.sql_max_result_bytes,
            "result_overflow_mode": "throw",
        })
        if result_rows is not None:
            out["max_result_rows"] = result_rows
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


_TOO_MANY_ROWS_OR_BYTES = 396


@dataclass
class _Block:
    """One streamed block in the shape ``clamped_times`` reads."""
    column_names: list[str]
    column_types: list[Any]
    result_rows: list[Any]


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
