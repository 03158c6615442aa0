-- Users, registrations and their audit trail.
-- Works on PostgreSQL 14 through 18: gen_random_uuid() is built in since 13.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE users (
    user_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    entra_id     text        NOT NULL CHECK (char_length(entra_id) BETWEEN 1 AND 128),
    email        text        CHECK (char_length(email) <= 320),
    display_name text        NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 512),
    is_admin     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idx_users_entra_id ON users (entra_id);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE registrations (
    registration_id uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_url    text        NOT NULL CHECK (char_length(endpoint_url) BETWEEN 1 AND 2048),
    endpoint_name   text        NOT NULL CHECK (char_length(endpoint_name) BETWEEN 3 AND 200),
    description     text        CHECK (char_length(description) <= 2000),
    owner_contact   text        NOT NULL CHECK (char_length(owner_contact) BETWEEN 3 AND 254),
    available_tools jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(available_tools) = 'array'),
    status          text        NOT NULL DEFAULT 'Pending'
                                CHECK (status IN ('Pending', 'Approved', 'Rejected')),
    submitter_id    uuid        NOT NULL REFERENCES users (user_id),
    approver_id     uuid        REFERENCES users (user_id),
    approved_at     timestamptz,
    status_reason   text        CHECK (char_length(status_reason) <= 1000),
    server_name     text        NOT NULL CHECK (char_length(server_name) BETWEEN 3 AND 200
                                AND server_name ~ '^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$'),
    transport       text        NOT NULL DEFAULT 'streamable-http'
                                CHECK (transport IN ('streamable-http', 'sse')),
    version         text        NOT NULL DEFAULT '1.0.0'
                                CHECK (char_length(version) BETWEEN 1 AND 255 AND version <> 'latest'),
    -- Set when the registration was first approved, so the feed can tell mirrors to drop an
    -- entry that has since been withdrawn, rejected or deleted.
    published_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
-- Uniqueness holds among live rows only: deleting frees the URL and the name.
CREATE UNIQUE INDEX idx_registrations_endpoint_url ON registrations (endpoint_url) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_registrations_server_name ON registrations (server_name) WHERE deleted_at IS NULL;
-- The list orders: newest first, ties by id, optionally within one status or one submitter.
CREATE INDEX idx_registrations_created_at
    ON registrations (created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX idx_registrations_status
    ON registrations (status, created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX idx_registrations_submitter_id
    ON registrations (submitter_id, created_at DESC, registration_id DESC) WHERE deleted_at IS NULL;
-- Case-insensitive substring search over the four searchable fields. The unit separator
-- (U+001F) cannot occur in any of them, so a match never spans two fields.
CREATE INDEX idx_registrations_search ON registrations USING gin (
    (lower(endpoint_name || chr(31) || owner_contact || chr(31) || endpoint_url || chr(31)
           || coalesce(description, ''))) gin_trgm_ops
) WHERE deleted_at IS NULL;
CREATE TRIGGER registrations_updated_at BEFORE UPDATE ON registrations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE audit_log (
    log_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_id uuid        NOT NULL REFERENCES registrations (registration_id),
    user_id         uuid        NOT NULL REFERENCES users (user_id),
    action          text        NOT NULL
                                CHECK (action IN ('Created', 'Updated', 'Approved', 'Rejected', 'Deleted')),
    previous_status text        CHECK (previous_status IN ('Pending', 'Approved', 'Rejected')),
    new_status      text        CHECK (new_status IN ('Pending', 'Approved', 'Rejected')),
    metadata        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    "timestamp"     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_audit_log_registration ON audit_log (registration_id, log_id);
