-- The event outlet: audit entries are the events the rest of the system consumes, each consumer
-- through its own cursor, and probe queueing becomes the first consumer instead of two triggers.
-- Works on PostgreSQL 14 through 18. See sql/README.md ("The event outlet (0008)") and
-- shared/events.py, which explains why a cursor over `xact` never skips an entry.

-- The id of the transaction that wrote each entry. Entries of one transaction share it; an entry of
-- a transaction that began early and commits late carries a low id, which is why consumers read by
-- `xact` below their snapshot's xmin rather than by `log_id`.
-- Entries written before this migration get '0', below every transaction id (normal ids start at
-- 3): they come before everything, in log_id order, for a consumer that reads from the beginning.
-- A constant default is stored once in the catalogue, so this does not rewrite the table; the
-- default every new entry takes is set next.
ALTER TABLE audit_log ADD COLUMN xact xid8 NOT NULL DEFAULT '0';
ALTER TABLE audit_log ALTER COLUMN xact SET DEFAULT pg_current_xact_id();
-- A consumer's batch: the entries after its cursor, in (xact, log_id) order.
CREATE INDEX idx_audit_log_xact ON audit_log (xact, log_id);

-- An entry carries its own transaction's id, whatever a statement says: one that named another
-- would be skipped by every consumer (an id below their cursors) or hold them all back. Like the
-- checks of 0006 it binds every role that does not own the table.
CREATE FUNCTION check_audit_xact() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.xact <> pg_current_xact_id() AND integrity_binds(TG_RELID) THEN
        PERFORM refuse('an audit entry carries the id of the transaction that writes it');
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_xact BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION check_audit_xact();

-- One row per consumer: it has been handed every entry at or before (horizon, log_id) in
-- (xact, log_id) order, and none after. A drain locks the row (FOR UPDATE SKIP LOCKED: a consumer
-- is drained by one worker at a time), reads what follows, and moves it in the same transaction.
CREATE TABLE event_consumers (
    name    text   PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    horizon xid8   NOT NULL,
    log_id  bigint NOT NULL DEFAULT 0 CHECK (log_id >= 0)
);

-- Probe queueing reads from here on: what the triggers below queued before is queued. Its start is
-- the oldest transaction still running, so an entry of a transaction that is writing now is
-- consumed (the trigger may have queued it too: the consumer's upsert makes that harmless).
INSERT INTO event_consumers (name, horizon) VALUES ('probe_queueing', pg_snapshot_xmin(pg_current_snapshot()));

-- The consumer (shared/jobs/probe_queueing.py) queues what these did, from the audit entries.
DROP TRIGGER registrations_queue_probe_on_create ON registrations;
DROP TRIGGER registrations_queue_probe_on_change ON registrations;
DROP FUNCTION queue_probe();
DROP FUNCTION queue_probe_on_change();
