-- Run detail's own copy of each event (issue #18): GET /v1/runs/{id} read in one plan of one
-- column, ordered by run.
--
-- The read it replaces (the run's header from `runs` FINAL, then its events FINAL, 35 columns,
-- bounded by the header's times) cost 12-20 ms on 1M merged events, ~80 % of it ClickHouse
-- planning the query, and planning grows with the columns read (bench/run_read_live.py). Here
-- each event is one pre-rendered `detail` under the key (tenant_id, run_id, event_id), so the
-- read is `SELECT detail WHERE tenant_id = ? AND run_id = ?`: one column, no FINAL, the run's
-- granule(s). The reader keeps one copy per event_id (the latest inserted_at, which is what a
-- merge of this ReplacingMergeTree keeps too), so an event delivered twice shows once before
-- any merge.
--
-- `detail` is the event's fields in RowBinary (api/store/runs.py's RUN_EVENT_LAYOUT is the
-- contract): a leading layout version byte, then each field cast to a fixed type, so a column's
-- type changing in `events` cannot change the bytes. RowBinary rather than JSON: it costs the
-- insert about half the CPU (no text formatting or escaping; +4-5 against +9-14 us per row with
-- its merges, bench/RESULTS.md) and keeps floats exact, nan and inf included. A later layout
-- appends fields and bumps the version byte.
--
-- Not partitioned: a point read plans every part it may touch, and weekly partitions put ~2 ms
-- on every read (measured); the TTL removes expired rows in merges instead of dropping parts.
-- A small granule: a point read reads one granule of `detail` (~0.3 KB a row), not 8192 rows.
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
;
-- Events stored before this migration (the sink migrates before it consumes, so no insert races
-- it). No guard against a re-run after an interruption: a second copy of an event is one the
-- reader and the merges drop anyway.
INSERT INTO run_events
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
        toUnixTimestamp64Milli(inserted_at))
FROM events
