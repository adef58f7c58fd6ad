-- Run detail's own copy of each event (issue #18): GET /v1/runs/{id} read in one plan of one
-- column, ordered by run.
--
-- The read it replaces (the run's header from `runs` FINAL, then its events FINAL, 35 columns,
-- bounded by the header's times) cost 15-18 ms on 1M merged events, ~80 % of it ClickHouse
-- planning the query, and planning grows with the columns read (bench/run_read_live.py). Here
-- each event is one pre-rendered `detail` (a JSON array, positional: api/store/runs.py's
-- RUN_EVENT_FIELDS is the contract) under the key (tenant_id, run_id, event_id), so the read is
-- `SELECT detail WHERE tenant_id = ? AND run_id = ?`: one column, no FINAL, the run's granule(s).
-- The reader keeps one copy per event_id (the latest inserted_at, which is what a merge of this
-- ReplacingMergeTree keeps too), so an event delivered twice shows once before any merge.
--
-- Not partitioned: a point read plans every part it may touch, and weekly partitions put ~2 ms
-- on every read (measured); the TTL removes expired rows in merges instead of dropping parts.
-- A small granule: a point read reads one granule of `detail` (~0.5 KB a row), not 8192 rows.
-- Floats travel as toString (shortest round-trip text, and 'nan'/'inf' survive where JSON
-- would write null). Field 0 is the layout's version: a later layout appends fields and bumps it.
CREATE TABLE IF NOT EXISTS run_events
(
    tenant_id      LowCardinality(String),
    run_id         String,
    event_id       String,
    ts             DateTime64(6, 'UTC'),
    retention_days UInt16,
    inserted_at    DateTime64(3, 'UTC'),
    detail         String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (tenant_id, run_id, event_id)
TTL toDateTime(ts) + toIntervalDay(retention_days)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS run_events_mv TO run_events AS
SELECT
    tenant_id, run_id, event_id, ts, retention_days, inserted_at,
    toJSONString(tuple(
        1, kind, seq, event_id, toUnixTimestamp64Micro(ts), step_id, step_kind, name, status,
        parent_step_id, toUnixTimestamp64Micro(started_ts), toString(latency_ms), attempt, retry_of,
        provider, request_model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
        toString(cost_usd), tool_name, args_digest, failure_type, failure_code, decision_type,
        selected, candidates, reason_code, toString(confidence), signal_type, signal_code,
        signal_value, payload, attributes, agent_id, agent_version, environment, session_id,
        parent_run_id, run_status, outcome, toString(duration_ms),
        toUnixTimestamp64Milli(inserted_at))) AS detail
FROM events
;
-- Events stored before this migration (the sink migrates before it consumes, so no insert races
-- it). No guard against a re-run after an interruption: a second copy of an event is one the
-- reader and the merges drop anyway.
INSERT INTO run_events
SELECT
    tenant_id, run_id, event_id, ts, retention_days, inserted_at,
    toJSONString(tuple(
        1, kind, seq, event_id, toUnixTimestamp64Micro(ts), step_id, step_kind, name, status,
        parent_step_id, toUnixTimestamp64Micro(started_ts), toString(latency_ms), attempt, retry_of,
        provider, request_model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
        toString(cost_usd), tool_name, args_digest, failure_type, failure_code, decision_type,
        selected, candidates, reason_code, toString(confidence), signal_type, signal_code,
        signal_value, payload, attributes, agent_id, agent_version, environment, session_id,
        parent_run_id, run_status, outcome, toString(duration_ms),
        toUnixTimestamp64Milli(inserted_at)))
FROM events
