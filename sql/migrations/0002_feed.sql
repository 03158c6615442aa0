-- The MCP registry feed (GET /api/v0.1/servers...): what its listings need.
-- Works on PostgreSQL 14 through 18; pg_trgm was created by 0001.

-- The content a registration had when it last left the feed (deleted, or withdrawn by an
-- edit that put it back to Pending). Incremental sync announces such an entry as deleted under
-- the name and version mirrors know, without showing the unapproved edit.
ALTER TABLE registrations ADD COLUMN last_published jsonb;

CREATE FUNCTION keep_last_published() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'Approved' AND OLD.deleted_at IS NULL
       AND NOT (NEW.status = 'Approved' AND NEW.deleted_at IS NULL) THEN
        NEW.last_published := jsonb_build_object(
            'server_name', OLD.server_name,
            'endpoint_name', OLD.endpoint_name,
            'description', OLD.description,
            'version', OLD.version,
            'transport', OLD.transport,
            'endpoint_url', OLD.endpoint_url
        );
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER registrations_last_published BEFORE UPDATE ON registrations
    FOR EACH ROW EXECUTE FUNCTION keep_last_published();

-- The catalogue: live Approved rows in byte order of the name, keyset-paged on (name, id).
CREATE INDEX idx_registrations_feed_catalogue
    ON registrations (server_name COLLATE "C", registration_id)
    WHERE status = 'Approved' AND deleted_at IS NULL;
-- Incremental sync (updated_since): everything ever published, in order of change.
CREATE INDEX idx_registrations_feed_sync
    ON registrations (updated_at, registration_id)
    WHERE published_at IS NOT NULL;
-- search: case-insensitive substring of the name among live Approved rows.
CREATE INDEX idx_registrations_feed_search
    ON registrations USING gin (lower(server_name) gin_trgm_ops)
    WHERE status = 'Approved' AND deleted_at IS NULL;
