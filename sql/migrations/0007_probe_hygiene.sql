-- Probe hygiene: the findings a probe's caps left out, and the pruning of old probes.
-- Works on PostgreSQL 14 through 18. See sql/README.md ("Attestation") and docs/attestation.md.

-- How many findings of each rule the caps (100 a rule, 1,000 a probe) left out of `findings`:
-- {"ip_address": 119901}; empty when nothing was cut.
ALTER TABLE probes ADD COLUMN findings_omitted jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(findings_omitted) = 'object');

-- Pruning: a registration's probes are pruned by the timer's round once a probe was recorded
-- since its last pruning (`last_checked_at` moves with every probe, asked for, queued or
-- scheduled); `pruned_at` is the `last_checked_at` the last pruning saw.
ALTER TABLE probe_queue ADD COLUMN pruned_at timestamptz;
-- The registrations with probes to prune, without reading the others.
CREATE INDEX idx_probe_queue_unpruned ON probe_queue (last_checked_at)
    WHERE last_checked_at IS NOT NULL AND (pruned_at IS NULL OR last_checked_at > pruned_at);
