-- The views that derive tables from events (runs, the rollups, run_events) skip an insert whose
-- log_comment is 'agentstream:no-derived-views' (sink/view_repair.py). A replay after a crash
-- may find a range's events rows gone while its view targets kept theirs (a kill between the
-- dedup log's append and the part's rename, per table): storing those events again through the
-- views counted the range twice in runs and the rollups, and a t-digest state cannot be taken
-- back. So the sink stores such rows in events alone, then fills each view target from events
-- with exactly what that target lacks.
-- The condition is a constant per insert: every other insert passes through unchanged.
--
-- Dropped and created again, not ALTER ... MODIFY QUERY: after a MODIFY QUERY, ClickHouse gave a
-- view's block another dedup token in the process that altered it than in any process started
-- later (reproduced in chDB 26.9), so a range stored by the migrating sink and replayed after a
-- crash was counted twice in every view target. A dropped and created view keeps the tokens of
-- the one it replaces. The sink applies migrations before it consumes; a deployment whose other
-- sinks keep inserting meanwhile should stop them for the upgrade (docs/storage.md).
DROP VIEW IF EXISTS runs_mv
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
WHERE getSetting('log_comment') != 'agentstream:no-derived-views'
;
DROP VIEW IF EXISTS step_rollup_hourly_mv
;
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
WHERE getSetting('log_comment') != 'agentstream:no-derived-views'
GROUP BY tenant_id, hour, agent_id, agent_version, kind, step_kind, name, retention_days
;
DROP VIEW IF EXISTS cost_rollup_daily_mv
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
WHERE (events.kind = 'STEP'
  AND (events.step_kind = 'LLM' OR events.request_model != '' OR events.cost_usd != 0))
  AND getSetting('log_comment') != 'agentstream:no-derived-views'
GROUP BY tenant_id, day, agent_id, agent_version, provider, request_model, retention_days
;
DROP VIEW IF EXISTS cost_rollup_daily_user_mv
;
CREATE MATERIALIZED VIEW IF NOT EXISTS cost_rollup_daily_user_mv TO cost_rollup_daily_user AS
SELECT
    tenant_id,
    toDate(ts) AS day,
    end_user_id,
    agent_id,
    request_model,
    retention_days,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(cost_usd) AS cost_usd
FROM events
WHERE (events.kind = 'STEP'
  AND (events.step_kind = 'LLM' OR events.request_model != '' OR events.cost_usd != 0))
  AND getSetting('log_comment') != 'agentstream:no-derived-views'
GROUP BY tenant_id, day, end_user_id, agent_id, request_model, retention_days
;
DROP VIEW IF EXISTS run_events_mv
;
CREATE MATERIALIZED VIEW IF NOT EXISTS run_events_mv TO run_events AS
SELECT
    tenant_id, run_id, event_id, ts, retention_days, inserted_at,
    formatRowNoNewline('RowBinary',
        toUInt8(1), toString(kind), toUInt64(seq), event_id, toUnixTimestamp64Micro(ts), step_id,
        toString(step_kind), name, toString(status), parent_step_id,
        toUnixTimestamp64Micro(started_ts), toFloat64(latency_ms), toUInt64(attempt), retry_of,
        toString(provider), toString(request_model), toUInt64(input_tokens), toUInt64(output_tokens),
        toUInt64(cache_read_tokens), toUInt64(cache_write_tokens), toFloat64(cost_usd),
        toString(tool_name), args_digest, toString(failure_type), toString(failure_code),
        toString(decision_type), selected, CAST(candidates AS Array(String)), toString(reason_code),
        CAST(confidence AS Nullable(Float64)), toString(signal_type), toString(signal_code),
        CAST(signal_value AS Nullable(Bool)), payload, CAST(attributes AS Map(String, String)),
        toString(agent_id), toString(agent_version), toString(environment), session_id,
        parent_run_id, toString(run_status), toString(outcome), toFloat64(duration_ms),
        toUnixTimestamp64Milli(inserted_at)) AS detail
FROM events
WHERE getSetting('log_comment') != 'agentstream:no-derived-views'
;
