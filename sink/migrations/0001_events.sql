-- agentstream storage, version 1. Statements are separated by lines holding only ';'.
-- The tables are a contract: the API reads them, and analysts write SQL against them.
-- Retention is per tenant through the retention_days partition column and a TTL on ts.

CREATE TABLE IF NOT EXISTS events
(
    tenant_id        LowCardinality(String),
    ts               DateTime64(6, 'UTC'),
    event_id         String,
    agent_id         LowCardinality(String),
    agent_version    LowCardinality(String),
    environment      LowCardinality(String),
    run_id           String,
    session_id       String DEFAULT '',
    parent_run_id    String DEFAULT '',
    parent_step_id   String DEFAULT '',
    seq              UInt32,
    kind             LowCardinality(String),
    -- STEP
    step_id          String DEFAULT '',
    step_kind        LowCardinality(String) DEFAULT '',
    name             String DEFAULT '',
    status           LowCardinality(String) DEFAULT '',
    started_ts       DateTime64(6, 'UTC') DEFAULT ts,
    latency_ms       Float64 DEFAULT 0,
    attempt          UInt16 DEFAULT 0,
    retry_of         String DEFAULT '',
    provider         LowCardinality(String) DEFAULT '',
    request_model    LowCardinality(String) DEFAULT '',
    input_tokens     UInt64 DEFAULT 0,
    output_tokens    UInt64 DEFAULT 0,
    cache_read_tokens  UInt64 DEFAULT 0,
    cache_write_tokens UInt64 DEFAULT 0,
    cost_usd         Float64 DEFAULT 0,
    tool_name        LowCardinality(String) DEFAULT '',
    args_digest      String DEFAULT '',
    -- FAILURE
    failure_type     LowCardinality(String) DEFAULT '',
    failure_code     LowCardinality(String) DEFAULT '',
    -- DECISION / QUALITY_SIGNAL / FEEDBACK / COMMAND_ACK: code-like fields, bounded values
    decision_type    LowCardinality(String) DEFAULT '',
    selected         String DEFAULT '',
    candidates       Array(String) DEFAULT [],
    reason_code      LowCardinality(String) DEFAULT '',
    confidence       Nullable(Float64),
    signal_type      LowCardinality(String) DEFAULT '',
    signal_code      LowCardinality(String) DEFAULT '',
    signal_value     Nullable(Bool),
    -- RUN_END. Its token and cost totals stay in payload only: the token and cost columns
    -- above are filled on LLM STEP rows alone, so sums over events never count twice.
    run_status       LowCardinality(String) DEFAULT '',
    outcome          LowCardinality(String) DEFAULT '',
    duration_ms      Float64 DEFAULT 0,
    -- everything else of the payload, as JSON, for run detail; redacted upstream
    payload          String DEFAULT '{}',
    attributes       Map(String, String),
    capture_mode     LowCardinality(String) DEFAULT 'METADATA_ONLY',
    policy_version   LowCardinality(String) DEFAULT '',
    redaction_counts Map(String, UInt64),
    retention_days   UInt16 DEFAULT 30,
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_run_id run_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(ts))
ORDER BY (tenant_id, ts, event_id)
TTL toDateTime(ts) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS alerts
(
    tenant_id      LowCardinality(String),
    detected_ts    DateTime64(6, 'UTC'),
    alert_id       String,
    alert_type     LowCardinality(String),
    severity       LowCardinality(String),
    agent_id       String DEFAULT '',
    agent_version  String DEFAULT '',
    run_id         String DEFAULT '',
    title          String,
    evidence       Map(String, String),
    source_offsets String DEFAULT '[]',
    retention_days UInt16 DEFAULT 90,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY (retention_days, toMonday(detected_ts))
ORDER BY (tenant_id, detected_ts, alert_id)
TTL toDateTime(detected_ts) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
