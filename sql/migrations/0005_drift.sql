-- Drift: each registration's attestation state beside (not in) its row, so that recording a probe
-- neither touches `updated_at` nor rewrites a wide, heavily indexed row; and the probe queue
-- fires on revisions. Works on PostgreSQL 14 through 18. See sql/README.md ("Attestation").

-- One row per probed registration, made when its first probe is claimed or asked for (before the
-- probe runs), so that the statement recording a probe always finds the row to lock.
--   latest:    the summary of its latest probe (any revision), as the registration answer shows it;
--   published: the summary of the latest probe of the revision that was published when it ran;
--   baseline:  the surface that drift is measured against, of `baseline_revision` (the published
--              revision when it was taken): {probe_id, tools_hash, tools, instructions, prompts, resources};
--   drifted:   an `ok` probe of that revision answered another hash; until an administrator accepts;
--   drift_withdrawn: DRIFT_POLICY=withdraw deprecated the server because of it (accepting reactivates).
CREATE TABLE attestations (
    registration_id   uuid    PRIMARY KEY REFERENCES registrations (registration_id),
    latest            jsonb   CHECK (jsonb_typeof(latest) = 'object'),
    published         jsonb   CHECK (jsonb_typeof(published) = 'object'),
    baseline_revision integer CHECK (baseline_revision >= 1),
    baseline          jsonb   CHECK (jsonb_typeof(baseline) = 'object'),
    drifted           boolean NOT NULL DEFAULT false,
    drift_withdrawn   boolean NOT NULL DEFAULT false
);
-- The administrators' `drifted=true` list: few rows, found without reading the others.
CREATE INDEX idx_attestations_drifted ON attestations (registration_id) WHERE drifted;

-- What drifted between two surfaces ({tools, instructions, prompts, resources}): tools added,
-- removed and changed (with the fields that changed), by name.
CREATE FUNCTION surface_diff(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'added', coalesce((SELECT jsonb_agg(n.tool->>'name' ORDER BY n.tool->>'name')
                           FROM jsonb_array_elements(new->'tools') AS n (tool)
                           WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(old->'tools') AS o (tool)
                                             WHERE o.tool->>'name' = n.tool->>'name')), '[]'),
        'removed', coalesce((SELECT jsonb_agg(o.tool->>'name' ORDER BY o.tool->>'name')
                             FROM jsonb_array_elements(old->'tools') AS o (tool)
                             WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(new->'tools') AS n (tool)
                                               WHERE n.tool->>'name' = o.tool->>'name')), '[]'),
        'changed', coalesce((SELECT jsonb_object_agg(n.tool->>'name', (
                                 SELECT jsonb_agg(k.key ORDER BY k.key)
                                 FROM (SELECT jsonb_object_keys(n.tool) UNION SELECT jsonb_object_keys(o.tool))
                                      AS k (key)
                                 WHERE n.tool->k.key IS DISTINCT FROM o.tool->k.key))
                             FROM jsonb_array_elements(new->'tools') AS n (tool)
                             JOIN jsonb_array_elements(old->'tools') AS o (tool) ON o.tool->>'name' = n.tool->>'name'
                             WHERE n.tool <> o.tool), '{}'),
        'instructions_changed', old->'instructions' IS DISTINCT FROM new->'instructions',
        'prompts_changed', old->'prompts' IS DISTINCT FROM new->'prompts',
        'resources_changed', old->'resources' IS DISTINCT FROM new->'resources')
$$;

-- Under revisions, a create or an edit (a new revision) queues a probe of the new revision, and
-- publishing one (an approval, a rollback) makes the registration due now, so that the published
-- revision is probed and its baseline taken without waiting for the next round.
DROP TRIGGER registrations_queue_probe_on_edit ON registrations;
CREATE FUNCTION queue_probe_on_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    new_revision boolean := NEW.revision IS DISTINCT FROM OLD.revision;
BEGIN
    INSERT INTO probe_queue AS q (registration_id, due_at, queued)
    VALUES (NEW.registration_id, now(), new_revision)
    ON CONFLICT (registration_id) DO UPDATE SET due_at = now(), queued = q.queued OR new_revision;
    RETURN NULL;
END;
$$;
CREATE TRIGGER registrations_queue_probe_on_change AFTER UPDATE OF revision, published_revision
    ON registrations FOR EACH ROW
    WHEN (OLD.revision IS DISTINCT FROM NEW.revision OR OLD.published_revision IS DISTINCT FROM NEW.published_revision)
    EXECUTE FUNCTION queue_probe_on_change();
