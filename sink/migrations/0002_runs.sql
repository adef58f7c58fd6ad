-- One row per run, kept current by a materialized view over events. Rows for one run merge in
-- the background, so readers aggregate: SELECT ... FROM runs FINAL, or GROUP BY tenant_id, run_id
-- with the matching functions (min/max/sum/anyLast).
CREATE TABLE IF NOT EXISTS runs
(
    tenant_id      LowCardinality(String),
    run_id         String,
    agent_id       SimpleAggregateFunction(anyLast, LowCardinality(String)),
    agent_version  SimpleAggregateFunction(anyLast, LowCardinality(String)),
    environment    SimpleAggregateFunction(anyLast, LowCardinality(String)),
    session_id     SimpleAggregateFunction(max, String),
    parent_run_id  SimpleAggregateFunction(max, String),
    entrypoint     SimpleAggregateFunction(max, String),
    started_ts     SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    last_ts        SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    -- '' while the run is live; SUCCESS / FAILURE / PARTIAL once RUN_END arrived
    status         SimpleAggregateFunction(max, LowCardinality(String)),
    outcome        SimpleAggregateFunction(max, LowCardinality(String)),
    duration_ms    SimpleAggregateFunction(max, Float64),
    event_count    SimpleAggregateFunction(sum, UInt64),
    step_count     SimpleAggregateFunction(sum, UInt64),
    llm_calls      SimpleAggregateFunction(sum, UInt64),
    tool_calls     SimpleAggregateFunction(sum, UInt64),
    retry_count    SimpleAggregateFunction(sum, UInt64),
    failure_count  SimpleAggregateFunction(sum, UInt64),
    input_tokens   SimpleAggregateFunction(sum, UInt64),
    output_tokens  SimpleAggregateFunction(sum, UInt64),
    cost_usd       SimpleAggregateFunction(sum, Float64),
    retention_days SimpleAggregateFunction(max, UInt16)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, run_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS runs_mv TO runs AS
SELECT
    tenant_id,
    run_id,
    agent_id,
    agent_version,
    environment,
    session_id,
    parent_run_id,
    if(kind = 'RUN_START', name, '') AS entrypoint,
    ts AS started_ts,
    ts AS last_ts,
    run_status AS status,
    outcome,
    duration_ms,
    toUInt64(1) AS event_count,
    toUInt64(kind = 'STEP') AS step_count,
    toUInt64(kind = 'STEP' AND step_kind = 'LLM') AS llm_calls,
    toUInt64(kind = 'STEP' AND step_kind = 'TOOL') AS tool_calls,
    toUInt64(kind = 'STEP' AND attempt > 1) AS retry_count,
    toUInt64(kind = 'FAILURE') AS failure_count,
    input_tokens,
    output_tokens,
    cost_usd,
    retention_days
FROM events
