-- Search and cost reports (issue #20).
--
-- Skip indexes let /v1/runs find runs by what their events carry without reading the tenant's
-- whole time range: each filter becomes `run_id IN (SELECT run_id FROM events WHERE ...)`, and
-- the index drops the granules that cannot hold the value. Parts written before this migration
-- carry no index until merged or until `ALTER TABLE events MATERIALIZE INDEX <name>` is run.
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_tool_name tool_name TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_request_model request_model TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_failure_code failure_code TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_failure_type failure_type TYPE set(64) GRANULARITY 1
;
-- One entry per attribute as 'key=value' (the '=' cannot be mistaken: the search matches whole
-- entries). The /v1/runs attribute filter uses this exact expression, so the index applies.
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_attribute_pairs
    arrayMap((k, v) -> concat(k, '=', v), mapKeys(attributes), mapValues(attributes))
    TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_session_id session_id TYPE bloom_filter(0.001) GRANULARITY 1
;
ALTER TABLE runs ADD INDEX IF NOT EXISTS idx_runs_session_id session_id TYPE bloom_filter(0.001) GRANULARITY 1
;
-- Daily cost per tenant, agent, version, provider and model, with tokens split into input,
-- output, cache read and cache write. Filled from LLM-bearing STEP rows (the only rows whose
-- token and cost columns are set, see 0001_events.sql). Readers aggregate with sum(...)
-- GROUP BY the key: rows for one key merge in the background.
CREATE TABLE IF NOT EXISTS cost_rollup_daily
(
    tenant_id          LowCardinality(String),
    day                Date,
    agent_id           LowCardinality(String),
    agent_version      LowCardinality(String),
    provider           LowCardinality(String),
    request_model      LowCardinality(String),
    retention_days     UInt16,
    calls              SimpleAggregateFunction(sum, UInt64),
    input_tokens       SimpleAggregateFunction(sum, UInt64),
    output_tokens      SimpleAggregateFunction(sum, UInt64),
    cache_read_tokens  SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd           SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY (retention_days, toYYYYMM(day))
ORDER BY (tenant_id, day, agent_id, agent_version, provider, request_model, retention_days)
TTL day + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS cost_rollup_daily_mv TO cost_rollup_daily AS
SELECT
    tenant_id,
    toDate(ts) AS day,
    agent_id,
    agent_version,
    provider,
    request_model,
    retention_days,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(cost_usd) AS cost_usd
FROM events
-- qualified: the SELECT's aliases (sum(cost_usd) AS cost_usd) would shadow the columns here
WHERE events.kind = 'STEP'
  AND (events.step_kind = 'LLM' OR events.request_model != '' OR events.cost_usd != 0)
GROUP BY tenant_id, day, agent_id, agent_version, provider, request_model, retention_days
;
-- Events stored before this migration: counted once, from the deduplicated table. The sink
-- applies migrations before it consumes, so no insert races this backfill; the count guard
-- keeps a re-run (after an interruption) from adding them twice.
INSERT INTO cost_rollup_daily
SELECT
    tenant_id, toDate(ts) AS day, agent_id, agent_version, provider, request_model, retention_days,
    count(), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cost_usd)
FROM events FINAL
WHERE kind = 'STEP' AND (step_kind = 'LLM' OR request_model != '' OR cost_usd != 0)
  AND (SELECT count() FROM cost_rollup_daily) = 0
GROUP BY tenant_id, day, agent_id, agent_version, provider, request_model, retention_days
