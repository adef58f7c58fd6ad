"""Stores one ledger range: Avro containers first (fast path), the Python mapper for the rest.

Every insert carries a dedup token derived from the range, and which path stored what is a
pure function of the range's ledger row (``avro``, ``fallback``) and the records, so a replay
after a crash sends the same blocks under the same tokens:

- ``<token>/avro:<schema id>``: one Avro container per staged writer schema;
- ``<token>/py:<schema id>``: a container ClickHouse refused (a record the mapper rejects, a
  corrupt body), redone in Python; the schema id is added to the ledger row *before* that
  insert, so a replay goes straight to Python for it;
- ``<token>``: everything else (Python path: unstaged schemas, bad framing, alerts, ranges
  planned with the fast path off, and ranges recorded before migration 0005).

A refused container stores nothing: it is a single block (``max_insert_block_size`` above its
row count) and the view's check runs before anything reaches ``events``. Errors that are not a
refusal (table missing, server down) propagate, and the caller retries the same path.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from agentstream.schemas import Codec
from agentstream.schemas.kafka_message import KafkaMessage

from . import metrics as m
from .containers import STAGING_TABLE, ContainerBuilder, rejected_data
from .dlq import Rejected
from .errors import clickhouse_code
from .ledger import OffsetRange, record_plans
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


class RangeWriter:
    """Stores the records of one ledger range into one table, idempotently.

    Guarantees: calling ``store`` again with the same range and records (a retry, or a replay
    after a crash) sends the same blocks under the same dedup tokens, so ClickHouse keeps one
    copy; records ClickHouse or the mapper refuse come back as ``Rejected`` (for the DLQ) and
    never stop the rest; any other error propagates, and a retry takes the same paths (a
    fallback to Python is in the ledger row before its insert). One range at a time per call.
    """

    def __init__(self, client: Callable[[], Any], codec: Codec, book: RetentionBook, group: str,
                 priority: int = INSERT_PRIORITY) -> None:
        self._client = client
        self.priority = priority
        self.codec = codec
        self.book = book
        self.group = group
        self.builder = ContainerBuilder(codec.resolver.schema_for_id)

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
        """Stores ``msgs`` (the whole range ``cell['range']``); returns rows stored per path and
        the records rejected. ``cell['range']`` is replaced when a schema falls back, so a retry
        after an outage keeps the choice."""
        rng = cell["range"]
        stored = {"avro": 0, "python": 0}
        rejected: list[Rejected] = []
        if not (rng.avro and self.fast_path_for(spec)):
            stored["python"], rejected = self._python(spec, rng.token, msgs)
            return stored, rejected
        days_for = getattr(self.book, spec.retention)
        containers, rest = self.builder.split(msgs, days_for)
        redo: list[tuple[int, list[KafkaMessage]]] = []
        for c in containers:
            if c.schema_id in rng.fallback:
                redo.append((c.schema_id, c.msgs))
                continue
            settings = self.insert_settings(f"{rng.token}/avro:{c.schema_id}")
            settings["max_insert_block_size"] = max(_DEFAULT_BLOCK, len(c.msgs) + 1)
            settings["output_format_json_escape_forward_slashes"] = 0
            # ClickHouse's default, set because chDB does not apply the view's own SETTINGS and a
            # profile may change it: 'disable' made the sink ~12% slower (measured), and
            # 'force_enable' ~2x slower (it filters the wide payload columns once per branch).
            settings["short_circuit_function_evaluation"] = "enable"
            try:
                def avro_insert(st: dict[str, Any], c: Any = c) -> None:
                    self._client().raw_insert(c.table, insert_block=c.data(), fmt="Avro", settings=st)

                self._insert(avro_insert, settings)
            except Exception as exc:  # classified below; outages propagate
                if not rejected_data(exc):
                    raise
                log.warning("%s: ClickHouse refused the Avro container of schema %d (%d records), "
                            "redoing it in Python: %s", rng.token, c.schema_id, len(c.msgs), str(exc)[:300])
                m.FALLBACKS.labels(spec.table).inc()
                rng = dataclasses.replace(rng, fallback=(*rng.fallback, c.schema_id))
                record_plans(self._client(), self.group, [(rng, len(msgs))])
                cell["range"] = rng
                redo.append((c.schema_id, c.msgs))
                continue
            stored["avro"] += len(c.msgs)
        for sid, part in redo:
            n, bad = self._python(spec, f"{rng.token}/py:{sid}", part)
            stored["python"] += n
            rejected.extend(bad)
        if rest:
            n, bad = self._python(spec, rng.token, rest)
            stored["python"] += n
            rejected.extend(bad)
        return stored, rejected

    def _python(self, spec: TableSpec, token: str, msgs: list[KafkaMessage]) -> tuple[int, list[Rejected]]:
        rows, rejected = convert(spec, self.codec, self.book, msgs)
        if rows:
            self._insert(lambda st: self._client().insert(spec.table, rows, column_names=list(spec.columns), settings=st),
                         self.insert_settings(token))
        return len(rows), rejected

    def _insert(self, call: Callable[[dict[str, Any]], Any], settings: dict[str, Any]) -> None:
        """``call(settings)``; a server whose profile refuses the ``priority`` setting (a
        constraint, 452) gets the insert at the default priority, and every later one too."""
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
