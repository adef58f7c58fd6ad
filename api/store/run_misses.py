"""Runs a tenant was found not to have, remembered until an insert may carry them.

Why: a client waiting for a run to appear polls ``GET /v1/runs/{id}`` and gets 404s until the
sink stores it. Each 404 cost the API ~3 ms of CPU, most of it chDB's fixed cost of a query
(~0.7 ms for ``SELECT 1``, ~2.3 ms for the point read; bench/api_request_cpu.py): at 10k events/s
offered, bench/e2e.py's two pollers took more of the embedded process's CPU than the sink's
inserts did. A miss remembered here is answered without a query.

Exact by construction, where every insert into ``events`` (the only source of ``run_events``,
which the run read reads: migration 0010) announces the runs it carries before it is sent
(``begin``) and says when it is over (``end``): the embedded profile, where the sink and the
API share one process because chDB allows one owner per data directory. Nowhere else is one
built (``create_app`` gets none): against a ClickHouse server other processes insert.

- ``begin(runs)`` forgets every remembered miss of those runs (``None``: all of them) before
  a row of them can be visible.
- A miss is remembered only if no insert began or ended while its query ran and none still in
  flight carries the run: so an insert that ended before the query began was visible to it,
  and any later one forgets it.
"""
from __future__ import annotations

import itertools
import threading
from typing import AbstractSet

from agentstream.schemas.run_keys import run_key

CAPACITY = 10_000  # remembered misses; the oldest go first (a client guessing ids fills nothing else)


class RunMisses:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._misses: dict[bytes, None] = {}  # in the order remembered
        self._seq = 0  # one more at every begin and end
        self._in_flight: dict[int, AbstractSet[bytes] | None] = {}
        self._tokens = itertools.count()
        self.hits = 0  # 404s answered from here
        self.remembered = 0

    key = staticmethod(run_key)

    # ---- the sink's side: around every insert into events ------------------------------------

    def begin(self, runs: AbstractSet[bytes] | None) -> int:
        """Before an insert of rows of ``runs`` (schemas/run_keys.py keys; None: rows of any
        run) is sent; returns the token for ``end``."""
        with self._lock:
            self._seq += 1
            token = next(self._tokens)
            self._in_flight[token] = runs
            if runs is None:
                self._misses.clear()
            elif len(runs) <= len(self._misses):
                for k in runs:
                    self._misses.pop(k, None)
            else:
                for k in [k for k in self._misses if k in runs]:
                    del self._misses[k]
        return token

    def end(self, token: int) -> None:
        """After the insert of ``begin``'s token returned or failed."""
        with self._lock:
            self._seq += 1
            self._in_flight.pop(token, None)

    # ---- the API's side --------------------------------------------------------------------

    def snapshot(self) -> int:
        """Taken before a run read's query, for ``remember``."""
        return self._seq

    def missing(self, key: bytes) -> bool:
        """Whether the tenant is known not to have the run (no query needed)."""
        if key in self._misses:
            self.hits += 1
            return True
        return False

    def remember(self, key: bytes, snapshot: int) -> bool:
        """After a query begun at ``snapshot`` found no such run; whether it is remembered."""
        with self._lock:
            if snapshot != self._seq:
                return False
            for runs in self._in_flight.values():
                if runs is None or key in runs:
                    return False
            self._misses[key] = None
            self.remembered += 1
            if len(self._misses) > self.capacity:
                del self._misses[next(iter(self._misses))]
            return True

    def __len__(self) -> int:
        return len(self._misses)
