"""The producer SDK's one settings object (env prefix ``AGENTSTREAM_PRODUCER_``).

Built by ``Tracer`` when the agent does not pass one; never read at import time. Explicit
arguments (``Tracer(..., max_steps=5)``, ``tracer.run(budget=Budget(...))``) beat environment
variables, which beat the unset default.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentstream.schemas.topics import IDEMPOTENT_MAX_IN_FLIGHT

CaptureModeSetting = Literal["metadata_only", "redacted", "secure_reference"]


class ProducerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_PRODUCER_", extra="ignore")

    enabled: bool = True
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    client_conf: dict[str, str] = Field(default_factory=dict, description="extra librdkafka conf")

    # the step hot path in C when the build made it (producer/_speedups.c); False runs the
    # pure-Python core, which behaves the same (for debugging, or to compare)
    speedups: bool = True

    # transport
    queue_size: int = Field(100_000, ge=16, description="agent-side queue; full => drop the oldest, count, warn")
    flush_timeout_s: float = Field(5.0, ge=0, description="bound on flush at close/exit")
    delivery_timeout_ms: int = Field(30_000, ge=1000, description="after this a record is spooled")
    # How long a partition's batch waits for more events. The broker's cost is mostly per batch
    # (the embedded Tansu broker's very much so): at 10k events/s offered through the embedded
    # stack, 50 instead of 20 took the broker from 0.43 to 0.26 of a core and emit -> queryable
    # p99 from 2.2-2.7 s to 1.7-1.9 s, for at most 30 ms more in the SDK (bench/RESULTS.md).
    linger_ms: int = Field(50, ge=0)
    # Produce requests in flight per broker connection (why 2: schemas.IDEMPOTENT_MAX_IN_FLIGHT);
    # 5 restores librdkafka's default, which spins on a broker slower than linger_ms.
    max_in_flight: int = Field(IDEMPOTENT_MAX_IN_FLIGHT, ge=1, le=5)
    compression: str = "lz4"
    # One librdkafka producer for every tracer of the process with the same Kafka settings
    # (producer/shared_producer.py): a multi-tenant service's hundreds of tracers make one
    # stream of batches, not hundreds. Queues, spools and delivery state stay per tracer.
    share_producer: bool = True
    spool_dir: str = ".agentstream/spool"
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    spool_segment_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    probe_interval_s: float = Field(1.0, gt=0, description="broker probe while spooling")
    # False: no background thread; events wait in the (bounded) queue until tracer.flush(),
    # which encodes and delivers them on the caller's thread. For deterministic tests, and for
    # processes whose background threads are frozen between invocations (serverless handlers)
    worker_thread: bool = True

    # remote commands
    commands_enabled: bool = True
    session_timeout_ms: int = Field(45_000, description="command listener consumer; tests use 6000")
    # the tenant's policy (governance.durable_tools) followed on the policies topic; off: only
    # @tracer.tool(durable=True) and tracer.set_durable_tools(...) make a tool durable
    follow_policy: bool = True

    # sampling and capture
    sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="head sampling; failed runs kept")
    sample_buffer_max: int = Field(10_000, ge=10, description="unsampled run buffer; over => kept")
    capture_mode: CaptureModeSetting = "metadata_only"
    policy_version: str = "default"
    digest_key: SecretStr = Field(
        SecretStr(""), description="HMAC key for tool-arg and approval digests; empty => random "
                                   "per process (digests then only compare within a process)")
    price_table_path: str | None = None

    # local enforcement (None = unset)
    max_steps: int | None = None
    max_model_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wall_time_s: float | None = None
    max_repeated_fingerprints: int | None = None
