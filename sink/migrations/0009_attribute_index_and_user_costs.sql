-- Search and cost reports, second step (issue #20), measured on bench/queries.py's 10M events.
--
-- Attribute search: bloom filters on the map's keys and values replace 0007's index on
-- 'key=value' pairs. ClickHouse applies them to `mapContains(attributes, k) AND attributes[k] = v`
-- directly (EXPLAIN indexes=1 shows the granules skipped), which is also the exact test, so the
-- filter no longer builds a 'key=value' string per attribute of every row it reads (2-4x faster
-- in the bench), and inserts stop computing that expression too.
ALTER TABLE events DROP INDEX IF EXISTS idx_attribute_pairs
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_attribute_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1
;
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_attribute_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1
;
-- Daily cost per end user (Event v2's end_user_id, a keyed hash), agent and model: what
-- /v1/costs?group_by=user reads instead of scanning the events. Readers sum(...) GROUP BY the
-- key. LLM-bearing STEP rows only, the same condition as cost_rollup_daily_mv, calls without an
-- end user included (as end_user_id ''), so its totals equal cost_rollup_daily's.
CREATE TABLE IF NOT EXISTS cost_rollup_daily_user
(
    tenant_id          LowCardinality(String),
    day                Date,
    end_user_id        String,
    agent_id           LowCardinality(String),
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
ORDER BY (tenant_id, day, end_user_id, agent_id, request_model, retention_days)
TTL day + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000
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
-- qualified: the SELECT's aliases would shadow the columns here
WHERE events.kind = 'STEP'
  AND (events.step_kind = 'LLM' OR events.request_model != '' OR events.cost_usd != 0)
GROUP BY tenant_id, day, end_user_id, agent_id, request_model, retention_days
;
-- Events stored before this migration, once (the sink migrates before it consumes; the guard
-- keeps a re-run after an interruption from counting them twice).
INSERT INTO cost_rollup_daily_user
SELECT
    tenant_id, toDate(ts) AS day, end_user_id, agent_id, request_model, retention_days,
    count(), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cost_usd)
FROM events FINAL
WHERE kind = 'STEP' AND (step_kind = 'LLM' OR request_model != '' OR cost_usd != 0)
  AND (SELECT count() FROM cost_rollup_daily_user) = 0
GROUP BY tenant_id, day, end_user_id, agent_id, request_model, retention_days
