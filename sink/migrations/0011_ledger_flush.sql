-- The sink inserts a flush's new ranges of a topic together, under one dedup token derived from
-- them (sink/writer.py: an insert's fixed cost, ~130 ms of ClickHouse CPU, was most of the
-- sink's CPU at one insert per partition range). `flush` is that token on each of the flush's
-- ranges ('' for a range inserted alone), so a replay after a crash re-forms the same insert
-- when it holds all of the flush's partitions: the same token then heals, table by table, an
-- insert a kill interrupted between its parts (the view targets deduplicate on it too). A
-- range whose flush cannot be re-formed (its partitions now split across consumers) stores
-- only what `events` lacks (sink/replay_repair.py).
ALTER TABLE sink_batches ADD COLUMN IF NOT EXISTS flush String DEFAULT ''
