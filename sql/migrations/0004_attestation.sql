-- Attestation: what each probe of a registration found, and the due work of the probes.
-- Works on PostgreSQL 14 through 18. Numbered after the revisions migration (0003), which it
-- does not depend on: a probe names the revision it checked by number.

CREATE TABLE probes (
    probe_id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    registration_id  uuid        NOT NULL REFERENCES registrations (registration_id),
    revision         integer     NOT NULL CHECK (revision >= 1),
    -- requested: POST .../probe; queued: after a create or an edit; scheduled: the timer's round.
    trigger          text        NOT NULL CHECK (trigger IN ('requested', 'queued', 'scheduled')),
    requested_by     uuid        REFERENCES users (user_id),
    checked_at       timestamptz NOT NULL,
    outcome          text        NOT NULL CHECK (outcome IN ('ok', 'auth_required', 'wrong_transport', 'not_mcp',
                                                             'unreachable', 'timeout', 'refused')),
    duration_ms      integer     NOT NULL CHECK (duration_ms >= 0),
    protocol_version text        CHECK (char_length(protocol_version) <= 64),
    server_info      jsonb       CHECK (jsonb_typeof(server_info) = 'object'),
    instructions     text,
    tools            jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tools) = 'array'),
    prompts          jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(prompts) = 'array'),
    resources        jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(resources) = 'array'),
    tools_hash       text        CHECK (tools_hash ~ '^[0-9a-f]{64}$'),
    findings         jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(findings) = 'array'),
    error            text        CHECK (char_length(error) <= 2000),
    auth             jsonb       CHECK (jsonb_typeof(auth) = 'object')
);
-- A registration's probes newest first.
CREATE INDEX idx_probes_registration ON probes (registration_id, checked_at DESC, probe_id DESC);

-- One row per registration: when it is next due (NULL: not until an edit or an approval), whether
-- an edit queued it, the lease of the worker that claimed it, and when a probe was last asked for
-- through the API (reserved before that probe runs, so two racing requests cannot both pass the
-- one-a-minute limit). Workers claim with FOR UPDATE SKIP LOCKED, so many instances never probe
-- one endpoint twice in one round.
CREATE TABLE probe_queue (
    registration_id uuid        PRIMARY KEY REFERENCES registrations (registration_id),
    due_at          timestamptz,
    queued          boolean     NOT NULL DEFAULT false,
    claimed_until   timestamptz,
    last_checked_at timestamptz,
    requested_at    timestamptz
);
CREATE INDEX idx_probe_queue_due ON probe_queue (due_at) WHERE due_at IS NOT NULL;

-- A create, an edit of what is probed, or an approval makes the registration due now. A
-- trigger rather than a clause in each registration statement: those stay one statement, and
-- nothing here is outbound (the probe runs later, outside any transaction).
CREATE FUNCTION queue_probe() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO probe_queue (registration_id, due_at, queued)
    VALUES (NEW.registration_id, now(), true)
    ON CONFLICT (registration_id) DO UPDATE SET due_at = now(), queued = true;
    RETURN NULL;
END;
$$;
CREATE TRIGGER registrations_queue_probe_on_create AFTER INSERT ON registrations
    FOR EACH ROW EXECUTE FUNCTION queue_probe();
CREATE TRIGGER registrations_queue_probe_on_edit AFTER UPDATE OF endpoint_url, transport, available_tools, status
    ON registrations FOR EACH ROW
    WHEN (OLD.endpoint_url IS DISTINCT FROM NEW.endpoint_url OR OLD.transport IS DISTINCT FROM NEW.transport
          OR OLD.available_tools IS DISTINCT FROM NEW.available_tools
          OR (NEW.status = 'Approved' AND OLD.status IS DISTINCT FROM 'Approved'))
    EXECUTE FUNCTION queue_probe();
