"""A replayed range's share of each table that events' views derive: stored once, whatever a kill kept.

One insert into ``events`` writes a part per table: ``events`` itself, then each view target
(``runs``, the rollups, ``run_events``). A non-replicated MergeTree records an insert's dedup
token before it renames the part into place, so a ``kill -9`` can leave any one of those tables
with the token and without the rows, independently of the others. Re-sending the insert under
its token (``RangeWriter.replay``) then fills only the tables whose token was not recorded.

What is left is settled here, per view target, from ``events`` (complete by then: the writer
stores the records it lacks with the views skipped, ``NO_DERIVED_VIEWS``, so a target that kept
its part is not counted twice). For each key of the target the range touches:

- ``contrib``: what the range's events give the key (the view's own query over them);
- ``truth``: what every stored event gives the key (the view's query over ``events FINAL``,
  narrowed to the events that can share a key with the range's);
- ``have``: what the target holds for the key.

``have == truth``: the target holds the range. ``truth - have == contrib``: it lacks exactly the
range, which is inserted into the target alone (the view's query over the range's events). For
a target with one row per event (``run_events``) a key is held or not. Anything else is another
insert caught between its tables (a concurrent flush, another consumer), so the check is read
again, and a fill needs two equal readings ``RETRY_S`` apart (an insert of the same keys caught
between its tables looks, for an instant, exactly like a lost part). A key still unsettled after
``ATTEMPTS`` reads is logged and counted, never guessed at: a wrong guess would count the range
twice, and a t-digest state cannot be taken back.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from . import metrics as m

log = logging.getLogger(__name__)

# The log_comment of an insert into events that the derived views skip (migration 0014).
NO_DERIVED_VIEWS = "agentstream:no-derived-views"
# the outcome label of agentstream_sink_view_repairs_total
OUTCOMES = ("filled", "unresolved")
ATTEMPTS = 6
RETRY_S = 0.25


@dataclass(frozen=True)
class DerivedTable:
    """A table a view keeps from events, and how to narrow a check of it."""

    table: str
    view: str
    key: tuple[str, ...]  # the target's sorting key: its rows for one key merge into one
    # A sum column counting the events a row took in; None: one row per event (a key is held or not).
    measure: str | None
    # The events that can share a key with the range's: those of its runs, or of its time buckets
    # ('hour' / 'day', and the target's column holding the bucket).
    bucket: str | None = None
    bucket_col: str = ""


DERIVED_FROM_EVENTS: tuple[DerivedTable, ...] = (
    DerivedTable("runs", "runs_mv", ("tenant_id", "run_id"), "event_count"),
    DerivedTable("run_events", "run_events_mv", ("tenant_id", "run_id", "event_id"), None),
    DerivedTable("step_rollup_hourly", "step_rollup_hourly_mv",
                 ("tenant_id", "hour", "agent_id", "agent_version", "kind", "step_kind", "name", "retention_days"),
                 "events", "hour", "hour"),
    DerivedTable("cost_rollup_daily", "cost_rollup_daily_mv",
                 ("tenant_id", "day", "agent_id", "agent_version", "provider", "request_model", "retention_days"),
                 "calls", "day", "day"),
    DerivedTable("cost_rollup_daily_user", "cost_rollup_daily_user_mv",
                 ("tenant_id", "day", "end_user_id", "agent_id", "request_model", "retention_days"),
                 "calls", "day", "day"),
)

# The view's source as ClickHouse keeps its query: `db.events`, or on a cluster the shard's
# `events_local AS events` (cluster.py).
_SOURCE = re.compile(r"\bFROM\s+(?:`?\w+`?\.)?`?events(?:_local)?`?(?:\s+AS\s+`?events`?)?(?=\s|$)")
_RANGE = ("tenant_id IN {tenants:Array(String)} AND run_id IN {runs:Array(String)} "
          "AND event_id IN {ids:Array(String)}")
# Keys per query parameter list: a server takes query parameters in the URL, ~1 MiB at most
# (http_max_uri_size), and a flush holds up to batch_max_rows (50,000) records.
CHUNK = 2000


def over(select: str, where: str) -> str:
    """A view's query over the ``events`` rows matching ``where`` (deduplicated) instead of an
    insert's block. The alias keeps the view's qualified columns (``events.kind``) resolving."""
    body, n = _SOURCE.subn(f"FROM (SELECT * FROM events FINAL WHERE {where}) AS events", select, count=1)
    if n != 1:
        raise ValueError(f"no events source in the view query: {select[:200]!r}")
    return body


def _bucket_scope(t: DerivedTable, column: str, j: int) -> str:
    step = "INTERVAL 1 HOUR" if t.bucket == "hour" else "INTERVAL 1 DAY"
    return (f"tenant_id IN {{tenants{j}:Array(String)}} AND {column} >= toDateTime({{lo{j}:UInt32}}, 'UTC') "
            f"AND {column} < toDateTime({{hi{j}:UInt32}}, 'UTC') + {step}")


def _runs_scope(j: int) -> str:
    return f"tenant_id IN {{tenants{j}:Array(String)}} AND run_id IN {{runs{j}:Array(String)}}"


def truth_scope(t: DerivedTable, j: int = 0) -> str:
    """The events whose contribution may share a key with the range's (parameters suffixed j)."""
    return _runs_scope(j) if t.bucket is None else _bucket_scope(t, "ts", j)


def target_scope(t: DerivedTable, j: int = 0) -> str:
    """The target's rows that may hold one of the range's keys (a prefix of its sorting key)."""
    return _runs_scope(j) if t.bucket is None else _bucket_scope(t, t.bucket_col, j)


def classify(t: DerivedTable, contrib: dict[int, float], truth: dict[int, float], have: dict[int, float]
             ) -> tuple[list[int], list[int]]:
    """The range's keys the target lacks, and those it cannot tell yet (pure)."""
    lacking: list[int] = []
    unsure: list[int] = []
    for h, c in contrib.items():
        hv = have.get(h, 0)
        if t.measure is None:
            if not hv:
                lacking.append(h)
            continue
        tr = truth.get(h, 0)
        if hv == tr:
            continue
        (lacking if tr - hv == c else unsure).append(h)
    return lacking, unsure


@dataclass
class Outcome:
    filled: dict[str, int]  # table -> keys filled
    unresolved: dict[str, int]  # table -> keys left unsettled


class ViewRepair:
    """Settles a replayed range in every table derived from ``events`` (module docstring)."""

    def __init__(self, tables: tuple[DerivedTable, ...] = DERIVED_FROM_EVENTS,
                 attempts: int = ATTEMPTS, retry_s: float = RETRY_S, chunk: int = CHUNK) -> None:
        self.tables = tables
        self.chunk = chunk
        self.attempts = attempts
        self.retry_s = retry_s
        self._selects: dict[str, str] = {}
        self._columns: dict[str, list[str]] = {}

    def _select(self, client: Any, view: str) -> str | None:
        if view not in self._selects:
            rows = client.query("SELECT as_select FROM system.tables WHERE database = currentDatabase() "
                                "AND name = {v:String}", parameters={"v": view}).result_rows
            if not rows:
                return None  # a schema without this view (an older migration level): nothing derived
            self._selects[view] = rows[0][0]
            # by name: an INSERT ... SELECT maps columns by position, a view by name
            self._columns[view] = [r[0] for r in client.query(f"DESCRIBE ({over(rows[0][0], '0')})").result_rows]
        return self._selects[view]

    def settle(self, client: Any, keys: list[tuple[str, ...]]) -> Outcome:
        """``keys``: (tenant_id, run_id, event_id) of the range's records stored in events."""
        out = Outcome({}, {})
        if not keys:
            return out
        chunks = [{"tenants": sorted({k[0] for k in c}), "runs": sorted({k[1] for k in c}),
                   "ids": sorted({k[2] for k in c})} for c in (keys[i:i + self.chunk] for i in range(0, len(keys), self.chunk))]
        tables = [t for t in self.tables if self._select(client, t.view) is not None]
        # what the range gives each key, summed over the chunks (one query per chunk for every
        # table); each key's tenant and run (or time bucket) scope its check, and the chunks it
        # came from its fill
        contrib: dict[str, dict[int, float]] = {t.table: {} for t in tables}
        scope: dict[str, dict[int, tuple[str, str]]] = {t.table: {} for t in tables}
        origin: dict[str, list[set[int]]] = {t.table: [set() for _ in chunks] for t in tables}
        for n, p in enumerate(chunks):
            sql = " UNION ALL ".join(self._contrib_sql(t) for t in tables)
            for name, h, v, tenant, where in client.query(sql, parameters=p).result_rows:
                contrib[name][int(h)] = contrib[name].get(int(h), 0.0) + float(v)
                scope[name][int(h)] = (tenant, where)
                origin[name][n].add(int(h))
        pending = {t.table: t for t in tables if contrib[t.table]}
        seen: dict[str, Any] = {}
        lacking: dict[str, list[int]] = {}
        unsure: dict[str, list[int]] = {}
        # One query per reading for every table still open: a replay's check costs one round
        # trip when everything is held (the common case: the kill came before or after an insert).
        for attempt in range(self.attempts):
            if not pending:
                break
            if attempt:
                time.sleep(self.retry_s)
            sql, params = self._reading(list(pending.values()), scope)
            read: dict[str, tuple[dict[int, float], dict[int, float]]] = {name: ({}, {}) for name in pending}
            for name, kind, h, v in client.query(sql, parameters=params).result_rows:
                read[name][int(kind) - 1][int(h)] = float(v)
            for name, (truth, have) in read.items():
                t = pending[name]
                lacking[name], unsure[name] = classify(t, contrib[name], truth, have)
                # A target short by exactly the range may also be one whose next insert of the
                # same keys is between its tables right now (a later range of the partition,
                # another consumer's flush): a fill is made only on a reading that held still
                # for RETRY_S.
                if not unsure[name] and (not lacking[name] or (truth, have) == seen.get(name)):
                    del pending[name]
                    if lacking[name]:
                        for p, came in zip(chunks, origin[name]):
                            self._fill(client, t, p, sorted(came.intersection(lacking[name])))
                        out.filled[name] = len(lacking[name])
                        m.VIEW_REPAIRS.labels(name, OUTCOMES[0]).inc(len(lacking[name]))
                        log.warning("%s: %d keys of a replayed range were missing (a kill kept their part "
                                    "from this table only); filled from events", name, len(lacking[name]))
                seen[name] = (truth, have)
        for name in pending:
            n = len(unsure[name]) + len(lacking[name])
            out.unresolved[name] = n
            m.VIEW_REPAIRS.labels(name, OUTCOMES[1]).inc(n)
            log.error("%s: %d keys of a replayed range could not be settled against events (another "
                      "insert kept changing them); left as they are", name, n)
        return out

    def _contrib_sql(self, t: DerivedTable) -> str:
        """(table, key hash, measure, a tenant, its run or time bucket) of what the range's events
        give each key. The aliases are names no view column has: ClickHouse resolves an alias
        before a column, so ``0 AS kind`` would have hashed every key with kind 0."""
        where = ("any(run_id)" if t.bucket is None
                 else f"toString(any(toUnixTimestamp(toDateTime({t.bucket_col}, 'UTC'))))")
        return (f"SELECT '{t.table}' AS _vr_table, {_hash(t)} AS _vr_h, toFloat64({_measure(t)}) AS _vr_v, "
                f"toString(any(tenant_id)) AS _vr_tenant, {where} AS _vr_where "
                f"FROM ({over(self._selects[t.view], _RANGE)}) GROUP BY _vr_h")

    def _reading(self, tables: list[DerivedTable], scope: dict[str, dict[int, tuple[str, str]]]
                 ) -> tuple[str, dict[str, Any]]:
        """One query: (table, 1 truth / 2 have, key hash, measure) for every key of ``tables``,
        its keys in lists of at most ``chunk`` (parameters suffixed by list)."""
        parts: list[str] = []
        params: dict[str, Any] = {}
        for t in tables:
            hashes = sorted(scope[t.table])
            for i in range(0, len(hashes), self.chunk):
                j = len(parts)
                part = hashes[i:i + self.chunk]
                params[f"hs{j}"] = part
                params[f"tenants{j}"] = sorted({scope[t.table][x][0] for x in part})
                if t.bucket is None:
                    params[f"runs{j}"] = sorted({scope[t.table][x][1] for x in part})
                else:
                    buckets = [int(scope[t.table][x][1]) for x in part]
                    params[f"lo{j}"], params[f"hi{j}"] = min(buckets), max(buckets)
                head = f"SELECT '{t.table}' AS _vr_table"
                h, measure = _hash(t), f"toFloat64({_measure(t)})"
                if t.measure is not None:
                    parts.append(f"{head}, 1 AS _vr_kind, {h} AS _vr_h, {measure} AS _vr_v FROM "
                                 f"({over(self._selects[t.view], truth_scope(t, j))}) "
                                 f"WHERE _vr_h IN {{hs{j}:Array(UInt64)}} GROUP BY _vr_h")
                parts.append(f"{head}, 2 AS _vr_kind, {h} AS _vr_h, {measure} AS _vr_v FROM {t.table} "
                             f"WHERE {target_scope(t, j)} AND _vr_h IN {{hs{j}:Array(UInt64)}} GROUP BY _vr_h")
        return " UNION ALL ".join(parts), params

    def _fill(self, client: Any, t: DerivedTable, params: dict[str, Any], lacking: list[int]) -> None:
        if not lacking:
            return
        cols = ", ".join(f"`{c}`" for c in self._columns[t.view])
        # under a token of what it stores (these events, these keys): a fill sent twice (a retry
        # after a lost answer, a second replay that read before the first one's fill) is dropped
        digest = hashlib.sha256(repr((t.table, params["ids"], lacking)).encode()).hexdigest()[:32]
        client.command(f"INSERT INTO {t.table} ({cols}) SELECT {cols} FROM ({over(self._selects[t.view], _RANGE)}) "
                       f"WHERE {_hash(t)} IN {{lack:Array(UInt64)}}", parameters=dict(params, lack=lacking),
                       settings={"insert_deduplicate": 1, "insert_deduplication_token": f"viewfill:{digest}"})


def _hash(t: DerivedTable) -> str:
    return f"cityHash64({', '.join(t.key)})"


def _measure(t: DerivedTable) -> str:
    return f"sum({t.measure})" if t.measure else "count()"
