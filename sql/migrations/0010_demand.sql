-- The feed's snapshot check and the demand for unknown names. Works on PostgreSQL 14 through 18.
-- See docs/feed.md ("Snapshot", "Demand").

-- The snapshot check reads the newest `last_checked_at` and sums a short window behind it on
-- every check (shared/services/feed_snapshot.py): an index makes both a short range read.
CREATE INDEX idx_probe_queue_last_checked ON probe_queue (last_checked_at);

-- Demand: how often clients asked the feed for a server name that no registration publishes
-- (`GET …/servers/{name}/versions…` answering 404), per name and UTC day. Only names the
-- server_name rule admits are counted, at most 10,000 distinct names a day (the flush admits no
-- more), and days older than the longest window the API reads are pruned by the flush itself,
-- so the table holds at most 91 days of 10,000 names whatever anonymous clients send.
CREATE TABLE feed_demand (
    day       date        NOT NULL,
    name      text        NOT NULL CHECK (char_length(name) BETWEEN 3 AND 200
                                          AND name ~ '^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$'),
    count     bigint      NOT NULL CHECK (count >= 1),
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (day, name)
);
