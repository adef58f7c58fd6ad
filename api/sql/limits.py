"""Bounds on one /v1/sql request beyond ClickHouse's own limits: its wall-clock time, its width, and
the bytes of its answer.

ClickHouse's limits cover what the server does; they do not cover the API's own work (reading
the query tree, converting rows to JSON), and ``max_result_bytes`` counts a constant column once
per block, so ``SELECT repeat('x', 1000000) FROM …`` passed it however many rows it had. So the
answer is also measured here, as it is converted, and refused once past the bound.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from .rejections import SqlRejected


class Deadline:
    """One clock for the whole request: each ClickHouse call gets what is left of it, and the
    API's own steps check it between and during their work."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise SqlRejected("sql_limit_exceeded",
                              f"the query exceeded the execution time limit ({self.seconds:g} s for "
                              "the whole request); narrow it with a time range, LIMIT or fewer columns",
                              {"limit": "execution time", "seconds": self.seconds})


def too_many_columns(count: int, limit: int) -> SqlRejected:
    return SqlRejected("sql_too_many_columns",
                       f"the query returns {count} columns; at most {limit} are allowed (name the "
                       "columns you need instead of repeating *)",
                       {"columns": count, "max_columns": limit})


def result_too_large(limit: int) -> SqlRejected:
    return SqlRejected("sql_limit_exceeded",
                       f"the result is larger than {limit} bytes; select fewer or shorter columns "
                       "(substring(), length()), or fewer rows per page with limit",
                       {"limit": "result bytes", "max_result_bytes": limit})


class ResultBudget:
    """Counts the JSON bytes of the rows converted so far; raises past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def add(self, row: list[Any]) -> None:
        # Measured as the response will encode it (ensure_ascii off, as FastAPI's JSON does).
        self.used += len(json.dumps(row, ensure_ascii=False, separators=(",", ":"))) + 1
        if self.used > self.limit:
            raise result_too_large(self.limit)
