-- The feed's snapshot check and the demand for unknown names. Works on PostgreSQL 14 through 18.
-- See docs/feed.md ("Snapshot", "Demand").

-- The snapshot check reads the newest `last_checked_at` and sums a short window behind it on
-- every check (shared/services/feed_snapshot.py): an index makes both a short range read.
CREATE INDEX idx_probe_queue_last_checked ON probe_queue (last_checked_at);
