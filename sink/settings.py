"""The sink's one settings object (env prefix ``AGENTSTREAM_SINK_``), built at the entry point."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_SINK_", extra="ignore")

    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "agentstream."
    # None: embedded schema ids from the catalog; a URL: a Confluent-compatible registry.
    schema_registry_url: str | None = None
    group_id: str = "agentstream-sink"
    # chdb:///path (embedded, one owner per process) or http(s)://user:pass@host:8123/db (server).
    clickhouse_dsn: str = "chdb://.agentstream/chdb"
    # Logical topics the sink stores; each maps to one table.
    topics: list[str] = Field(default_factory=lambda: ["events", "alerts"])
    # Hand ClickHouse the records' own Avro bytes (migration 0005's staging table + view) for
    # writer schemas it mirrors; False: decode and map every record in Python (sink/rows.py).
    avro_fast_path: bool = True
    # ...but, on the staging views (direct_event_rows off, or a record the direct path does not
    # map), only for ranges of at least this many records. The Avro path's view costs ClickHouse
    # 100-160 ms of planning per insert whatever the rows, the Python mapper ~9 us a row: below
    # ~1,400 rows the mapper is faster, and at idle, where ranges are a few records, the view's
    # fixed cost was most of emit -> queryable (bench/e2e.py idle p99 2.95-4.14 s -> 1.12-1.20 s,
    # bench/RESULTS.md). 0: every range on the Avro path.
    avro_min_rows: int = 1000
    # How the fast path's records travel to the staging table: transcoded to RowBinary in C
    # (sink/rowbinary.py; ClickHouse's Avro reader was the costliest step of an insert), or the
    # Avro container as is. Either way the same rows reach the same view.
    avro_as_rowbinary: bool = True
    # Event records mapped to events rows in C and inserted straight into events (sink/event_rows.py),
    # whatever the range's size: no staging view for ClickHouse to analyse at every insert (~75 ms
    # of a ~140 ms insert). False, or a build without the C module: the staging views above.
    direct_event_rows: bool = True
    # Keep polling Kafka on the sink's thread while a range is inserted on a second one.
    read_during_insert: bool = True
    # ClickHouse query priority of the inserts (sink/writer.py): they pause while the API's run
    # reads (priority 1) execute, so a read beside a stream of inserts gets the cores. 0: none.
    insert_priority: int = Field(8, ge=0)
    # Ranges of one flush inserted at once, each on its own ClickHouse connection (a chDB handle
    # or an HTTP client): an insert is one thread inside ClickHouse, and part of it is Python
    # (building the container, holding the GIL), so a few more than the cores keep ClickHouse
    # busy meanwhile (bench/sink.py on 2 cores: 4 and 2 within noise of each other, both well
    # ahead of 1). 1: one range at a time. A Sink given only a client object (no factory)
    # shares it, one insert at a time.
    insert_workers: int = 4
    # A flush's new ranges of a topic go in as one insert (per path): an insert costs ClickHouse
    # ~130 ms of CPU whatever its rows (the staging view's analysis, the views on events), so
    # one per flush instead of one per partition range cut the sink's CPU per event
    # (bench/sink_cpu.py, bench/RESULTS.md). False: one insert per range, insert_workers at once
    # (for a server with cores to spare and ranges large enough to amortise the fixed cost).
    insert_per_flush: bool = True
    batch_max_rows: int = 50_000
    # A partition's buffered records are cut into consecutive ranges of at most this many (each
    # its own ledger row, token and insert): one insert's block stays near the size ClickHouse
    # writes best, and a flush's work spreads evenly over insert_workers however unevenly the
    # partitions were read. 0: one range per partition per flush.
    range_max_rows: int = 50_000
    batch_max_seconds: float = 1.0
    # Cost-aware spacing of flushes (sink/flush_policy.py): a flush waits at least the time the
    # previous flush's inserts took divided by this share, at most flush_max_busy_seconds. An insert
    # costs ~125 ms of CPU on chDB whatever its size (the staging view's query analysis and the
    # views on events), so under load fewer, larger flushes cut the sink's CPU per event
    # (bench/sink_cpu.py, bench/RESULTS.md); idle, one small insert keeps the gap under
    # flush_min_interval_seconds. 0: off (flushes as batch_max_seconds and the idle rule alone
    # decide). The cap: 1 s since inserts went one per flush (2 s before): the insert's wall time
    # on a busy machine is several times its CPU and the gap follows it, so at 10k events/s the
    # gap sat at the cap, for no measurable CPU (bench/e2e.py p99 at 10k 7-9.4 s -> 3.5 s).
    flush_insert_share: float = Field(0.5, ge=0.0)
    flush_max_busy_seconds: float = Field(1.0, ge=0.0)
    # Flushes smaller than this set no gap: idle and light streams flush as the idle rule says.
    flush_busy_rows: int = Field(1000, ge=0)
    # Adaptive flush (sink/flush_policy.py): once a poll finds nothing more to read, a batch goes
    # when its oldest record is this old, at most once per min interval (bounds the parts a
    # trickle creates); busy, batches wait for batch_max_rows or batch_max_seconds as before.
    flush_idle_seconds: float = 0.05
    flush_min_interval_seconds: float = 0.2
    # How long a fetch waits for data. The embedded broker (Tansu) answers an empty fetch only at
    # this deadline even when records arrive meanwhile, so librdkafka's 500 ms default added
    # ~120 ms median / 500 ms worst to every hop; a Kafka broker returns as soon as data arrives,
    # so a short wait costs only more idle fetch requests.
    fetch_wait_max_ms: int = 50
    # A fetch that skipped offsets of a partition is read again until the skipped records come
    # (the embedded broker's produce race, schemas/offset_gaps.py), and accepted only after this
    # many re-reads over this long. Both 0: trust every fetch.
    offset_gap_window_s: float = 0.5
    offset_gap_rechecks: int = 2
    # The process's first GC threshold, applied by the sink's entry points (sink/gc_policy.py:
    # buffered records are GC-tracked, and the default 700 made GC ~25% of a busy sink's time).
    # 0: leave the interpreter's.
    gc_gen0_threshold: int = 50_000
    # Production keeps Kafka's default; the embedded profile and tests use 6000 (joins in ~3 s).
    session_timeout_ms: int = 45_000
    auto_offset_reset: str = "earliest"
    # Retention stamped on rows when the tenant has no policy on the policies topic.
    default_retention_days: int = 30
    default_alert_retention_days: int = 90
    read_policies: bool = True
    # DLQ ratio guard: the sink stops (health fails, nothing of that flush committed) when more
    # than dlq_max_ratio of the records in the last dlq_window_records (whole flushes, at least
    # dlq_min_records) were dead letters: a stream that is mostly invalid is a misconfiguration
    # (wrong registry, another producer's format) to fix, not data to dead-letter. 1.0: never.
    dlq_max_ratio: float = 0.5
    dlq_window_records: int = 1000
    dlq_min_records: int = 100
    # /healthz fails once the sink has committed nothing for this long while records wait
    # (buffered, or lag > 0): a wedged loop or an outage long enough that a restart is due.
    stuck_after_s: float = 300.0
    # On a revocation the chain stores and commits what it has read for at most this long
    # before the partitions go (Kafka's recommended commit-on-revoke); what is left is the next
    # owner's to re-read, and the ledger makes its replay land once.
    revoke_join_seconds: float = 10.0
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    metrics_port: int = 9108
    metrics_host: str = "0.0.0.0"
    # Extra librdkafka settings (security.protocol, sasl.*) for production clusters.
    kafka_config: dict[str, str] = Field(default_factory=dict)

    def consumer_config(self) -> dict[str, object]:
        """The sink's own consumer settings (offsets are committed by the sink, after storing)."""
        return {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.auto_offset_reset,
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(100, self.session_timeout_ms // 6),
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "statistics.interval.ms": 5000,
        }

    def embedded(self) -> "SinkSettings":
        """The laptop/CI profile: fast group joins."""
        return self.model_copy(update={"session_timeout_ms": 6000})
