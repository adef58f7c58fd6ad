"""ClickHouse access for the query API: connecting from a DSN and running tenant-bound queries.

Every store function passes the tenant as a bound server-side parameter (``{tenant:String}``),
never by string formatting.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable
from urllib.parse import urlparse

from .errors import ApiError

log = logging.getLogger("agentstream.api.db")

# ClickHouse error codes that mean "the service is not there", not "your query is wrong".
_UNAVAILABLE_CODES = {209, 210, 394, 202, 999, 1002}


def connect(dsn: str, password: str | None = None) -> Any:
    """A clickhouse-connect client for ``chdb://path`` or ``http(s)://...``.

    ``chdb://relative/path`` is read as a path (clickhouse-connect would read its first segment
    as a host), so the embedded default ``chdb://.agentstream/chdb`` works from the cwd.
    """
    import clickhouse_connect

    if dsn.startswith("chdb://"):
        rest = dsn[len("chdb://"):]
        path, _, query = rest.partition("?")
        if path in ("", "memory", ":memory:"):
            return clickhouse_connect.get_client(dsn=dsn)
        abs_path = os.path.abspath(path)
        os.makedirs(abs_path, exist_ok=True)
        return clickhouse_connect.get_client(dsn="chdb://" + abs_path + (("?" + query) if query else ""))
    parsed = urlparse(dsn)
    if parsed.scheme not in ("http", "https", "clickhouse", "clickhouses"):
        raise ValueError(f"unsupported ClickHouse DSN scheme {parsed.scheme!r}")
    kwargs: dict[str, Any] = {"dsn": dsn, "autogenerate_session_id": False}
    if password is not None:
        kwargs["password"] = password
    # Sessions serialise queries; the API runs many concurrently, so it uses none.
    return clickhouse_connect.get_client(**kwargs)


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    text = str(exc)
    if text.startswith("Code: "):
        try:
            return int(text[6:].split(".", 1)[0])
        except ValueError:
            return None
    return None


class Db:
    """A thin wrapper: rows as dicts, and ClickHouse failures as the API's error model."""

    def __init__(self, client: Any = None, factory: Callable[[], Any] | None = None) -> None:
        if client is None and factory is None:
            raise ValueError("Db needs a client or a factory")
        self._client = client
        self._factory = factory
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # Connect on first use: the app starts (and answers /healthz) while ClickHouse is down.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._factory()
                    except Exception as exc:  # noqa: BLE001
                        log.warning("cannot connect to ClickHouse: %s", exc)
                        raise ApiError(503, "clickhouse_unavailable",
                                       "cannot connect to ClickHouse; retry later") from exc
        return self._client

    def rows(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        result = self._query(sql, params, settings)
        names = result.column_names
        return [dict(zip(names, r)) for r in result.result_rows]

    def one(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def _query(self, sql: str, params: dict[str, Any] | None, settings: dict[str, Any] | None):
        client = self.client
        try:
            return client.query(sql, parameters=params or {}, settings=settings or {})
        except Exception as exc:  # noqa: BLE001 - clickhouse-connect raises several types
            raise self.map_error(exc) from exc

    def raw_query(self, sql: str, params: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None):
        """The clickhouse-connect result, errors unmapped (the SQL endpoint maps its own)."""
        return self.client.query(sql, parameters=params or {}, settings=settings or {})

    def ping(self) -> bool:
        try:
            self.client.query("SELECT 1")
        except ApiError:
            return False
        except Exception:  # noqa: BLE001
            return False
        return True

    def table_names(self) -> set[str]:
        rows = self.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")
        return {r["name"] for r in rows}

    @staticmethod
    def map_error(exc: BaseException) -> ApiError:
        code = error_code(exc)
        if code is None or code in _UNAVAILABLE_CODES:
            log.warning("ClickHouse unavailable: %s", exc)
            return ApiError(503, "clickhouse_unavailable", "ClickHouse is unavailable; retry later")
        if code == 60:  # UNKNOWN_TABLE: the sink has not created its tables yet
            return ApiError(503, "storage_not_ready",
                            "the ClickHouse tables do not exist yet; is the sink running?")
        log.error("ClickHouse query failed: %s", exc)
        return ApiError(500, "query_failed", "the query failed inside ClickHouse")
