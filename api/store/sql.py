"""/v1/sql execution: tenant-scoped, read-only, limited. The static checks live in sql_guard."""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import hashlib
import ipaddress
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..db import Db, error_code
from ..errors import ApiError
from ..pagination import decode_cursor, encode_cursor
from ..settings import ApiSettings
from ..sql_guard import SqlRejected, check_ast, check_tokens, lex, parse_explain_ast, strip_statement, table_filters

_LIMIT_CODES = {158: "rows read", 396: "rows or bytes", 159: "execution time", 241: "memory",
                160: "execution speed", 307: "bytes read"}
_UNAVAILABLE = {209, 210, 394, 202, 999, 1002}
CATALOG_TTL_S = 30.0


@dataclass
class Catalog:
    database: str
    tenant_tables: set[str]  # current database, has a tenant_id column: readable, filtered
    other_tables: set[str]  # every other table the server knows: filtered to nothing
    loaded: float


class SqlRunner:
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
            database = self.db.rows("SELECT currentDatabase() AS d")[0]["d"]
            rows = self.db.rows(
                "SELECT t.database AS db, t.name AS name, "
                "  (t.database = currentDatabase() AND (t.database, t.name) IN "
                "   (SELECT database, table FROM system.columns WHERE name = 'tenant_id')) AS tenant "
                "FROM system.tables AS t WHERE NOT t.is_temporary"
            )
            tenant = {r["name"] for r in rows if r["tenant"]}
            other = set()
            for r in rows:
                # system.one is the dummy row behind a SELECT without FROM: no data, must read.
                if r["tenant"] or (r["db"], r["name"]) == ("system", "one"):
                    continue
                other.add(f"{r['db']}.{r['name']}")
                if r["db"] == database:
                    other.add(r["name"])
            self._catalog = c = Catalog(database, tenant, other, time.monotonic())
        return c

    def run(self, tenant: str, sql: str, limit: int | None, cursor: str | None) -> dict[str, Any]:
        s = self.settings
        if len(sql) > s.sql_max_query_chars:
            raise SqlRejected("sql_too_long", f"the query is longer than {s.sql_max_query_chars} characters")
        sql = strip_statement(sql)
        ctes = check_tokens(lex(sql))
        page = min(limit or s.sql_max_rows, s.sql_max_rows)
        digest = hashlib.sha256(sql.encode()).hexdigest()[:16]
        after = decode_cursor("sql", cursor, (str, int))
        offset = 0
        if after is not None:
            if after[0] != digest:
                raise ApiError(400, "invalid_cursor", "this cursor belongs to another query")
            offset = after[1]
        # The newline before ')' keeps a trailing '-- comment' from swallowing the wrapper.
        wrapped = f"SELECT * FROM (\n{sql}\n) LIMIT {page + 1} OFFSET {offset}"
        cat = self.catalog()
        qs = self._settings(tenant, cat)
        explain = self._call(f"EXPLAIN AST {wrapped}", qs)
        check_ast(parse_explain_ast([r[0] for r in explain.result_rows]), cat.tenant_tables, ctes,
                  cat.database)
        started = time.perf_counter()
        result = self._call(wrapped, qs)
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

    def _settings(self, tenant: str, cat: Catalog) -> dict[str, Any]:
        s = self.settings
        return {
            "max_execution_time": s.sql_max_execution_time_s,
            "max_memory_usage": s.sql_max_memory_bytes,
            "max_rows_to_read": s.sql_max_rows_to_read,
            "additional_table_filters": table_filters(tenant, cat.tenant_tables, cat.other_tables),
            # Last: on a server, settings after readonly=1 in the same request would be refused.
            "readonly": 1,
        }

    def _call(self, sql: str, settings: dict[str, Any]):
        try:
            return self.db.raw_query(sql, settings=settings)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - every ClickHouse error maps to a clear answer
            raise map_sql_error(exc) from exc


def _clean_message(text: str) -> str:
    text = text.split("\n")[0]
    for marker in (" (version ", ". Stack trace"):
        text = text.split(marker)[0]
    while text.startswith("Code: "):
        text = text.split("DB::Exception: ", 1)[-1]
    return text.strip()[:500]


def map_sql_error(exc: BaseException) -> ApiError:
    code = error_code(exc)
    if code is None or code in _UNAVAILABLE:
        return ApiError(503, "clickhouse_unavailable", "ClickHouse is unavailable; retry later")
    message = _clean_message(str(exc))
    if code in _LIMIT_CODES:
        return ApiError(400, "sql_limit_exceeded",
                        f"the query exceeded the {_LIMIT_CODES[code]} limit: {message}",
                        {"clickhouse_code": code})
    if code == 164:
        return ApiError(400, "sql_not_select", f"read-only: {message}", {"clickhouse_code": code})
    if code == 62:
        return ApiError(400, "sql_syntax", message, {"clickhouse_code": code})
    return ApiError(400, "sql_error", message, {"clickhouse_code": code})


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
