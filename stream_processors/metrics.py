"""Prometheus metrics for one worker, on its own registry (several apps may share a process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .records import OutRecord


class ProcessorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter("agentstream_processors_records_in", "records read from raw", registry=r)
        self.records_out = Counter("agentstream_processors_records_out", "records written, by topic",
                                   ["topic"], registry=r)
        self.batch_seconds = Histogram("agentstream_processors_batch_seconds", "time to process one batch",
                                       buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=r)
        # Backpressure, measured: time the raw loop waited for the broker to acknowledge outputs
        # (max_in_flight batches out) instead of reading, and time it backed off a transient failure.
        self.blocked_seconds = Counter("agentstream_processors_blocked_seconds",
                                       "raw loop time spent waiting on output acknowledgements", registry=r)
        self.paused_seconds = Counter("agentstream_processors_paused_seconds",
                                      "raw loop time spent backing off transient broker failures", registry=r)
        self.errors = Counter("agentstream_processors_errors", "raw loop failures by what failed and class "
                              "(transient: retried; invalid: record to DLQ/quarantine; bug: the worker stops)",
                              ["what", "error_class"], registry=r)
        self.lag = Gauge("agentstream_processors_raw_lag_records", "raw high watermark minus the loop's "
                         "position (Tansu reports watermarks short, so this under-reports there)", registry=r)
        # Of records_in: events that went on as their own bytes (the byte prefilter found nothing
        # to redact), with no decode and no re-encode. The rest took the full redaction path.
        self.passed_bytes = Counter("agentstream_processors_passed_bytes",
                                    "events passed through as their original bytes (no redaction needed)",
                                    registry=r)
        # Events with a time more than max_event_ahead_s in the future, set to the processing time
        # and flagged (stream_processors/event_time.py): a rising count is an agent's broken clock.
        self.clamped_times = Counter("agentstream_processors_clamped_future_times",
                                     "events whose far-future time was clamped to the processing time",
                                     registry=r)
        # Per-run state of runs gone quiet (detectors/run_eviction.py): compacted to its totals
        # after run_state_idle_s, dropped past run_state_max_runs per partition.
        self.run_state_evictions = Counter("agentstream_processors_run_state_evictions",
                                           "per-run detector states of idle runs, by action (compacted, dropped)",
                                           ["action"], registry=r)
        self.fleet_out = Counter("agentstream_processors_fleet_records_out", "fleet agent outputs",
                                 ["topic"], registry=r)

    def observe_batch(self, n_in: int, out: list[OutRecord], seconds: float) -> None:
        self.records_in.inc(n_in)
        self.batch_seconds.observe(seconds)
        self._count(self.records_out, out)

    def observe_fleet(self, out: list[OutRecord]) -> None:
        self._count(self.fleet_out, out)

    @staticmethod
    def _count(counter: Counter, out: list[OutRecord]) -> None:
        per: dict[str, int] = {}
        for o in out:
            per[o.topic] = per.get(o.topic, 0) + 1
        for t, n in per.items():
            counter.labels(topic=t).inc(n)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
