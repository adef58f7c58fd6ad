-- The sink's batch ledger, and deduplication along materialized-view chains.
--
-- Before inserting a partition's offset range the sink records it here; after a crash it
-- re-forms exactly the same ranges, so the insert_deduplication_token (derived from the range)
-- matches and ClickHouse drops the repeat. Rows older than a week are useless: by then the
-- range was committed long ago.
CREATE TABLE IF NOT EXISTS sink_batches
(
    consumer_group String,
    topic          String,
    partition      UInt32,
    start_offset   UInt64,
    end_offset     UInt64,
    -- Kafka timestamp of the range's first record: tells a replay from a recreated topic whose
    -- offsets restarted at 0 (the embedded broker keeps topics in memory).
    first_ts_ms    Int64,
    row_count      UInt32,
    planned_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (consumer_group, topic, partition, start_offset)
TTL toDateTime(planned_at) + toIntervalDay(7)
;
-- A deduplicated insert into events must not reach the views either: with
-- deduplicate_blocks_in_dependent_materialized_views=1 (set by the sink per insert) the view
-- targets deduplicate on a token derived from the source block's, which needs a window here.
ALTER TABLE runs MODIFY SETTING non_replicated_deduplication_window = 1000
