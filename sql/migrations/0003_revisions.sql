-- Revisions: every create and edit is a numbered, immutable revision; a decision applies to one
-- revision; the feed and everyone but the submitter and administrators read the published one.
-- Works on PostgreSQL 14 through 18. See sql/README.md ("Revisions") for the design.
--
-- The data carried over is written before the indexes and foreign keys that cover it are made:
-- one sort per index and one join per key instead of maintaining them row by row.

SET LOCAL maintenance_work_mem = '256MB';

-- The revisions themselves, as submitted. Only their status and decision change afterwards.
CREATE TABLE registration_revisions (
    registration_id uuid        NOT NULL,
    revision        integer     NOT NULL CHECK (revision >= 1),
    endpoint_url    text        NOT NULL CHECK (char_length(endpoint_url) BETWEEN 1 AND 2048),
    endpoint_name   text        NOT NULL CHECK (char_length(endpoint_name) BETWEEN 3 AND 200),
    description     text        CHECK (char_length(description) <= 2000),
    owner_contact   text        NOT NULL CHECK (char_length(owner_contact) BETWEEN 3 AND 254),
    available_tools jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(available_tools) = 'array'),
    server_name     text        NOT NULL CHECK (char_length(server_name) BETWEEN 3 AND 200
                                AND server_name ~ '^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$'),
    transport       text        NOT NULL CHECK (transport IN ('streamable-http', 'sse')),
    version         text        NOT NULL CHECK (char_length(version) BETWEEN 1 AND 255 AND version <> 'latest'),
    -- Superseded: a pending revision replaced by a newer edit before anyone decided it.
    status          text        NOT NULL DEFAULT 'Pending'
                                CHECK (status IN ('Pending', 'Approved', 'Rejected', 'Superseded')),
    submitted_by    uuid        NOT NULL,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    decided_by      uuid,
    decided_at      timestamptz,
    reason          text        CHECK (char_length(reason) <= 1000)
);

-- The registration row keeps the latest revision in its existing columns (so reads, lists and
-- their indexes for submitters and administrators stay as they were) and a copy of the
-- published revision, which everyone else and the feed read.
ALTER TABLE registrations
    ADD COLUMN revision                  integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    ADD COLUMN published_revision        integer,
    ADD COLUMN published_endpoint_url    text,
    ADD COLUMN published_endpoint_name   text,
    ADD COLUMN published_description     text,
    ADD COLUMN published_owner_contact   text,
    ADD COLUMN published_available_tools jsonb,
    ADD COLUMN published_server_name     text,
    ADD COLUMN published_transport       text,
    ADD COLUMN published_version         text,
    ADD COLUMN published_approver_id     uuid,
    ADD COLUMN published_approved_at     timestamptz,
    ADD COLUMN published_status_reason   text,
    -- When what the public sees last changed (published, deprecated, reactivated, deleted):
    -- the public `updated_at`, the feed's `updatedAt` and the order of its incremental sync.
    ADD COLUMN published_updated_at      timestamptz,
    ADD COLUMN publication               text CHECK (publication IN ('active', 'deprecated')),
    ADD COLUMN publication_message       text CHECK (char_length(publication_message) <= 500),
    ADD CONSTRAINT registrations_published_check CHECK (
        (published_revision IS NULL) = (publication IS NULL)
        AND (published_revision IS NULL) = (published_server_name IS NULL)
        AND (published_revision IS NULL OR published_revision <= revision)
    );

-- Status changes no longer take a registration out of the feed (the published revision stays
-- live while an edit waits), so the snapshot trigger of 0002 has nothing left to do. Its column
-- stays: it holds what rows withdrawn before this migration last showed.
DROP TRIGGER registrations_last_published ON registrations;
DROP FUNCTION keep_last_published();

-- The indexes the backfill would otherwise update row by row: those of 0001 are made again below,
-- the unique ones give way to the claims, the feed's move to the published columns.
DROP INDEX idx_registrations_endpoint_url;
DROP INDEX idx_registrations_server_name;
DROP INDEX idx_registrations_created_at;
DROP INDEX idx_registrations_status;
DROP INDEX idx_registrations_submitter_id;
DROP INDEX idx_registrations_search;
DROP INDEX idx_registrations_feed_catalogue;
DROP INDEX idx_registrations_feed_sync;
DROP INDEX idx_registrations_feed_search;

-- Carry the data over without touching updated_at: each registration becomes revision 1 with its
-- current status; approved ones are published and active; rows that left the feed before this
-- migration keep their place in the incremental sync.
ALTER TABLE registrations DISABLE TRIGGER registrations_updated_at;
INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name, description,
                                    owner_contact, available_tools, server_name, transport, version, status,
                                    submitted_by, submitted_at, decided_by, decided_at, reason)
SELECT registration_id, 1, endpoint_url, endpoint_name, description, owner_contact, available_tools, server_name,
       transport, version, status, submitter_id, created_at, approver_id, approved_at, status_reason
FROM registrations;
UPDATE registrations AS r SET
    published_revision        = CASE WHEN r.status = 'Approved' THEN 1 END,
    published_endpoint_url    = CASE WHEN r.status = 'Approved' THEN r.endpoint_url END,
    published_endpoint_name   = CASE WHEN r.status = 'Approved' THEN r.endpoint_name END,
    published_description     = CASE WHEN r.status = 'Approved' THEN r.description END,
    published_owner_contact   = CASE WHEN r.status = 'Approved' THEN r.owner_contact END,
    published_available_tools = CASE WHEN r.status = 'Approved' THEN r.available_tools END,
    published_server_name     = CASE WHEN r.status = 'Approved' THEN r.server_name END,
    published_transport       = CASE WHEN r.status = 'Approved' THEN r.transport END,
    published_version         = CASE WHEN r.status = 'Approved' THEN r.version END,
    published_approver_id     = CASE WHEN r.status = 'Approved' THEN r.approver_id END,
    published_approved_at     = CASE WHEN r.status = 'Approved' THEN r.approved_at END,
    published_status_reason   = CASE WHEN r.status = 'Approved' THEN r.status_reason END,
    published_updated_at      = r.updated_at,
    publication               = CASE WHEN r.status = 'Approved' THEN 'active' END
WHERE r.status = 'Approved' OR r.published_at IS NOT NULL;
ALTER TABLE registrations ENABLE TRIGGER registrations_updated_at;

ALTER TABLE registration_revisions
    ADD PRIMARY KEY (registration_id, revision),
    ADD FOREIGN KEY (registration_id) REFERENCES registrations (registration_id),
    ADD FOREIGN KEY (submitted_by) REFERENCES users (user_id),
    ADD FOREIGN KEY (decided_by) REFERENCES users (user_id);
ALTER TABLE registrations
    ADD CONSTRAINT registrations_published_approver_id_fkey
        FOREIGN KEY (published_approver_id) REFERENCES users (user_id),
    ADD CONSTRAINT registrations_published_revision_fkey
        FOREIGN KEY (registration_id, published_revision) REFERENCES registration_revisions (registration_id, revision);

-- The list orders and search of 0001, as they were.
CREATE INDEX idx_registrations_created_at
    ON registrations (created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX idx_registrations_status
    ON registrations (status, created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX idx_registrations_submitter_id
    ON registrations (submitter_id, created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX idx_registrations_search ON registrations USING gin (
    (lower(endpoint_name || chr(31) || owner_contact || chr(31) || endpoint_url || chr(31)
           || coalesce(description, ''))) gin_trgm_ops
) WHERE deleted_at IS NULL;

-- A pending revision replaced by a newer one before anyone decided it is Superseded. A trigger,
-- because its statement sees the revisions committed while the edit waited for the registration
-- row, which the edit's own statement (its snapshot taken before) cannot.
CREATE FUNCTION supersede_pending_revisions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registration_revisions SET status = 'Superseded'
    WHERE registration_id = NEW.registration_id AND revision < NEW.revision AND status = 'Pending';
    RETURN NULL;
END;
$$;
CREATE TRIGGER registration_revisions_supersede
    AFTER INSERT ON registration_revisions
    FOR EACH ROW EXECUTE FUNCTION supersede_pending_revisions();

-- The audit trail names the revision of every entry; entries the registry makes on its own
-- (Drifted) have no user.
ALTER TABLE audit_log ADD COLUMN revision integer NOT NULL DEFAULT 1 CHECK (revision >= 1);
ALTER TABLE audit_log ALTER COLUMN revision DROP DEFAULT;
ALTER TABLE audit_log ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN (
    'Created', 'Updated', 'Approved', 'Rejected', 'Deleted', 'Deprecated', 'Reactivated', 'Published',
    'Drifted', 'DriftAccepted'
));

-- Uniqueness of endpoint_url and server_name across the latest and the published revision of
-- live registrations. A claim row per (field, value) ever held; registration_id is its holder,
-- NULL once released, so nothing is ever deleted. The trigger below keeps the claims in step
-- with every write to registrations, inside the statement that writes it: of two statements
-- claiming one value, the second waits for the first and fails if it committed.
CREATE TABLE registration_claims (
    field           text NOT NULL CHECK (field IN ('endpoint_url', 'server_name')),
    value           text NOT NULL,
    registration_id uuid
);

CREATE FUNCTION registration_claims_of(r registrations) RETURNS TABLE (field text, value text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT c.field, c.value
    FROM (VALUES ('endpoint_url', r.endpoint_url), ('endpoint_url', r.published_endpoint_url),
                 ('server_name', r.server_name), ('server_name', r.published_server_name)) AS c (field, value)
    WHERE c.value IS NOT NULL AND r.deleted_at IS NULL
$$;

CREATE FUNCTION keep_registration_claims() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted record;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE registration_claims AS c SET registration_id = NULL
        FROM (SELECT * FROM registration_claims_of(OLD) EXCEPT SELECT * FROM registration_claims_of(NEW)) AS gone
        WHERE c.field = gone.field AND c.value = gone.value AND c.registration_id = OLD.registration_id;
    END IF;
    FOR wanted IN
        SELECT * FROM registration_claims_of(NEW)
        EXCEPT SELECT * FROM registration_claims_of(OLD)
    LOOP
        INSERT INTO registration_claims AS c (field, value, registration_id)
        VALUES (wanted.field, wanted.value, NEW.registration_id)
        ON CONFLICT (field, value) DO UPDATE SET registration_id = excluded.registration_id
        WHERE c.registration_id IS NULL OR c.registration_id = excluded.registration_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a live registration already holds this %', wanted.field
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'registration_claims_' || wanted.field;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

INSERT INTO registration_claims (field, value, registration_id)
SELECT 'endpoint_url', endpoint_url, registration_id FROM registrations WHERE deleted_at IS NULL
UNION ALL
SELECT 'server_name', server_name, registration_id FROM registrations WHERE deleted_at IS NULL;
ALTER TABLE registration_claims
    ADD PRIMARY KEY (field, value),
    ADD FOREIGN KEY (registration_id) REFERENCES registrations (registration_id);

CREATE TRIGGER registrations_claims
    AFTER INSERT OR UPDATE OF endpoint_url, server_name, published_endpoint_url, published_server_name, deleted_at
    ON registrations FOR EACH ROW EXECUTE FUNCTION keep_registration_claims();

-- How many live registrations of each submitter await review, kept by a trigger, so that a
-- submission can be admitted or refused (MAX_PENDING_PER_USER) exactly: the statement locks its
-- submitter's row and reads the count committed by the one before it.
CREATE TABLE review_queue (
    submitter_id uuid    PRIMARY KEY REFERENCES users (user_id),
    pending      integer NOT NULL DEFAULT 0 CHECK (pending >= 0)
);

CREATE FUNCTION count_pending_reviews() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta integer := (NEW.status = 'Pending' AND NEW.deleted_at IS NULL)::integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        delta := delta - (OLD.status = 'Pending' AND OLD.deleted_at IS NULL)::integer;
    END IF;
    IF delta <> 0 THEN
        INSERT INTO review_queue AS q (submitter_id, pending) VALUES (NEW.submitter_id, greatest(delta, 0))
        ON CONFLICT (submitter_id) DO UPDATE SET pending = q.pending + delta;
    END IF;
    RETURN NULL;
END;
$$;

INSERT INTO review_queue (submitter_id, pending)
SELECT submitter_id, count(*) FILTER (WHERE status = 'Pending' AND deleted_at IS NULL)
FROM registrations GROUP BY submitter_id;

CREATE TRIGGER registrations_review_queue
    AFTER INSERT OR UPDATE OF status, deleted_at ON registrations
    FOR EACH ROW EXECUTE FUNCTION count_pending_reviews();

-- What the public reads: the published revision of live registrations.
CREATE INDEX idx_registrations_published_search ON registrations USING gin (
    (lower(published_endpoint_name || chr(31) || published_owner_contact || chr(31) || published_endpoint_url
           || chr(31) || coalesce(published_description, ''))) gin_trgm_ops
) WHERE deleted_at IS NULL AND published_revision IS NOT NULL;

-- The feed, on the published columns: the catalogue in byte order of the name (also the lookup
-- by name), its name search, and the incremental sync in order of public change.
CREATE INDEX idx_registrations_feed_catalogue
    ON registrations (published_server_name COLLATE "C", registration_id)
    WHERE published_revision IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX idx_registrations_feed_sync
    ON registrations (published_updated_at, registration_id)
    WHERE published_at IS NOT NULL;
CREATE INDEX idx_registrations_feed_search
    ON registrations USING gin (lower(published_server_name) gin_trgm_ops)
    WHERE published_revision IS NOT NULL AND deleted_at IS NULL;
