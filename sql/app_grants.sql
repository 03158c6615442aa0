-- What the app's database role may do, and nothing more. Run it as the owner of the tables (the
-- role that runs the migrations) in the application database, after every migration run, with
-- the setting registry.app_role naming the app's role, in the same session:
--
--     SET registry.app_role = '<role>';
--     \i sql/app_grants.sql
--
-- infra/scripts/grant-db-access.sh does exactly that in Azure, and the test suite applies this
-- file the same way to the role its dev hosts sign in as, so every API test runs with these
-- rights and no others.
--
-- It starts from nothing, so a second run changes nothing and a run after an older version of
-- this file takes back what that version gave. New tables need no edit here: every table in
-- the schema gets the common rights, and only the exceptions are named. One DO block is one
-- transaction: the app never sees the moment between the REVOKE and the GRANT.
DO $grants$
DECLARE
    app text := current_setting('registry.app_role');
    target text;
    columns text;
BEGIN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', app);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', app);
    -- Defaults an older version of this script set for tables its runner creates.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM %I', app);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM %I', app);

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app);
    -- Read, add and change rows. No DELETE anywhere: deletion is soft (deleted_at), and a
    -- registration's audit trail must outlive it. No TRUNCATE, REFERENCES or TRIGGER either.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %I', app);
    -- nextval for serial columns; identity columns need nothing more than INSERT.
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', app);

    -- Where history lives, UPDATE reaches exactly the columns the app's statements (and the
    -- triggers they fire, which run as the app) change; the rest of such a row is written once.
    -- Migration 0006's triggers hold those columns to their history besides. A table named here
    -- without columns is append-only: the audit trail, and the probes (what a server answered).
    -- Scheduling state (probe_queue) and new tables keep the common UPDATE. A drain of the event
    -- outlet makes its consumer's row (INSERT), locks it (FOR UPDATE needs an UPDATE right) and moves it.
    FOR target, columns IN VALUES
        ('users', 'email, display_name, is_admin'),  -- is_admin follows the token on every sign-in
        ('registrations', 'endpoint_url, endpoint_name, description, owner_contact, available_tools, server_name, '
            'transport, version, revision, status, approver_id, approved_at, status_reason, published_revision, '
            'published_endpoint_url, published_endpoint_name, published_description, published_owner_contact, '
            'published_available_tools, published_server_name, published_transport, published_version, '
            'published_approver_id, published_approved_at, published_status_reason, published_updated_at, '
            'published_at, publication, publication_message, deleted_at'),
        ('registration_revisions', 'status, decided_by, decided_at, reason'),
        ('registration_claims', 'registration_id'),
        ('review_queue', 'pending'),
        ('attestations', 'latest, published, baseline_revision, baseline, drifted, drift_withdrawn'),
        ('event_consumers', 'horizon, log_id'),  -- a consumer's cursor moves; its name never changes
        ('probes', ''),
        ('audit_log', ''),
        ('trailing_slash_review', ''),  -- what migration 0009 found; only the audit reads it
        -- A subscription's channel, secret and author are written once; deleting is soft.
        ('subscriptions', 'url, events, description, updated_at, deleted_at'),
        -- A delivery's event, webhook-id and body are written once: every attempt sends the same.
        ('deliveries', 'status, attempt, due_at, leased_until, status_code, error, attempted_at'),
        -- The demand flush adds to a day's count and moves its last lookup, nothing else.
        ('feed_demand', 'count, last_seen')
    LOOP
        EXECUTE format('REVOKE UPDATE ON %I FROM %I', target, app);
        IF columns <> '' THEN
            -- The list is written here, never taken from a request: format's %s is safe for it.
            EXECUTE format('GRANT UPDATE (%s) ON %I TO %I', columns, target, app);
        END IF;
    END LOOP;
    -- The one DELETE: the timer's round prunes old probes (a probe every round would otherwise
    -- grow the table without bound), keeping each registration's newest PROBE_HISTORY, its
    -- baseline's, the latest ok probe of its published revision and those its audit trail names.
    EXECUTE format('GRANT DELETE ON probes TO %I', app);
    -- And the demand flush drops days older than the longest window GET /api/demand reads, so
    -- counts of anonymous lookups cannot pile up without end.
    EXECUTE format('GRANT DELETE ON feed_demand TO %I', app);
    -- The migration ledger belongs to the migrator alone.
    EXECUTE format('REVOKE ALL ON schema_migrations FROM %I', app);
END
$grants$;
