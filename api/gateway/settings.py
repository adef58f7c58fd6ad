"""Settings of the ingest gateway; built at the entry point and passed in, never read at import."""
from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentstream.schemas import IDEMPOTENT_MAX_IN_FLIGHT, PARTITIONER


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_GATEWAY_", extra="ignore")

    # --- HTTP
    host: str = "127.0.0.1"
    port: int = 8001

    # --- Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    # How long a batch may wait for Kafka's acknowledgement. librdkafka's message timeout is set
    # to the same value, so when the client gets a 503 the record has also been given up.
    delivery_timeout_ms: int = Field(15_000, ge=1_000)
    linger_ms: int = Field(5, ge=0)
    compression_type: str = "none"
    # Extra librdkafka settings (security.protocol, sasl.*); values may hold secrets.
    producer_config: dict[str, SecretStr] = Field(default_factory=dict)

    # --- auth
    api_keys_file: str = ".agentstream/api_keys.json"

    # --- limits and backpressure
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(1_000, ge=1)
    # Events produced but not yet acknowledged by Kafka, across all requests. A batch that does
    # not fit is refused with 503 + Retry-After instead of being queued without a bound.
    max_inflight_events: int = Field(20_000, ge=1)
    retry_after_s: int = Field(1, ge=1)
    rate_limit_events_per_s: float = Field(5_000.0, gt=0)
    rate_limit_burst: int = Field(10_000, ge=1)
    # One encoded record (key + value). librdkafka refuses a larger one (message.max.bytes,
    # 1,000,000 by default) and no retry can help, so the gateway answers 413 instead.
    max_record_bytes: int = Field(1_000_000, ge=1024)
    # Event times accepted (ts_us, emitted_us, a payload's started_us), in seconds: a year back
    # for late spool replays, a day ahead for clock skew. Anything else is 400 out_of_range.
    max_event_age_s: float = Field(365 * 86_400, gt=0)
    max_event_ahead_s: float = Field(86_400, gt=0)

    # --- OTLP mapping
    # Key for the HMAC of tool-call arguments (gen_ai.tool.call.arguments) and of end-user ids
    # (/v1/ingest end_user_id, OTLP enduser.id/user.id); without it both are dropped and no
    # digest is computed. Neither ever travels raw. Give the SDK's digest_key the same value
    # for the same user to get the same digest on both paths.
    args_digest_key: SecretStr | None = None
    # JSON file {"model": {"input": usd_per_1M, "output": ..., "cache_read": ..., "cache_write": ...}}
    # merged over the built-in price table.
    price_table_file: str | None = None

    # --- health
    health_probe_interval_s: float = Field(1.0, gt=0)

    def digest_key_bytes(self) -> bytes | None:
        return self.args_digest_key.get_secret_value().encode() if self.args_digest_key else None

    def producer_conf(self) -> dict[str, str | int | bool]:
        conf: dict[str, str | int | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": "agentstream-gateway",
            # 2xx means durable: every in-sync replica has the record, written exactly once.
            "acks": "all",
            "enable.idempotence": True,
            # Java's and aiokafka's partitioner: a run's events from the gateway, the SDK and
            # the processors share one partition.
            "partitioner": PARTITIONER,
            "linger.ms": self.linger_ms,
            "max.in.flight.requests.per.connection": IDEMPOTENT_MAX_IN_FLIGHT,  # no spin on a slow broker
            "compression.type": self.compression_type,
            "message.timeout.ms": self.delivery_timeout_ms,
            "queue.buffering.max.messages": max(100_000, 2 * self.max_inflight_events),
            "log.connection.close": False,
        }
        conf.update({k: v.get_secret_value() for k, v in self.producer_config.items()})
        return conf
