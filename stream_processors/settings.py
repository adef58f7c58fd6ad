"""The processors' one settings object (env prefix ``AGENTSTREAM_PROCESSORS_``)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only for embedded/demo use: production must set AGENTSTREAM_PROCESSORS_HASH_KEY.
DEMO_HASH_KEY = "agentstream-embedded-demo-hash-key"


class ProcessorsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_PROCESSORS_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    app_id: str = "agentstream-processors"
    # Production keeps Kafka's usual 30 s; the embedded profile and tests use 6.0 so a group
    # joins in ~3 s on Tansu.
    broker_session_timeout: float = 30.0
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    data_dir: Path = Path(".agentstream/processors")
    hash_key: SecretStr = SecretStr(DEMO_HASH_KEY)
    replication_factor: int = 1
    environment: str = "embedded"
    # Hot path: records handed to the batch core at once, and how long to wait to fill a batch.
    batch_size: int = 2000
    batch_within_s: float = 0.05
    # How long a fetch of raw waits for data: the embedded broker answers an empty fetch only at
    # this deadline (librdkafka's 500 ms default added ~120 ms median to the hop); on Kafka a
    # short wait costs only idle fetch requests.
    fetch_wait_max_ms: int = 50
    # A fetch that skipped offsets of a partition is read again until the skipped records come
    # (the embedded broker's produce race, schemas/offset_gaps.py), and accepted only after this
    # many re-reads over this long. Both 0: trust every fetch.
    offset_gap_window_s: float = 0.5
    offset_gap_rechecks: int = 2
    log_level: str = "info"
    # After SIGTERM/SIGINT, how long a clean stop (final commit, producer flush) may take before
    # the worker exits without it (stream_processors/shutdown_guard.py). Below the embedded
    # stack's 15 s per part, so the stack never has to SIGKILL.
    shutdown_grace_s: float = 10.0
    # Raw batches produced but not yet acknowledged: processing overlaps their delivery; the
    # loop blocks (counted in agentstream_processors_blocked_seconds) when this many are out.
    max_in_flight: int = 3
    # How long a batch's outputs may stay unacknowledged before the loop gives up on the broker
    # (the worker exits; nothing of that batch was committed, so it is re-read on restart).
    settle_timeout_s: float = 60.0
    # Retriable failures (a commit during a coordinator move, outputs the broker did not take):
    # retried with exponential backoff between these bounds.
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    # DLQ ratio guard (schemas/consumer_errors.py): the worker stops, committing nothing of that
    # batch, when more than dlq_max_ratio of the last dlq_window_records raw records (whole
    # batches, at least dlq_min_records) went to the DLQ. 1.0: never.
    dlq_max_ratio: float = 0.5
    dlq_window_records: int = 1000
    dlq_min_records: int = 100
    # An event time (ts_us, a payload's started_us) more than this after the processing time is
    # clamped to it and flagged (stream_processors/event_time.py); the gateway's bound, a day.
    max_event_ahead_s: float = Field(86_400.0, gt=0)
    # Per-run detector state of a run that never ends (a crashed agent sends no RUN_END) is not
    # kept forever (detectors/run_eviction.py): a run with no event for run_state_idle_s of
    # event time is compacted to its totals (budgets, wall time, alerts raised, governance), and
    # past run_state_max_runs runs per raw partition the least recently active are dropped,
    # compacted ones first. 0 turns either off.
    run_state_idle_s: float = Field(3600.0, ge=0)
    run_state_max_runs: int = Field(100_000, ge=0)
    # /healthz fails once the raw loop has committed nothing for this long while raw has lag (the
    # alert forwarder's, once its loop has not turned for this long).
    stuck_after_s: float = 300.0
    # The alert forwarder's /healthz, /readyz, /metrics (0: not served; Kubernetes sets 9110 on
    # 0.0.0.0). Apart from web_port: the forwarder may run next to a worker.
    forwarder_probe_port: int = Field(0, ge=0, le=65_535)
    forwarder_probe_host: str = "127.0.0.1"

    def hash_key_bytes(self) -> bytes:
        return self.hash_key.get_secret_value().encode()
