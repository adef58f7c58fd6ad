"""The query API's one settings object (env prefix ``AGENTSTREAM_API_``), built at the entry point."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_API_", extra="ignore")

    # ClickHouse: ``chdb://<path>`` (embedded, relative paths resolve against the cwd) or an
    # ``http(s)://user:pass@host:port/db`` server DSN.
    clickhouse_dsn: str = "chdb://.agentstream/chdb"
    clickhouse_password: SecretStr | None = Field(
        default=None, description="overrides the DSN's password for server mode"
    )
    clickhouse_query_timeout_s: float = 30.0

    api_keys_file: Path = Path(".agentstream/api_keys.json")

    # Kafka, for the two write paths: PUT /v1/policies and POST /v1/feedback. Empty means no
    # broker: those routes answer 503 and everything else keeps working.
    bootstrap_servers: str = ""
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    kafka_client_conf: dict[str, str] = Field(default_factory=dict)
    kafka_timeout_s: float = 10.0
    # A fetch that skipped offsets of a partition is read again until the skipped records come
    # (the embedded broker's produce race, schemas/offset_gaps.py), and accepted only after this
    # many re-reads over this long. Both 0: trust every fetch.
    offset_gap_window_s: float = 0.5
    offset_gap_rechecks: int = 2

    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list)
    docs_enabled: bool = True

    page_size_default: int = 50
    page_size_max: int = 500

    # /v1/sql limits, applied as ClickHouse settings on every analyst query.
    sql_max_rows: int = 10_000
    sql_max_execution_time_s: float = 10.0
    sql_max_memory_bytes: int = 1 << 30
    sql_max_rows_to_read: int = 200_000_000
    sql_max_query_chars: int = 20_000
    # The answer's own bounds: JSON bytes of one page's rows (also ClickHouse's max_result_bytes),
    # result columns, and lines of the query tree the API reads before running a query.
    sql_max_result_bytes: int = 32 << 20
    sql_max_columns: int = 1_000
    sql_max_explain_lines: int = 100_000
    # /v1/sql fair sharing: queries one tenant runs at once and may queue (more get 429 with
    # Retry-After), how long a queued one waits, and the SQL pool: its own ClickHouse
    # connections and threads, apart from the API routes' pool, so routes never wait behind SQL.
    sql_max_concurrent_per_tenant: int = 2
    sql_max_queued_per_tenant: int = 4
    sql_queue_wait_s: float = 10.0
    sql_pool_size: int = 4
    # Connections the API's own routes use (chDB: handles on the same engine; run side by side).
    clickhouse_pool_size: int = 8
    # The embedded process only (the sink beside the API tells it of every insert): remember
    # runs a tenant does not have, so a client polling for a run gets its 404s without a query
    # (store/run_misses.py). Elsewhere it has no effect.
    run_miss_cache: bool = True
    run_miss_cache_size: int = 10_000
    # Server mode, second wall: the SQL pool's own restricted user, and the custom setting its row
    # policies read the tenant from (``agentstream api row-policies`` prints the DDL; docs/deploy.md).
    sql_clickhouse_dsn: str | None = None
    sql_tenant_setting: str | None = None

    # Alert destinations may name only public hosts (schemas/webhook_hosts.py: no loopback,
    # private, link-local… addresses, no localhost), except these: comma-separated hosts or CIDR
    # networks, e.g. "127.0.0.1" for local receivers. Empty: none.
    alert_webhook_allowed_hosts: str = ""

    # Alert stream: how often the SSE endpoint polls ClickHouse, and the keep-alive period.
    alerts_poll_interval_s: float = 1.0
    sse_heartbeat_s: float = 15.0

    # Compare/drift read at most this many per-run samples per version for rank tests.
    stats_sample_size: int = 20_000
    significance_alpha: float = 0.05

    # Dashboard sessions: a signed cookie after logging in with an API key. Several replicas
    # must share the secret; without one, each process makes its own and sessions end at restart.
    dashboard_session_secret: SecretStr | None = None
    dashboard_session_hours: float = 12.0
    dashboard_secure_cookie: bool | None = Field(
        None, description="None: Secure only when the request came over https"
    )
