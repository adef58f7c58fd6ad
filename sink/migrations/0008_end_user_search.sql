-- Search by end user (issue #20): a skip index on events.end_user_id, the column Event v2's
-- migration (0006) added. /v1/runs?end_user= and /v1/costs?group_by=user read it; the values are
-- the SDK's and gateway's keyed hashes, never raw ids, so the index holds nothing identifying.
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_end_user_id end_user_id TYPE bloom_filter(0.001) GRANULARITY 1
