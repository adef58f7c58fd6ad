"""ClickHouse access for the query API: connecting from a DSN and running tenant-bound queries.

Every store function passes the tenant as a bound server-side parameter (``{tenant:String}``),
never by string formatting.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Protocol
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


_MAX_US = 253_402_300_799_999_999  # datetime.max as microseconds since the epoch


def query_clamped(client: Any, sql: str, params: dict[str, Any] | None,
                  settings: dict[str, Any] | None) -> Any:
    """``client.query``, rows converted here. If Python cannot hold a stored time (DateTime64
    keeps any Int64, e.g. a ts_us of 2**62 stored before ingest bounded times), the times are
    read again as integers and clamped, rather than failing the whole route."""
    try:
        result = client.query(sql, parameters=params or {}, settings=settings or {})
        result.result_rows  # noqa: B018 - conversion may be lazy: make it happen inside the try
        return result
    except (ValueError, OverflowError) as exc:
        if error_code(exc) is not None:
            raise
        return clamped_times(client.query(sql, parameters=params or {}, settings=settings or {},
                                          query_formats={"Date*": "int"}))


def clamped_times(result: Any) -> Any:
    """``result`` with its Date/DateTime columns (read as integers) turned into datetimes, each
    clamped to [1970-01-01, 9999-12-31T23:59:59.999999] UTC."""
    import re
    from datetime import datetime, timedelta, timezone

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    converters: dict[int, Callable[[Any], Any]] = {}
    for i, t in enumerate(result.column_types):
        name = getattr(t, "name", str(t))
        m = re.search(r"DateTime64\((\d+)", name)
        per_us = 10 ** int(m.group(1)) / 1_000_000 if m else None
        if m is None and "DateTime" in name:
            per_us = 1 / 1_000_000
        elif m is None and "Date" in name:
            per_us = 1 / 86_400_000_000
        if per_us is None:
            continue
        aware = "'" in name  # a timezone argument: clickhouse-connect returns aware datetimes

        def conv(v: Any, per_us: float = per_us, aware: bool = aware) -> Any:
            if not isinstance(v, int):
                return v
            us = min(max(int(v / per_us), 0), _MAX_US)
            d = epoch + timedelta(microseconds=us)
            return d if aware else d.replace(tzinfo=None)
        converters[i] = conv
    rows = [tuple(converters[i](v) if i in converters else v for i, v in enumerate(row))
            for row in result.result_rows]
    return SimpleNamespace(column_names=result.column_names, column_types=result.column_types,
                           result_rows=rows)


def sibling_factory(client: Any) -> Callable[[], Any] | None:
    """Opens more handles on the engine of an embedded (chDB) client, else None.

    chDB serialises the calls on one handle but runs calls on separate handles of the same
    engine at once; the API's pools open their own handles so they queue behind nobody.
    """
    path = getattr(client, "path", None)
    if type(client).__name__ != "ChdbClient" or not isinstance(path, str):
        return None

    def make() -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(dsn="chdb://" + path)

    return make


class RowReader(Protocol):
    """What a read needs of ``Db``: rows as dicts. Export feeds rows it has already read."""

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


class Db:
    """Rows as dicts, ClickHouse failures as the API's error model, and a pool of connections.

    A query leases one connection of up to ``pool_size`` (opened on demand by ``factory``), so
    queries run side by side instead of one at a time on a shared client. With a client and no
    factory the pool holds that one client.
    """

    def __init__(self, client: Any = None, factory: Callable[[], Any] | None = None,
                 pool_size: int = 1) -> None:
        if client is None and factory is None:
            raise ValueError("Db needs a client or a factory")
        self._client = client
        self._factory = factory
        self._lock = threading.Lock()
        self._pool_size = max(1, pool_size) if factory is not None else 1
        self._idle: "queue.LifoQueue[Any]" = queue.LifoQueue()
        self._opened = 0
        if client is not None:
            self._idle.put(client)
            self._opened = 1

    @property
    def client(self) -> Any:
        """The first connection (opened on first use: the app answers /healthz while ClickHouse is down)."""
        return self._first()

    def _first(self) -> Any:
        """Opens the first connection unless it is open (raises ApiError 503 if it cannot)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._open()
                    self._opened += 1
                    self._idle.put(self._client)
        return self._client

    def _open(self) -> Any:
        factory = self._factory
        if factory is None:  # unreachable: a Db built on one client is a pool of one
            raise RuntimeError("this Db was built on one client and cannot open another")
        try:
            return factory()
        except Exception as exc:
            log.warning("cannot connect to ClickHouse: %s", exc)
            raise ApiError(503, "clickhouse_unavailable",
                           "cannot connect to ClickHouse; retry later") from exc

    @contextmanager
    def lease(self) -> Iterator[Any]:
        """One connection for one query, returned to the pool afterwards."""
        self._first()  # the first connection, opened (or refused) here
        try:
            c = self._idle.get_nowait()
        except queue.Empty:
            c = None
            with self._lock:
                grow = self._opened < self._pool_size
                if grow:
                    self._opened += 1
            if grow:
                try:
                    c = self._open()
                except ApiError:
                    with self._lock:
                        self._opened -= 1
                    raise
            else:
                c = self._idle.get()
        try:
            yield c
        finally:
            self._idle.put(c)

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
        with self.lease() as client:
            try:
                return query_clamped(client, sql, params, settings)
            except Exception as exc:  # clickhouse-connect raises several types
                raise self.map_error(exc) from exc

    def raw_query(self, sql: str, params: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None):
        """The clickhouse-connect result, errors unmapped (the SQL endpoint maps its own); times
        Python cannot hold come back clamped, as in ``rows``."""
        with self.lease() as client:
            return query_clamped(client, sql, params, settings)

    def ping(self) -> bool:
        try:
            with self.lease() as client:
                client.query("SELECT 1")
        except ApiError:
            return False
        except Exception:  # noqa: BLE001 - any failure of the probe query means not ready
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
