"""``agentstream plan``: a capacity plan from the measured per-core figures (bench/figures.json).

Every factor is read from the figures file, which says how each was measured (or that it is an
assumption) and when; the plan prints them. The rules are docs/deploy.md's "Sizing": replicas
are ``rate / per-pod figure x headroom``; a topic gets partitions for its consumers' replicas
with room to grow; Kafka brokers cover replicated writes and retained data; ClickHouse shards
cover insert + merge CPU and the retained rows, each shard with its replicas.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer

from agentstream.schemas.topics import PRODUCTION, TOPICS

N = TypeVar("N", int, float)

FIGURES_FILE = Path(__file__).resolve().parents[1] / "bench" / "figures.json"
HEADROOM = 1.2  # rebalances and bursts
GROWTH = 1.2  # partitions can only be added by re-mapping runs: leave room at creation
PARTITION_STEP = 12  # partition counts divisible by many replica counts
MIN_REPLICAS = {"gateway": 3, "kafka_brokers": 3, "clickhouse_shards": 1}
# Shard counts that divide a partition count of a few multiples of PARTITION_STEP: the cluster's
# sharding key is Kafka's partitioner hash, so shards must divide the events partitions.
SHARD_COUNTS = sorted(2 ** a * 3 ** b for a in range(12) for b in range(2))
# topics that carry every event (raw, then events after redaction)
FULL_RATE_TOPICS = ("raw", "events")


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Figures:
    measured: str
    values: dict[str, float]
    sources: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path = FIGURES_FILE) -> "Figures":
        try:
            doc = json.loads(path.read_text())
            figs = doc["figures"]
            return cls(doc["measured"], {k: float(v["value"]) for k, v in figs.items()}, figs)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PlanError(f"{path}: not a figures file ({exc})") from exc

    def __getitem__(self, key: str) -> float:
        if key not in self.values:
            raise PlanError(f"the figures file has no {key!r}")
        return self.values[key]


@dataclass(frozen=True)
class PlanInput:
    events_per_s: float
    retention_days: int = 30
    event_bytes: int = 300
    http_share: float = 0.2
    clickhouse_replicas: int = 2

    def check(self) -> None:
        if not self.events_per_s > 0:
            raise PlanError("--events-per-s must be positive")
        if self.retention_days < 1:
            raise PlanError("--retention-days must be at least 1")
        if self.event_bytes < 1:
            raise PlanError("--event-bytes must be positive")
        if not 0 <= self.http_share <= 1:
            raise PlanError("--http-share is a fraction of the events, 0 to 1")
        if self.clickhouse_replicas < 1:
            raise PlanError("--clickhouse-replicas must be at least 1")


@dataclass
class Plan:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, value, how)
    numbers: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, what: str, value: N, how: str, unit: str = "") -> N:
        """Records a figure and hands it back as given: a count stays an int."""
        self.numbers[key] = value
        self._index[key] = len(self.rows)
        self.rows.append((what, self._shown(value, unit), how))
        return value

    def revise(self, key: str, value: float, how: str) -> None:
        what, _, old = self.rows[self._index[key]]
        self.numbers[key] = value
        self.rows[self._index[key]] = (what, self._shown(value, ""), f"{old}; {how}")

    @staticmethod
    def _shown(value: float, unit: str) -> str:
        shown = f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:,.1f}"
        return f"{shown}{unit}"

    _index: dict[str, int] = field(default_factory=dict)


def replicas(rate: float, per_pod: float, minimum: int = 1) -> int:
    return max(minimum, math.ceil(rate / per_pod * HEADROOM - 1e-9))


def partitions_for(consumers: int) -> int:
    return PARTITION_STEP * math.ceil(consumers * GROWTH / PARTITION_STEP - 1e-9)


def make_plan(inp: PlanInput, figs: Figures) -> Plan:
    inp.check()
    r, p = inp.events_per_s, Plan()
    proc = p.add("processors", "processor workers (1 core each)", replicas(r, figs["processors_ev_s_per_core"]),
                 f"{r:,.0f} / {figs['processors_ev_s_per_core']:,.0f} ev/s per core x {HEADROOM}")
    sink = p.add("sink", "sink workers (Avro fast path)", replicas(r, figs["sink_avro_rows_s_per_pod"]),
                 f"{r:,.0f} / {figs['sink_avro_rows_s_per_pod']:,.0f} rows/s per pod x {HEADROOM}")
    raw_parts = p.add("raw_partitions", "partitions of raw", partitions_for(proc),
                      f"{proc:.0f} processor workers x {GROWTH} growth, next multiple of {PARTITION_STEP}")
    p.add("events_partitions", "partitions of events", max(raw_parts, partitions_for(sink)),
          f"{sink:.0f} sink workers x {GROWTH}, at least raw's")
    p.add("gateway", "gateway replicas", replicas(r * inp.http_share, figs["gateway_ev_s_per_pod"], MIN_REPLICAS["gateway"]),
          f"{inp.http_share:.0%} of events over HTTP / {figs['gateway_ev_s_per_pod']:,.0f} ev/s per pod x {HEADROOM}, "
          f"at least {MIN_REPLICAS['gateway']}")
    p.add("sdk_cores", "agent-side SDK CPU (cores, fleet-wide)", r * figs["sdk_cpu_us_per_event"] / 1e6,
          f"{figs['sdk_cpu_us_per_event']:.0f} us per event")

    # Kafka
    rf = PRODUCTION.replication_factor
    compressed = r * inp.event_bytes / figs["kafka_compression_ratio"] / 1e6  # MB/s per full-rate topic
    produced = compressed * len(FULL_RATE_TOPICS)
    writes = p.add("kafka_write_mb_s", "Kafka replicated writes (MB/s)", produced * rf,
                   f"{r:,.0f} x {inp.event_bytes} B / {figs['kafka_compression_ratio']:g} (zstd) on raw and events, x RF {rf}")
    retained_tb = 0.0
    for logical in FULL_RATE_TOPICS:
        spec = TOPICS[logical]
        ms = spec.production_retention_ms or spec.retention_ms
        retained_tb += compressed * ms / 1000 * rf / 1e6
    disk = p.add("kafka_disk_tb", "Kafka retained data (TB)", retained_tb,
                 "raw and events at their production retention (topics create), x RF")
    p.add("kafka_brokers", "Kafka brokers", max(MIN_REPLICAS["kafka_brokers"],
                                               math.ceil(writes / figs["kafka_broker_write_mb_s"] - 1e-9),
                                               math.ceil(disk / figs["kafka_broker_disk_tb"] - 1e-9)),
          f"writes / {figs['kafka_broker_write_mb_s']:g} MB/s and data / {figs['kafka_broker_disk_tb']:g} TB per broker")
    p.add("kafka_read_mb_s", "Kafka consumer reads (MB/s)", produced,
          "processors read raw, the sink reads events (more per extra consumer group)")

    # ClickHouse
    rows_day = r * 86_400
    storage_tb = p.add("clickhouse_tb_per_replica", "ClickHouse data per replica (TB)",
                       rows_day * figs["clickhouse_bytes_per_row"] * inp.retention_days / 1e12,
                       f"{rows_day / 1e9:,.1f} bn rows/day x {figs['clickhouse_bytes_per_row']:g} B x {inp.retention_days} days")
    cores = p.add("clickhouse_cores", "ClickHouse insert + merge cores",
                  r / figs["clickhouse_insert_rows_s_per_core"] * figs["clickhouse_merge_cpu_factor"],
                  f"{r:,.0f} / {figs['clickhouse_insert_rows_s_per_core']:,.0f} rows/s per core x "
                  f"{figs['clickhouse_merge_cpu_factor']:g} for merges")
    usable = figs["clickhouse_node_cores"] * figs["clickhouse_node_cpu_utilisation"]
    needed = max(MIN_REPLICAS["clickhouse_shards"], math.ceil(cores / usable - 1e-9),
                 math.ceil(storage_tb / figs["clickhouse_node_disk_tb"] - 1e-9))
    shards = p.add("clickhouse_shards", "ClickHouse shards", min(c for c in SHARD_COUNTS if c >= needed),
                   f"cores / {usable:g} usable per node and data / {figs['clickhouse_node_disk_tb']:g} TB per node, "
                   "up to a count of the form 2^a x 3^b (it must divide the events partitions)")
    events_parts = p.numbers["events_partitions"]
    if events_parts % shards:
        # the cluster's sharding key is Kafka's partitioner hash: with shards dividing the
        # partitions, each sink range is one shard's block (docs/storage.md, "Sharding key")
        step = math.lcm(PARTITION_STEP, int(shards))
        p.revise("events_partitions", step * math.ceil(events_parts / step),
                 f"a multiple of the {shards:.0f} ClickHouse shards")
    p.add("clickhouse_replicas", "ClickHouse replicas per shard", inp.clickhouse_replicas,
          "availability and read scale; Keeper: 3 nodes")
    p.add("clickhouse_nodes", "ClickHouse nodes", shards * inp.clickhouse_replicas, "shards x replicas")
    p.add("clickhouse_insert_mb_s", "sink -> ClickHouse network (MB/s)", r * inp.event_bytes / 1e6,
          "rows as sent by the sinks (Avro, uncompressed)")
    p.add("clickhouse_replication_mb_s", "ClickHouse replication network (MB/s)",
          r * figs["clickhouse_bytes_per_row"] * (inp.clickhouse_replicas - 1) / 1e6,
          "compressed parts fetched by the other replicas")
    return p


def render_markdown(inp: PlanInput, figs: Figures, plan: Plan) -> str:
    lines = [f"`agentstream plan --events-per-s {inp.events_per_s:.0f} --retention-days {inp.retention_days} "
             f"--event-bytes {inp.event_bytes}` (figures of {figs.measured}, bench/figures.json):", "",
             "| what | plan | from |", "|---|---|---|"]
    lines += [f"| {w} | {v} | {h} |" for w, v, h in plan.rows]
    return "\n".join(lines) + "\n"


def render_text(inp: PlanInput, figs: Figures, plan: Plan) -> str:
    width = max(len(w) for w, _, _ in plan.rows)
    out = [f"capacity plan for {inp.events_per_s:,.0f} events/s, {inp.event_bytes} B/event, "
           f"{inp.retention_days} days in ClickHouse"]
    out += [f"  {w:<{width}}  {v:>10}   {h}" for w, v, h in plan.rows]
    out.append(f"figures measured {figs.measured} ({figs.sources and 'bench/figures.json'}):")
    for key, src in figs.sources.items():
        out.append(f"  {key} = {src['value']} [{src.get('kind', '?')}] {src.get('source', '')}")
    return "\n".join(out)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        events_per_s: float = typer.Option(..., help="sustained events per second into raw"),
        retention_days: int = typer.Option(30, help="days ClickHouse keeps events"),
        event_bytes: int = typer.Option(300, help="Avro bytes per event (the bench events are ~190)"),
        http_share: float = typer.Option(0.2, help="share of events arriving through the ingest gateway"),
        clickhouse_replicas: int = typer.Option(2, help="replicas per ClickHouse shard"),
        figures: Path = typer.Option(FIGURES_FILE, help="per-core figures (bench/figures.json)"),
        fmt: str = typer.Option("text", "--format", help="text, markdown or json"),
    ) -> None:
        """Size an installation from the measured per-core figures: partitions, workers,
        gateway replicas, brokers, ClickHouse shards and replicas, disk and network."""
        try:
            figs = Figures.load(figures)
            inp = PlanInput(events_per_s, retention_days, event_bytes, http_share, clickhouse_replicas)
            result = make_plan(inp, figs)
        except PlanError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if fmt == "json":
            typer.echo(json.dumps({"measured": figs.measured, "input": vars(inp), "plan": result.numbers}))
        elif fmt == "markdown":
            typer.echo(render_markdown(inp, figs, result), nl=False)
        elif fmt == "text":
            typer.echo(render_text(inp, figs, result))
        else:
            raise typer.BadParameter("text, markdown or json", param_hint="--format")
