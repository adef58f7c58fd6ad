-- Merges that rewrite each row fewer times (issue #18). ClickHouse's simple merge selector
-- merges parts of about one size once `merge_selector_base` of them (default 5) are there; 10
-- halves how often a row of the write-heavy tables is merged again. The sink's CPU at 30k
-- events/s (bench/sink_cpu.py, arm mergebase10): merges 3.2-4.0 against 5.5-6.0 us per event,
-- the sink -6 %. The price is more active parts: about twice as many while rows arrive (10
-- against 4-5 after 600k events), and a point read plans each one (the run detail's read of
-- run_events, 1M rows: p50 5.0-5.4 ms in 5 parts, 6.0-6.4 in 10, 7.7-8.6 in 20).
ALTER TABLE events MODIFY SETTING merge_selector_base = 10
;
ALTER TABLE run_events MODIFY SETTING merge_selector_base = 10
;
ALTER TABLE runs MODIFY SETTING merge_selector_base = 10
