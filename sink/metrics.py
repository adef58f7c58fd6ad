"""Prometheus metrics of the sink, in the default registry (the API's /metrics shows them too
when both run in one process; standalone, ``agentstream sink run`` serves them)."""
from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from agentstream.schemas.offset_gaps import process_gap_counts

if TYPE_CHECKING:
    from confluent_kafka import Consumer

log = logging.getLogger(__name__)

# Every consumer of the process counts into one (schemas/offset_gaps.py).
GAP_COUNTS = process_gap_counts("agentstream_sink")

ROWS = Counter("agentstream_sink_rows_total", "Rows stored in ClickHouse", ["table", "path"])
BATCHES = Counter("agentstream_sink_batches_total", "Offset ranges inserted", ["table"])
BATCH_ROWS = Histogram(
    "agentstream_sink_batch_rows", "Rows per inserted offset range", ["table"],
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000),
)
INSERT_SECONDS = Histogram(
    "agentstream_sink_insert_seconds", "Latency of one ClickHouse insert", ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# On chDB the insert runs on the calling thread (sink/thread_sched.py): these split its time into
# work and waiting for a CPU, so a slow insert on a starved host is told from an expensive one.
INSERT_CPU_SECONDS = Histogram(
    "agentstream_sink_insert_thread_cpu_seconds",
    "CPU time of the thread that ran one insert (Linux; on chDB the whole insert, on a server the client side)",
    ["table"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INSERT_CPU_WAIT_SECONDS = Histogram(
    "agentstream_sink_insert_cpu_wait_seconds",
    "Time the thread running one insert was runnable but waiting for a CPU (Linux): the host's "
    "share of the insert's latency",
    ["table"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INSERT_FAILURES = Counter("agentstream_sink_insert_failures_total", "Failed ClickHouse calls", ["table"])
DLQ = Counter("agentstream_sink_dlq_total", "Records sent to the DLQ", ["topic", "reason_kind"])
LAG = Gauge(
    "agentstream_sink_lag_records",
    "High watermark minus consumed position; Tansu reports watermarks short of the real end, "
    "so on the embedded broker this under-reports",
    ["topic", "partition"],
)
PAUSED = Gauge("agentstream_sink_paused", "1 while partitions are paused for a ClickHouse outage")
PAUSED_SECONDS = Counter("agentstream_sink_paused_seconds",
                         "Time the partitions spent paused while a transient failure was retried")
BLOCKED_SECONDS = Counter("agentstream_sink_blocked_seconds",
                          "Time the consumer thread waited on inserts without reading (buffer full)")
ERRORS = Counter("agentstream_sink_errors_total", "Failed calls by what failed and error class "
                 "(transient: retried; bug: the sink stopped)", ["what", "error_class"])
VIEW_REPAIRS = Counter("agentstream_sink_view_repairs_total",
                       "Keys of replayed ranges a view target lacked and was given (filled), or that "
                       "could not be settled against events (unresolved)", ["table", "outcome"])
REPLAYS = Counter("agentstream_sink_replayed_ranges_total", "Ledger ranges re-inserted after a restart", ["topic"])
FALLBACKS = Counter("agentstream_sink_avro_fallbacks_total",
                    "Avro containers ClickHouse refused, redone through the Python mapper", ["table"])


def report_lag(consumer: Consumer, assigned: AbstractSet[tuple[str, int]]) -> int:
    """Sets ``LAG`` per assigned partition: high watermark minus the consumer's position (on
    Tansu the watermark runs short of the real end, so this under-reports there); returns the
    total (0 when unknown)."""
    from confluent_kafka import KafkaException, TopicPartition

    total = 0
    if not assigned:
        return 0
    try:
        positions = consumer.position([TopicPartition(t, p) for t, p in assigned])
        for tp in positions:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                lag = max(0, high - tp.offset)
                LAG.labels(tp.topic, str(tp.partition)).set(lag)
                total += lag
    except KafkaException as exc:  # lag is informative only; the loop goes on
        log.debug("lag update failed: %s", exc)
    return total
