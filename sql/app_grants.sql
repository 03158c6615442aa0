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

    -- The audit trail is append-only: an entry, once written, is never changed.
    EXECUTE format('REVOKE UPDATE ON audit_log FROM %I', app);
    -- The migration ledger belongs to the migrator alone.
    EXECUTE format('REVOKE ALL ON schema_migrations FROM %I', app);
END
$grants$;
