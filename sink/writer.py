"""Stores the ranges of a flush: Avro containers first (fast path), the Python mapper for the rest.

The ranges of one flush go in together, one insert per path, under a dedup token derived from
them (``<token>``: one range's own token, or ``flush:<digest of the ranges>``), so a retry after
an outage sends the same blocks under the same tokens. Which path stored what is a pure function
of the ranges' ledger rows (``avro``, ``fallback``) and the records:

- ``<token>/ev:<schema id>``: ranges planned on the direct path (``WIRE_DIRECT``): one insert
  per Event writer schema, its records mapped to ``events`` rows in C (event_rows.py);
- ``<token>/avro:<schema id>``: one Avro container per staged writer schema, into its staging
  table (as RowBinary when the C transcoder is built);
- ``<token>/py:<schema id>``: a container ClickHouse refused (a record the mapper rejects, a
  corrupt body), redone in Python; the schema id is added to the ranges' ledger rows *before*
  that insert, so a retry goes straight to Python for it;
- ``<token>``: everything else (Python path: unstaged schemas, bad framing, alerts, flushes
  planned with the fast path off, and ranges recorded before migration 0005).

A replay after a crash (``replay``) sends the same insert again when all its ranges are here,
then stores what ``events`` still lacks (replay_repair): a kill inside ClickHouse's commit can
leave a token recorded without its rows, and a flush's ranges may be split across consumers.

A refused container stores nothing: it is a single block (``max_insert_block_size`` above its
row count) and the view's check runs before anything reaches ``events``. Errors that are not a
refusal (table missing, server down) propagate, and the caller retries the same path.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import AbstractSet, Any, Callable, Protocol

from agentstream.schemas import Codec
from agentstream.schemas.kafka_message import KafkaMessage
from agentstream.schemas.run_keys import run_key

from . import metrics as m
from . import event_rows
from .containers import STAGING_TABLE, Container, ContainerBuilder, rejected_data
from .dlq import Rejected
from .errors import clickhouse_code
from .ledger import SPLIT, OffsetRange, group_token, record_plans
from .replay_repair import missing_records, record_keys, repair_token
from .view_repair import NO_DERIVED_VIEWS, ViewRepair
from .retention import RetentionBook
from .tables import TableSpec, convert

log = logging.getLogger(__name__)

# ClickHouse's default max_insert_block_size; the fast path raises it above the container's size.
_DEFAULT_BLOCK = 1_048_449
# The inserts' ClickHouse query priority (a larger number runs later; 0 = none): while a query of
# a higher one runs (the API's run reads, api/store/read_priority.py), an insert pauses at its
# next block, so a point read beside a stream of inserts gets the cores (measured in
# bench/run_read_live.py). Queries of priority 0 neither wait nor make others wait.
# SinkSettings.insert_priority (0: off, for a server whose profile refuses the setting; a refusal
# at run time turns it off too, see RangeWriter._insert).
# ClickHouse refuses a setting from a readonly user (164) or one a profile constrains (452).
_REFUSED_SETTING = {164, 452}
INSERT_PRIORITY = 8


class InsertWatch(Protocol):
    """Told of every insert into ``events`` and the runs it carries, before it is sent and after
    it is over: the embedded API's cache of runs a tenant does not have (api/store/run_misses.py)
    forgets those runs, and remembers none of them meanwhile."""

    def begin(self, runs: AbstractSet[bytes] | None) -> int: ...  # None: rows of any run

    def end(self, token: int) -> None: ...


def _add(stored: dict[str, int], rejected: list[Rejected], result: tuple[dict[str, int], list[Rejected]]) -> None:
    for path, n in result[0].items():
        stored[path] += n
    rejected.extend(result[1])


class RangeWriter:
    """Stores the records of ledger ranges into one table, idempotently.

    Guarantees: calling ``store_group`` again with the same ranges and records (a retry) sends
    the same blocks under the same dedup tokens, so ClickHouse keeps one copy, and ``replay``
    (after a crash) stores exactly the records the table lacks; records ClickHouse or the
    mapper refuse come back as ``Rejected`` (for the DLQ) and never stop the rest; any other
    error propagates, and a retry takes the same paths (a fallback to Python is in the ledger
    rows before its insert).
    """

    def __init__(self, client: Callable[[], Any], codec: Codec, book: RetentionBook, group: str,
                 priority: int = INSERT_PRIORITY, rowbinary: bool = True, direct: bool = True,
                 watch: InsertWatch | None = None) -> None:
        self._client = client
        self.watch = watch
        self.priority = priority
        self.rowbinary = rowbinary
        # New ranges are planned direct when asked for and built; a range recorded direct is
        # stored so whenever the C module is built, even with the setting off (its replay must
        # take the path it went by: only that insert deduplicates in every view target).
        self.direct = direct and event_rows.AVAILABLE
        self.capable = event_rows.AVAILABLE
        self._table_takes: dict[str, bool] = {}  # table -> its columns are the ones the C writes
        self.codec = codec
        self.book = book
        self.group = group
        self.builder = ContainerBuilder(codec.resolver.schema_for_id)
        self.views = ViewRepair()

    @staticmethod
    def fast_path_for(spec: TableSpec) -> bool:
        return spec.table in STAGING_TABLE

    def insert_settings(self, token: str) -> dict[str, Any]:
        """The ClickHouse settings of an insert under dedup ``token``."""
        out: dict[str, Any] = {"insert_deduplicate": 1, "insert_deduplication_token": token,
                               "deduplicate_blocks_in_dependent_materialized_views": 1}
        if self.priority:
            out["priority"] = self.priority
        return out

    def store(self, spec: TableSpec, cell: dict[str, OffsetRange],
              msgs: list[KafkaMessage]) -> tuple[dict[str, int], list[Rejected]]:
        """Stores ``msgs`` (the whole range ``cell['range']``) under the range's token."""
        return self.store_group(spec, [(cell, msgs)])

    def store_group(self, spec: TableSpec, parts: list[tuple[dict[str, OffsetRange], list[KafkaMessage]]]
                    ) -> tuple[dict[str, int], list[Rejected]]:
        """Stores the ranges of one flush together (one insert per path, whatever the number of
        partitions: an insert's fixed cost is most of the sink's CPU, bench/RESULTS.md), under a
        token of the ranges (one range: its own). Returns rows stored per path and the records
        rejected. Each ``cell['range']`` is replaced when a schema falls back, so a retry after an
        outage keeps the choice; a replay after a crash goes through ``replay``."""
        ranges = [cell["range"] for cell, _ in parts]
        token = ranges[0].token if len(ranges) == 1 else group_token(ranges)
        return self._store(spec, parts, [m for _, msgs in parts for m in msgs], token)

    def replay(self, spec: TableSpec, parts: list[tuple[dict[str, OffsetRange], list[KafkaMessage]]]
               ) -> tuple[dict[str, int], list[Rejected]]:
        """Stores ranges replayed after a crash: their insert again, under the same tokens, when
        it can be re-formed (all of its ranges are here: each table and view target drops what it
        holds and takes what a kill kept from it), then whatever ``events`` still lacks, under a
        token of its own and past the views (a token recorded without its rows, or an insert that
        was split across consumers; replay_repair), then whatever each view target still lacks
        (view_repair: a target can lose its part alone)."""
        ranges = [cell["range"] for cell, _ in parts]
        stored: dict[str, int] = {"avro": 0, "python": 0}
        rejected: list[Rejected] = []
        # An insert re-formed on another path than the one it went by would not deduplicate
        # (another table, other tokens): a direct range this process cannot store directly (a
        # build without the C module, a changed landing table) is repaired from what events
        # lacks instead, and its view targets from events.
        direct_lost = any(r.avro == event_rows.WIRE_DIRECT for r in ranges) and not self.direct_takes()
        if not direct_lost and not any(r.flush == SPLIT for r in ranges):
            stored, rejected = self.store_group(spec, parts)
        refused = {(r.partition, r.offset) for r in rejected}
        msgs = [x for _, ms in parts for x in ms if (x.partition(), x.offset()) not in refused]
        derived = spec.table == "events"
        keys = record_keys(spec, self.codec, msgs)
        missing = missing_records(self._client(), spec, msgs, keys)
        if missing:
            token = repair_token(ranges, missing)
            log.warning("%s: %d of the replayed records were not in %s; storing them", token, len(missing), spec.table)
            # past the views: a view target that kept its part would count these twice
            n, bad = self._python(spec, token, missing, {"log_comment": NO_DERIVED_VIEWS} if derived else None)
            _add(stored, rejected, ({"avro": 0, "python": n}, bad))
            refused |= {(r.partition, r.offset) for r in bad}
        if derived:
            held = {k for at, k in keys.items() if at not in refused}
            # a fill of run_events is an insert a run read may see: announced as one of any run
            announced = self.watch.begin(None) if self.watch is not None else 0
            try:
                self.views.settle(self._client(), sorted(held))
            finally:
                if self.watch is not None:
                    self.watch.end(announced)
        return stored, rejected

    def _store(self, spec: TableSpec, parts: list[tuple[dict[str, OffsetRange], list[KafkaMessage]]],
               msgs: list[KafkaMessage], token: str) -> tuple[dict[str, int], list[Rejected]]:
        stored = {"avro": 0, "python": 0}
        rejected: list[Rejected] = []
        ranges = [cell["range"] for cell, _ in parts]
        if not (all(r.avro for r in ranges) and self.fast_path_for(spec)):
            stored["python"], rejected = self._python(spec, token, msgs)
            return stored, rejected
        days_for = getattr(self.book, spec.retention)
        containers, rest = self.builder.split(msgs, days_for)
        direct = all(r.avro == event_rows.WIRE_DIRECT for r in ranges) and self.direct_takes()
        fallback = {sid for r in ranges for sid in r.fallback}
        redo: list[tuple[int, list[KafkaMessage]]] = []
        for c in containers:
            if c.schema_id in fallback:
                if len(parts) == 1:
                    redo.append((c.schema_id, c.msgs))
                    continue
                # refused together before (a retry): range by range again, as then
                _add(stored, rejected, self._store_apart(spec, parts, c.msgs))
                continue
            to_events = direct and c.v2 is not None
            settings = self.insert_settings(f"{token}/{'ev' if to_events else 'avro'}:{c.schema_id}")
            settings["max_insert_block_size"] = max(_DEFAULT_BLOCK, len(c.msgs) + 1)
            settings["output_format_json_escape_forward_slashes"] = 0
            # ClickHouse's default, set because chDB does not apply the view's own SETTINGS and a
            # profile may change it: 'disable' made the sink ~12% slower (measured), and
            # 'force_enable' ~2x slower (it filters the wide payload columns once per branch).
            settings["short_circuit_function_evaluation"] = "enable"
            try:
                # the runs only for a watch; the staging views' are not known here: any run (None)
                block, runs = c.event_rows(self.watch is not None) if to_events else (b"", None)

                def avro_insert(st: dict[str, Any], c: Any = c, to_events: bool = to_events,
                                block: bytes = block) -> None:
                    client = self._client()
                    if to_events:
                        client.raw_insert(event_rows.TABLE, event_rows.EVENT_COLUMNS, insert_block=block,
                                          fmt="RowBinary", settings=st)
                    elif self._as_rowbinary(client, c):
                        client.raw_insert(c.table, insert_block=c.rows(), fmt="RowBinary", settings=st)
                    else:
                        client.raw_insert(c.table, insert_block=c.data(), fmt="Avro", settings=st)

                self._insert(avro_insert, settings, spec, runs)
            except Exception as exc:  # classified below; outages propagate
                if not rejected_data(exc):
                    raise
                if len(parts) > 1:
                    # Only the range holding the refused record goes to Python: this schema's
                    # records are tried again range by range, under each range's own token.
                    log.info("%s: ClickHouse refused the Avro container of schema %d (%d records), "
                             "trying its %d ranges one by one", token, c.schema_id, len(c.msgs), len(parts))
                    _add(stored, rejected, self._store_apart(spec, parts, c.msgs))
                    continue
                log.warning("%s: ClickHouse refused the Avro container of schema %d (%d records), "
                            "redoing it in Python: %s", token, c.schema_id, len(c.msgs), str(exc)[:300])
                m.FALLBACKS.labels(spec.table).inc()
                for cell, _ in parts:
                    cell["range"] = dataclasses.replace(cell["range"], fallback=(*cell["range"].fallback, c.schema_id))
                record_plans(self._client(), self.group, [(cell["range"], len(part)) for cell, part in parts])
                redo.append((c.schema_id, c.msgs))
                continue
            stored["avro"] += len(c.msgs)
        for sid, part in redo:
            n, bad = self._python(spec, f"{token}/py:{sid}", part)
            stored["python"] += n
            rejected.extend(bad)
        if rest:
            n, bad = self._python(spec, token, rest)
            stored["python"] += n
            rejected.extend(bad)
        return stored, rejected

    def _as_rowbinary(self, client: Any, c: Container) -> bool:
        """Whether ``c`` goes as RowBinary: its transcoder is built and writes exactly the
        staging table's columns (asked once per table; a table that differs keeps Avro)."""
        if not self.rowbinary or c.transcoder is None:
            return False
        transcoder = c.transcoder
        return self._takes(lambda: client, c.table, lambda cols: transcoder.matches(cols),
                           "its inserts stay Avro containers")

    def direct_takes(self, client: Any = None) -> bool:
        """Whether ranges recorded on the direct path go that way here: the C module is built and
        the landing table has the columns it writes (asked once; the sink asks at start, so a
        range is planned direct only where it will be stored so)."""
        return self.capable and self._takes(lambda: client or self._client(), event_rows.TABLE, event_rows.takes,
                                           "its inserts go through the staging views")

    @property
    def direct_ready(self) -> bool:
        """``direct_takes`` as already asked (False until then); no I/O."""
        return self.direct and self._table_takes.get(event_rows.TABLE, False)

    def _takes(self, client: Callable[[], Any], table: str, check: Callable[[list[tuple[str, str]]], bool],
               otherwise: str) -> bool:
        """Whether ``table``'s columns pass ``check``: asked of ClickHouse once, then remembered."""
        takes = self._table_takes.get(table)
        if takes is None:
            cols = client().query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                                "AND table = {t:String} ORDER BY position", parameters={"t": table}).result_rows
            takes = self._table_takes[table] = check([tuple(r) for r in cols])
            if not takes:
                log.warning("%s's columns are not the ones the sink's C writes; %s", table, otherwise)
            else:
                log.info("%s takes the rows the sink's C writes", table)
        return takes

    def _store_apart(self, spec: TableSpec, parts: list[tuple[dict[str, OffsetRange], list[KafkaMessage]]],
                     msgs: list[KafkaMessage]) -> tuple[dict[str, int], list[Rejected]]:
        """``msgs`` (one refused container's records) stored range by range."""
        of = {id(msg): i for i, (_cell, part) in enumerate(parts) for msg in part}
        split: list[list[KafkaMessage]] = [[] for _ in parts]
        for msg in msgs:
            split[of[id(msg)]].append(msg)
        stored = {"avro": 0, "python": 0}
        rejected: list[Rejected] = []
        for (cell, part), sub in zip(parts, split):
            if sub:
                _add(stored, rejected, self._store(spec, [(cell, part)], sub, cell["range"].token))
        return stored, rejected

    def _python(self, spec: TableSpec, token: str, msgs: list[KafkaMessage],
                extra: dict[str, Any] | None = None) -> tuple[int, list[Rejected]]:
        rows, rejected = convert(spec, self.codec, self.book, msgs)
        if rows:
            runs = None
            if self.watch is not None and spec.table == "events":
                tenant, run = spec.columns.index("tenant_id"), spec.columns.index("run_id")
                runs = {run_key(r[tenant], r[run]) for r in rows}
            self._insert(lambda st: self._client().insert(spec.table, rows, column_names=list(spec.columns), settings=st),
                         dict(self.insert_settings(token), **(extra or {})), spec, runs)
        return len(rows), rejected

    def _insert(self, call: Callable[[dict[str, Any]], Any], settings: dict[str, Any], spec: TableSpec,
                runs: AbstractSet[bytes] | None) -> None:
        """``call(settings)``, ``watch`` told of it when it is into ``events`` (the only table
        ``run_events`` is fed from, migration 0010) with ``runs`` (None: any run); a server whose
        profile refuses the ``priority`` setting (a constraint, 452) gets the insert at the
        default priority, and every later one too."""
        watch = self.watch if spec.table == "events" else None
        token = watch.begin(runs) if watch is not None else 0
        try:
            call(settings)
        except Exception as exc:
            if not self.priority or "priority" not in settings or clickhouse_code(exc) not in _REFUSED_SETTING:
                raise
            log.warning("ClickHouse refused the inserts' priority setting (code %s): inserting at the "
                        "default priority from now on (AGENTSTREAM_SINK_INSERT_PRIORITY=0 says so up front)",
                        clickhouse_code(exc))
            self.priority = 0
            call({k: v for k, v in settings.items() if k != "priority"})
        finally:
            if watch is not None:
                watch.end(token)
