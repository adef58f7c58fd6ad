-- Hourly rollups per tenant, agent, version and step, kept by a materialized view over events.
-- Fleet dashboards and version comparison read these instead of scanning events. Rows for one
-- key merge in the background, so readers aggregate: GROUP BY the key with sum(...) and
-- quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state).
-- retention_days is part of the key and partition, so a tenant's rollups age out with its events.
CREATE TABLE IF NOT EXISTS step_rollup_hourly
(
    tenant_id      LowCardinality(String),
    hour           DateTime('UTC'),
    agent_id       LowCardinality(String),
    agent_version  LowCardinality(String),
    kind           LowCardinality(String),
    step_kind      LowCardinality(String),
    name           String,
    retention_days UInt16,
    events         SimpleAggregateFunction(sum, UInt64),
    -- FAILURE events, and steps whose status is not OK
    failures       SimpleAggregateFunction(sum, UInt64),
    retries        SimpleAggregateFunction(sum, UInt64),
    runs_ended     SimpleAggregateFunction(sum, UInt64),
    runs_failed    SimpleAggregateFunction(sum, UInt64),
    latency_state  AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    latency_sum_ms SimpleAggregateFunction(sum, Float64),
    input_tokens   SimpleAggregateFunction(sum, UInt64),
    output_tokens  SimpleAggregateFunction(sum, UInt64),
    cost_usd       SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY (retention_days, toYYYYMM(hour))
ORDER BY (tenant_id, hour, agent_id, agent_version, kind, step_kind, name, retention_days)
TTL hour + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000
;
-- latency: step latency for STEP rows, run duration for RUN_END rows, nothing otherwise
-- (the quantile state of other kinds stays empty).
CREATE MATERIALIZED VIEW IF NOT EXISTS step_rollup_hourly_mv TO step_rollup_hourly AS
SELECT
    tenant_id,
    toStartOfHour(ts) AS hour,
    agent_id,
    agent_version,
    kind,
    step_kind,
    if(kind = 'STEP', name, '') AS name,
    retention_days,
    count() AS events,
    countIf(kind = 'FAILURE' OR (kind = 'STEP' AND status != 'OK')) AS failures,
    countIf(kind = 'STEP' AND attempt > 1) AS retries,
    countIf(kind = 'RUN_END') AS runs_ended,
    countIf(kind = 'RUN_END' AND run_status != 'SUCCESS') AS runs_failed,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(
        if(kind = 'RUN_END', duration_ms, latency_ms), kind IN ('STEP', 'RUN_END')) AS latency_state,
    sumIf(if(kind = 'RUN_END', duration_ms, latency_ms), kind IN ('STEP', 'RUN_END')) AS latency_sum_ms,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd
FROM events
GROUP BY tenant_id, hour, agent_id, agent_version, kind, step_kind, name, retention_days
