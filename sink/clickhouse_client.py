"""The part of a ClickHouse client the sink relies on, as a Protocol.

clickhouse-connect's ``Client`` (HTTP or chDB) satisfies it; typing against this instead of the
concrete class keeps the strictly typed modules (the ledger) independent of the driver and lets
their unit tests pass any object with these methods.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence


class QueryResult(Protocol):
    @property
    def result_rows(self) -> Sequence[Sequence[Any]]: ...


class ClickHouseClient(Protocol):
    # ``settings`` is keyword-only: clickhouse-connect's positions after the first few differ
    # between its methods (``insert``'s fourth is ``database``).
    def query(self, query: str, parameters: dict[str, Any] | None = None, *,
              settings: dict[str, Any] | None = None) -> QueryResult: ...

    def insert(self, table: str, data: Sequence[Sequence[Any]], column_names: Sequence[str], *,
               settings: dict[str, Any] | None = None) -> Any: ...

    def command(self, cmd: str, parameters: dict[str, Any] | None = None, *,
                settings: dict[str, Any] | None = None) -> Any: ...
