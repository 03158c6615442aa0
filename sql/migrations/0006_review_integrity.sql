-- Review integrity: what the app's role may not rewrite, whatever its grants. Works on PostgreSQL 14
-- through 18. See sql/README.md ("Review integrity").
--
-- sql/app_grants.sql limits the role's UPDATE to the columns its statements change; the rules here
-- hold the rows themselves to their history, so that neither a later grant nor a statement the app
-- never sends can change what was decided, what was probed or who did it:
--   * a decided revision never changes, and a pending one only becomes decided or superseded;
--   * a stored probe never changes (it may be deleted: old probes are pruned);
--   * a baseline is a stored `ok` probe of its revision, and a drift is cleared only by a new
--     published revision or by the transaction that writes its `DriftAccepted` entry;
--   * every audit entry is written by the transaction that made the change it records, and names
--     that change's actor; only `Drifted` entries, the registry's own, have no user.
-- They bind every role that does not own the tables. The owner (the role that runs the migrations)
-- could drop any trigger anyway, and a migration that must rewrite history says so with its own
-- statements.
--
-- The checks are row triggers: they run inside the app's statements, so each request stays one
-- statement. Those that read rows the same statement writes (the probe a Drifted entry names, the
-- revision an entry is about) are AFTER triggers, which see every change of their statement.

-- Whether the rules bind the current role on table `rel`: it is not (a member of) its owner.
CREATE FUNCTION integrity_binds(rel oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = rel), 'USAGE')
$$;

-- Whether a row version was written by the current transaction (its xmin). The app runs no
-- subtransactions, whose rows would carry another id.
CREATE FUNCTION written_here(row_xmin xid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT row_xmin = pg_current_xact_id()::xid
$$;

CREATE FUNCTION refuse(message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Revisions: written once; a pending one is decided (Approved, Rejected, by someone, at a time) or
-- superseded, once; nothing else of it ever changes.
CREATE FUNCTION freeze_decided_revisions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    decision text[] := ARRAY['status', 'decided_by', 'decided_at', 'reason'];
BEGIN
    IF NOT integrity_binds(TG_RELID) THEN
        RETURN NEW;
    END IF;
    IF OLD.status <> 'Pending' THEN
        PERFORM refuse(format('revision %s of registration %s is %s: a decided revision never changes',
                              OLD.revision, OLD.registration_id, OLD.status));
    END IF;
    IF to_jsonb(NEW) - decision IS DISTINCT FROM to_jsonb(OLD) - decision THEN
        PERFORM refuse('a revision holds its fields as submitted: only its decision changes');
    END IF;
    IF NOT (NEW.status = 'Superseded' AND NEW.decided_by IS NULL AND NEW.decided_at IS NULL
            OR NEW.status IN ('Approved', 'Rejected') AND NEW.decided_by IS NOT NULL AND NEW.decided_at IS NOT NULL) THEN
        PERFORM refuse('a pending revision only becomes Approved or Rejected by someone, or Superseded');
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER registration_revisions_frozen BEFORE UPDATE ON registration_revisions
    FOR EACH ROW EXECUTE FUNCTION freeze_decided_revisions();

-- Probes: what a server answered, as stored. Deleting (pruning old probes) is not updating.
CREATE FUNCTION freeze_probes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF integrity_binds(TG_RELID) THEN
        PERFORM refuse('a stored probe never changes');
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER probes_frozen BEFORE UPDATE ON probes FOR EACH ROW EXECUTE FUNCTION freeze_probes();

-- Attestations: the baseline is a stored `ok` probe of the revision it is the baseline of (as
-- migration 0005's statements build it: drift.snapshot), that revision is the published one when
-- it changes, and a drift (or its withdrawal) is cleared only with the baseline's revision or by
-- the transaction that writes the DriftAccepted entry.
CREATE FUNCTION check_attestation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- The row made before a registration's first probe (ATTESTED) measures nothing yet.
    new_revision boolean := CASE WHEN TG_OP = 'INSERT' THEN NEW.baseline_revision IS NOT NULL
                                 ELSE NEW.baseline_revision IS DISTINCT FROM OLD.baseline_revision END;
BEGIN
    IF NOT integrity_binds(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF new_revision AND NEW.baseline_revision IS DISTINCT FROM
            (SELECT published_revision FROM registrations WHERE registration_id = NEW.registration_id) THEN
        PERFORM refuse('an attestation measures the published revision');
    END IF;
    IF NEW.baseline IS NOT NULL AND (new_revision OR NEW.baseline IS DISTINCT FROM OLD.baseline) AND NOT EXISTS (
        SELECT 1 FROM probes AS p
        WHERE p.probe_id = CASE WHEN NEW.baseline->>'probe_id' ~ '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$'
                                THEN (NEW.baseline->>'probe_id')::uuid END
          AND p.registration_id = NEW.registration_id AND p.revision = NEW.baseline_revision AND p.outcome = 'ok'
          AND jsonb_build_object('probe_id', p.probe_id, 'tools_hash', p.tools_hash, 'tools', p.tools,
                                 'instructions', p.instructions, 'prompts', p.prompts, 'resources', p.resources)
              = NEW.baseline) THEN
        PERFORM refuse('a baseline is the surface of a stored ok probe of its revision');
    END IF;
    IF TG_OP = 'UPDATE' AND NOT new_revision
       AND (OLD.drifted AND NOT NEW.drifted OR OLD.drift_withdrawn AND NOT NEW.drift_withdrawn)
       AND NOT EXISTS (SELECT 1 FROM audit_log AS l
                       WHERE l.registration_id = NEW.registration_id AND l.action = 'DriftAccepted'
                         AND written_here(l.xmin)) THEN
        PERFORM refuse('a drift is cleared only by accepting it (a DriftAccepted entry) or a new published revision');
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER attestations_checked AFTER INSERT OR UPDATE ON attestations
    FOR EACH ROW EXECUTE FUNCTION check_attestation();

-- The audit trail: only the registry's own entries (Drifted) have no user.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_check CHECK (user_id IS NOT NULL OR action = 'Drifted');

-- Each entry is written with the change it records, in its transaction, and names who made it:
--   Created, Updated:    the revision, written here, and its submitter;
--   Approved, Rejected:  the revision, decided here so, and who decided it;
--   Published:           an approved revision, the registration written here, by an administrator;
--   Deprecated, Reactivated, Deleted: the registration written here, by an administrator;
--   DriftAccepted:       the attestation written here, by an administrator other than the submitter;
--   Drifted:             no user, and the `ok` probe of that revision that found it, stored here.
CREATE FUNCTION check_audit_entry() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    revision_here boolean;
    revision_status text;
    revision_submitter uuid;
    revision_decider uuid;
    registration_here boolean;
    submitter uuid;
    by_admin boolean := coalesce((SELECT u.is_admin FROM users AS u WHERE u.user_id = NEW.user_id), false);
    consistent boolean;
BEGIN
    IF NOT integrity_binds(TG_RELID) THEN
        RETURN NULL;
    END IF;
    SELECT written_here(v.xmin), v.status, v.submitted_by, v.decided_by
    INTO revision_here, revision_status, revision_submitter, revision_decider
    FROM registration_revisions AS v WHERE v.registration_id = NEW.registration_id AND v.revision = NEW.revision;
    SELECT written_here(r.xmin), r.submitter_id INTO registration_here, submitter
    FROM registrations AS r WHERE r.registration_id = NEW.registration_id;
    consistent := CASE
        WHEN NEW.action IN ('Created', 'Updated') THEN revision_here AND revision_submitter = NEW.user_id
        WHEN NEW.action IN ('Approved', 'Rejected') THEN revision_here AND revision_status = NEW.action
                                                         AND revision_decider = NEW.user_id
        WHEN NEW.action = 'Published' THEN revision_status = 'Approved' AND registration_here AND by_admin
        WHEN NEW.action IN ('Deprecated', 'Reactivated', 'Deleted') THEN registration_here AND by_admin
        WHEN NEW.action = 'DriftAccepted' THEN by_admin AND submitter <> NEW.user_id
            AND EXISTS (SELECT 1 FROM attestations AS a
                        WHERE a.registration_id = NEW.registration_id AND written_here(a.xmin))
        WHEN NEW.action = 'Drifted' THEN NEW.user_id IS NULL AND EXISTS (
            SELECT 1 FROM probes AS p
            WHERE p.registration_id = NEW.registration_id AND p.revision = NEW.revision AND p.outcome = 'ok'
              AND p.probe_id::text = NEW.metadata->>'probe_id' AND written_here(p.xmin))
        ELSE false
    END;
    IF NOT coalesce(consistent, false) THEN
        PERFORM refuse(format('a %s entry must record a change this transaction made, by its actor', NEW.action));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER audit_log_checked AFTER INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION check_audit_entry();
