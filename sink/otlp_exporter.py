"""``agentstream export otlp``: a consumer group on the redacted events topic that sends runs as
traces to an OTLP/HTTP backend (an OpenTelemetry Collector, Tempo, Honeycomb, Datadog...).

Batches of up to ``batch_max_spans`` spans, or whatever arrived within ``linger_s``, are POSTed
as OTLP/JSON to ``{endpoint}/v1/traces`` by a chain of steps (decode -> batch -> post -> commit,
export_steps.py) that ``schemas.step_driver.ChainDriver`` drives and rebuilds on each assignment. Retryable answers (429, 502, 503, 504, network errors)
are retried with exponential backoff and jitter (Retry-After honoured); the batch's offsets are
committed only after the backend accepted it, so a crash or an outage re-sends, never loses.
A non-retryable rejection (another 4xx) is logged and skipped: no retry can make the backend
take that body. A topic whose records are mostly undecodable (a wrong schema registry, say)
stops the exporter instead of committing past them all. Trace and span ids are derived from the events, so a re-sent batch carries the
same ids (backends deduplicate or show one span). With ``probe_port`` set it answers ``/healthz``
(its loop turns), ``/readyz`` (in its group, the backend not being retried) and ``/metrics``
(schemas/consumer_probes.py).

Several processors workers write the events topic at once, and on the embedded broker a fetch
can then skip a batch (schemas/offset_gaps.py): the exporter reads through an
``OffsetGapGuard``, which seeks a partition back over a jump and reads it again;
``agentstream_export_otlp_offset_gaps_total`` counts the jumps recovered and accepted.
"""
from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentstream.schemas import Codec, make_resolver, topic_name
from agentstream.schemas.consumer_errors import DlqRatioGuard
from agentstream.schemas.consumer_probes import ConsumerProbes
from agentstream.schemas.offset_gaps import GuardedConsumer, OffsetGapGuard, guard_rebalance, process_gap_counts
from agentstream.schemas.step_driver import ChainDriver

from .export_steps import RETRYABLE, BackendUnavailable, ExportChain, ExportIO, build_export_chain

__all__ = ["RETRYABLE", "BackendUnavailable", "OtlpExportSettings", "run_export"]

log = logging.getLogger("agentstream.export.otlp")

# Every exporter of the process counts into one: run_export may run more than once in a process.
GAP_COUNTS = process_gap_counts("agentstream_export_otlp")


class OtlpExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_EXPORT_", extra="ignore")

    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    group_id: str = "agentstream-export-otlp"
    # base URL: /v1/traces is appended unless the URL already ends with it
    endpoint: str = "http://localhost:4318"
    # OTEL_EXPORTER_OTLP_HEADERS style "k=v,k2=v2": usually an API key, so a secret
    headers: SecretStr = SecretStr("")
    tenant: str | None = None  # only this tenant's runs
    batch_max_spans: int = Field(500, ge=1, le=100_000)
    linger_s: float = Field(1.0, gt=0)
    max_retries: int = Field(8, ge=0)
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    timeout_s: float = 10.0
    session_timeout_ms: int = 45_000
    # Stop (uncommitted) when more than this share of the last window's records (at least
    # min_records) are undecodable: a misconfiguration, not bad luck. 1.0: never.
    undecodable_max_ratio: float = Field(0.5, ge=0)
    undecodable_window_records: int = Field(1000, ge=1)
    undecodable_min_records: int = Field(100, ge=1)
    kafka_config: dict[str, str] = Field(default_factory=dict)
    # /healthz, /readyz, /metrics (0: not served; Kubernetes sets 9111 on 0.0.0.0). Alive while
    # the loop turned within stuck_after_s; a POST is bounded by timeout_s, retries back off
    # between turns.
    probe_port: int = Field(0, ge=0, le=65_535)
    probe_host: str = "127.0.0.1"
    stuck_after_s: float = Field(300.0, gt=0)
    # A fetch that skipped offsets of a partition is read again until the skipped records come
    # (the embedded broker's produce race, schemas/offset_gaps.py), and accepted only after this
    # many re-reads over this long. Both 0: trust every fetch.
    offset_gap_window_s: float = 0.5
    offset_gap_rechecks: int = 2

    def traces_url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"

    def header_map(self) -> dict[str, str]:
        out = {}
        for n, item in enumerate(self.headers.get_secret_value().split(","), 1):
            if item.strip():
                k, sep, v = item.partition("=")
                if not sep or not k.strip():
                    # never echo the item: a malformed one may be the secret itself
                    raise ValueError(f"header #{n} of --headers: expected name=value")
                out[k.strip()] = v.strip()
        return out


def run_export(settings: OtlpExportSettings, *, stop_after_spans: int = 0, idle_timeout: float | None = None,
               client: Any = None) -> dict[str, int]:
    """Runs until Ctrl-C, ``stop_after_spans`` spans sent, or ``idle_timeout`` s without events
    (counted from the group's assignment at the earliest: a slow join is not an empty topic).
    Raises ``BackendUnavailable`` when the backend stays down, ``ConsumerCrash`` on a bug or a
    mostly undecodable topic; the failing batch and what follows are not committed."""
    import httpx
    from confluent_kafka import Consumer, TopicPartition

    headers = settings.header_map()
    codec = Codec(make_resolver(settings.schema_registry_url))
    http = client or httpx.Client()
    stats = {"spans": 0, "batches": 0, "rejected_batches": 0, "undecodable": 0, "skipped": 0}
    guard = DlqRatioGuard(settings.undecodable_max_ratio, settings.undecodable_window_records,
                          settings.undecodable_min_records)
    st = settings
    probes = ConsumerProbes(st.stuck_after_s, lambda: dict(stats))

    def build() -> ExportChain:
        return build_export_chain(ExportIO(
            codec, st.tenant, http, st.traces_url(), headers, stats, guard, commit, driver.give_up,
            batch_max_spans=st.batch_max_spans, linger_s=st.linger_s, timeout_s=st.timeout_s,
            max_retries=st.max_retries, retry_initial_s=st.retry_initial_s, retry_max_s=st.retry_max_s))

    driver = ChainDriver(build, batch_size=min(500, st.batch_max_spans), wait_s=min(0.2, st.linger_s),
                         revoke_join_s=st.session_timeout_ms / 2000)
    c = Consumer({"bootstrap.servers": st.bootstrap_servers, "group.id": st.group_id,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": st.session_timeout_ms, **st.kafka_config})
    gaps = OffsetGapGuard.from_settings(st, GAP_COUNTS)
    driver.consumer = GuardedConsumer(c, gaps)
    probes.driver = driver
    on_assign, on_revoke = guard_rebalance(gaps, driver.on_assign, driver.on_revoke)

    def commit(last: dict[tuple[str, int], int]) -> None:
        c.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False)

    c.subscribe([topic_name("events", st.topic_prefix)], on_assign=on_assign, on_revoke=on_revoke)
    try:
        if st.probe_port:
            probes.serve(st.probe_host, st.probe_port)
        while not stop_after_spans or stats["spans"] < stop_after_spans:
            # idle: nothing read for idle_timeout since the last record or assignment
            if not driver.turn() and idle_timeout is not None and driver.idle_for() > idle_timeout:
                break
        driver.finish(join=True)  # what was read is sent and committed
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        probes.failed = type(exc).__name__  # the text names the endpoint: it stays in the log
        raise
    finally:
        driver.stopping = True
        driver.finish(join=False)  # after a failure or Ctrl-C: what was not committed is dropped
        log.info("exporter stopped: %s; %.1fs blocked, %.1fs paused by backpressure or retries", stats,
                 driver.blocked_seconds, driver.paused_seconds)
        c.close()
        probes.close()
        if client is None:
            http.close()
    return stats
