"""The app's database role (sql/app_grants.sql): exactly the rights the API needs.

Every dev host of the suite already signs in as this role (tests.support.APP_ROLE, granted by
`migrated_database` with the file infra/scripts/grant-db-access.sh applies), so the API tests
prove the rights are enough; these prove they are no more.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.config import DatabaseSettings
from tests.support import (
    APP_PASSWORD,
    APP_ROLE,
    PROJECT_ROOT,
    PostgresCluster,
    Sql,
    grant_app_role,
    run,
    throwaway_server,
    with_user,
)
from tools.migrate import migrate
from tools.pgserver import binaries

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COMMON = {"SELECT", "INSERT", "UPDATE"}
# The named exceptions; every other table, including those later migrations add, gets COMMON.
EXCEPTIONS = {"audit_log": {"SELECT", "INSERT"}, "schema_migrations": set(), "probes": {"SELECT", "INSERT", "DELETE"},
              # UPDATE of two columns only (COLUMN_UPDATES); DELETE for the pruning of old days.
              "feed_demand": {"SELECT", "INSERT", "DELETE"},
              **{table: {"SELECT", "INSERT"} for table in (
                  "users", "registrations", "registration_revisions", "registration_claims", "review_queue",
                  "attestations", "event_consumers", "subscriptions", "deliveries", "trailing_slash_review")}}
# Where history lives, UPDATE reaches only the columns the app's statements (and their triggers) change.
COLUMN_UPDATES = {
    "users": {"email", "display_name", "is_admin"},
    "registrations": {
        "endpoint_url", "endpoint_name", "description", "owner_contact", "available_tools", "server_name", "transport",
        "version", "revision", "status", "approver_id", "approved_at", "status_reason", "published_revision",
        "published_endpoint_url", "published_endpoint_name", "published_description", "published_owner_contact",
        "published_available_tools", "published_server_name", "published_transport", "published_version",
        "published_approver_id", "published_approved_at", "published_status_reason", "published_updated_at",
        "published_at", "publication", "publication_message", "deleted_at"},
    "registration_revisions": {"status", "decided_by", "decided_at", "reason"},
    "registration_claims": {"registration_id"},
    "review_queue": {"pending"},
    "attestations": {"latest", "published", "baseline_revision", "baseline", "drifted", "drift_withdrawn"},
    "event_consumers": {"horizon", "log_id"},
    "probes": set(),
    "audit_log": set(),
    "trailing_slash_review": set(),
    "subscriptions": {"url", "events", "description", "updated_at", "deleted_at"},
    "deliveries": {"status", "attempt", "due_at", "leased_until", "status_code", "error", "attempted_at"},
    "feed_demand": {"count", "last_seen"},
}


@pytest.fixture(scope="module")
def owner_url(postgres: PostgresCluster) -> str:
    return postgres.migrated_database("registry_grants")


@pytest.fixture
def as_app(owner_url: str) -> Sql:
    return Sql(with_user(owner_url, APP_ROLE, APP_PASSWORD))


def tables(sql: Sql) -> list[str]:
    rows = sql.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return [row["tablename"] for row in rows]


def granted(sql: Sql, role: str = APP_ROLE) -> dict[str, set[str]]:
    return {
        table: {
            privilege for privilege in PRIVILEGES
            if sql.fetchval("SELECT has_table_privilege($1, $2, $3)", role, f"public.{table}", privilege)
        }
        for table in tables(sql)
    }


def expected(sql: Sql) -> dict[str, set[str]]:
    return {table: EXCEPTIONS.get(table, COMMON) for table in tables(sql)}


def updatable_columns(sql: Sql, table: str, role: str = APP_ROLE) -> set[str]:
    rows = sql.fetch("SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                     "AND NOT attisdropped AND has_column_privilege($2, attrelid, attnum, 'UPDATE')",
                     f"public.{table}", role)
    return {row["attname"] for row in rows}


def test_the_role_has_exactly_the_common_rights_and_the_named_exceptions(owner_url: str) -> None:
    sql = Sql(owner_url)
    assert {"users", "registrations", "audit_log", "schema_migrations"} <= set(tables(sql))
    assert granted(sql) == expected(sql)
    assert {table: updatable_columns(sql, table) for table in COLUMN_UPDATES} == COLUMN_UPDATES
    assert sql.fetchval("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1",
                        APP_ROLE) is False


def test_a_table_a_later_migration_adds_is_covered_without_editing_the_grants(postgres: PostgresCluster) -> None:
    url = postgres.migrated_database("registry_grants_new")
    sql = Sql(url)
    sql.execute("CREATE TABLE probe_results (probe_id bigserial PRIMARY KEY, outcome text NOT NULL)")
    run(grant_app_role(url, APP_ROLE))
    assert granted(sql)["probe_results"] == COMMON
    assert sql.fetchval("SELECT has_sequence_privilege($1, 'probe_results_probe_id_seq', 'USAGE')", APP_ROLE)

    inserted = Sql(with_user(url, APP_ROLE, APP_PASSWORD)).fetchval(
        "INSERT INTO probe_results (outcome) VALUES ('ok') RETURNING probe_id")
    assert inserted == 1


def test_a_second_run_changes_nothing_and_takes_back_what_an_older_script_gave(owner_url: str) -> None:
    sql = Sql(owner_url)
    # What the previous grant script gave: everything, DELETE included, on every table.
    sql.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{APP_ROLE}"')
    sql.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{APP_ROLE}"')
    run(grant_app_role(owner_url, APP_ROLE))
    run(grant_app_role(owner_url, APP_ROLE))
    assert granted(sql) == expected(sql)
    defaults = sql.fetchval("SELECT count(*) FROM pg_default_acl WHERE defaclacl::text LIKE $1", f"%{APP_ROLE}=%")
    assert defaults == 0


@pytest.mark.parametrize(("statement", "table"), [
    ("UPDATE audit_log SET action = 'Deleted'", "audit_log"),
    ("DELETE FROM audit_log", "audit_log"),
    ("TRUNCATE audit_log", "audit_log"),
    ("SELECT * FROM schema_migrations", "schema_migrations"),
    ("INSERT INTO schema_migrations (version, checksum) VALUES ('9999_x', 'x')", "schema_migrations"),
    ("DELETE FROM schema_migrations", "schema_migrations"),
    ("DELETE FROM registrations", "registrations"),
    ("DELETE FROM users", "users"),
    ("CREATE TABLE mine (id int)", None),
])
def test_the_role_is_refused(as_app: Sql, statement: str, table: str | None) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        as_app.execute(statement)
    if table is not None:
        assert str(refused.value) == f"permission denied for table {table}"


def test_the_role_may_delete_from_no_table_but_probes_and_demand(owner_url: str, as_app: Sql) -> None:
    for table in tables(Sql(owner_url)):
        # The round prunes old probes (sql/README.md); the demand flush, old days.
        if table in ("probes", "feed_demand"):
            as_app.execute(f'DELETE FROM "{table}" WHERE false')
            continue
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            as_app.execute(f'DELETE FROM "{table}" WHERE false')


def _person(sql: Sql, name: str, *, admin: bool = False) -> uuid.UUID:
    user_id = uuid.uuid4()
    sql.execute("INSERT INTO users (user_id, entra_id, display_name, is_admin) VALUES ($1, $2, $3, $4)", user_id,
                str(uuid.uuid4()), name, admin)
    return user_id


def _registration(sql: Sql, submitter: uuid.UUID) -> uuid.UUID:
    registration_id, tag = uuid.uuid4(), uuid.uuid4().hex[:10]
    sql.execute("""INSERT INTO registrations (registration_id, endpoint_name, endpoint_url, owner_contact, submitter_id,
                   server_name) VALUES ($1, 'Grants', $2, 'ops@contoso.com', $3, $4)""",
                registration_id, f"https://mcp-{tag}.contoso.com/grants", submitter, f"com.contoso/grants-{tag}")
    return registration_id


_ENTRY = ("INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata) "
          "VALUES ($1, $2, $3, 'Pending', 'Approved', $4, $5)")


def test_the_role_appends_to_and_reads_the_audit_trail(owner_url: str, as_app: Sql) -> None:
    sql = Sql(owner_url)
    user_id = _person(sql, "Grace")
    registration_id = _registration(sql, user_id)
    # As the app writes it: the entry in the statement that writes the revision it records.
    as_app.execute("""WITH revision AS (
                          INSERT INTO registration_revisions (registration_id, revision, endpoint_url,
                              endpoint_name, owner_contact, server_name, transport, version, submitted_by)
                          SELECT registration_id, 1, endpoint_url, endpoint_name, owner_contact, server_name, transport,
                                 version, submitter_id FROM registrations WHERE registration_id = $1
                          RETURNING registration_id, submitted_by)
                      INSERT INTO audit_log (registration_id, user_id, action, revision)
                      SELECT registration_id, submitted_by, 'Created', 1 FROM revision""", registration_id)
    assert as_app.fetchval("SELECT action FROM audit_log WHERE registration_id = $1", registration_id) == "Created"


@pytest.fixture(scope="module")
def history(owner_url: str) -> dict[str, uuid.UUID]:
    """Written as the owner: an approved, published revision 1 (another administrator decided it), a pending
    revision 2, revision 1's `ok` probe as the baseline, and a drift of it flagged."""
    sql = Sql(owner_url)
    submitter, approver = _person(sql, "Submitter", admin=True), _person(sql, "Approver", admin=True)
    registration_id = _registration(sql, submitter)
    for revision, status in ((1, "Approved"), (2, "Pending")):
        sql.execute("""INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name,
                           owner_contact, server_name, transport, version, status, submitted_by, decided_by, decided_at)
                       SELECT registration_id, $2, endpoint_url, endpoint_name, owner_contact, server_name, transport,
                              version, $3, submitter_id, CASE WHEN $3 = 'Approved' THEN $4::uuid END,
                              CASE WHEN $3 = 'Approved' THEN now() END
                       FROM registrations WHERE registration_id = $1""", registration_id, revision, status, approver)
    sql.execute("""UPDATE registrations SET revision = 2, published_revision = 1, published_endpoint_url = endpoint_url,
                       published_endpoint_name = endpoint_name, published_owner_contact = owner_contact,
                       published_available_tools = available_tools, published_server_name = server_name,
                       published_transport = transport, published_version = version, publication = 'active',
                       published_at = now(), published_updated_at = now()
                   WHERE registration_id = $1""", registration_id)
    probe_id = sql.fetchval("""INSERT INTO probes (registration_id, revision, trigger, checked_at, outcome, duration_ms,
                                   tools, tools_hash) VALUES ($1, 1, 'scheduled', now(), 'ok', 5,
                                   '[{"name": "forecast"}]', repeat('a', 64)) RETURNING probe_id""", registration_id)
    sql.execute("""INSERT INTO attestations (registration_id, baseline_revision, baseline, drifted)
                   SELECT registration_id, 1, jsonb_build_object('probe_id', probe_id, 'tools_hash', tools_hash,
                          'tools', tools, 'instructions', instructions, 'prompts', prompts, 'resources', resources),
                          true
                   FROM probes WHERE probe_id = $1""", probe_id)
    return {"registration_id": registration_id, "submitter": submitter, "approver": approver, "probe_id": probe_id}


@pytest.mark.parametrize(("statement", "refusal"), [
    # The columns nothing the app sends ever changes.
    ("UPDATE registration_revisions SET endpoint_url = 'https://evil.example.com/mcp' WHERE registration_id = {r}",
     "permission denied for table registration_revisions"),
    ("UPDATE registrations SET submitter_id = {a} WHERE registration_id = {r}",
     "permission denied for table registrations"),
    ("UPDATE registrations SET created_at = now() WHERE registration_id = {r}",
     "permission denied for table registrations"),
    ("UPDATE users SET entra_id = 'someone-else' WHERE user_id = {a}", "permission denied for table users"),
    ("UPDATE probes SET tools_hash = repeat('b', 64) WHERE registration_id = {r}",
     "permission denied for table probes"),
    # A decided revision, through the columns a decision writes.
    ("UPDATE registration_revisions SET status = 'Pending', decided_by = NULL WHERE registration_id = {r} "
     "AND revision = 1", "is Approved: a decided revision never changes"),
    ("UPDATE registration_revisions SET decided_by = {a} WHERE registration_id = {r} AND revision = 1",
     "is Approved: a decided revision never changes"),
    ("UPDATE registration_revisions SET status = 'Approved' WHERE registration_id = {r} AND revision = 2",
     "a pending revision only becomes Approved or Rejected by someone, or Superseded"),
    # The drift state, without accepting it.
    ("UPDATE attestations SET drifted = false WHERE registration_id = {r}",
     "a drift is cleared only by accepting it (a DriftAccepted entry) or a new published revision"),
    ("UPDATE attestations SET baseline_revision = NULL, drifted = false WHERE registration_id = {r}",
     "an attestation measures the published revision"),
    ("UPDATE attestations SET baseline = jsonb_set(baseline, '{{tools_hash}}', to_jsonb(repeat('c', 64))) "
     "WHERE registration_id = {r}", "a baseline is the surface of a stored ok probe of its revision"),
    # Entries that record nothing this statement did, or name someone who did not do it.
    ("INSERT INTO audit_log (registration_id, user_id, action, revision, metadata) "
     "SELECT {r}, NULL, 'Drifted', 1, jsonb_build_object('probe_id', probe_id) FROM probes WHERE registration_id = {r}",
     "a Drifted entry must record a change this transaction made, by its actor"),
    ("INSERT INTO audit_log (registration_id, user_id, action, revision) VALUES ({r}, {a}, 'Approved', 1)",
     "a Approved entry must record a change this transaction made, by its actor"),
    ("INSERT INTO audit_log (registration_id, user_id, action, revision) VALUES ({r}, {a}, 'Created', 2)",
     "a Created entry must record a change this transaction made, by its actor"),
])
def test_the_role_cannot_rewrite_history(history: dict[str, uuid.UUID], as_app: Sql, statement: str,
                                         refusal: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        as_app.execute(statement.format(r=f"'{history['registration_id']}'", a=f"'{history['approver']}'"))
    assert refusal in str(refused.value)


def test_only_the_registrys_own_entries_have_no_user(history: dict[str, uuid.UUID], as_app: Sql) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        as_app.execute(_ENTRY, history["registration_id"], None, "Approved", 1, {})
    assert refused.value.constraint_name == "audit_log_actor_check"


def test_what_the_app_changes_it_still_may(owner_url: str, history: dict[str, uuid.UUID], as_app: Sql) -> None:
    registration_id, approver = history["registration_id"], history["approver"]
    # is_admin follows the token on every sign-in.
    assert as_app.execute("UPDATE users SET is_admin = false, display_name = 'Renamed' WHERE user_id = $1",
                          history["submitter"]) == "UPDATE 1"
    # A decision and its entry, in one statement, by the one who decided; the entry cannot be made twice.
    decision = """WITH decided AS (
                      UPDATE registration_revisions SET status = 'Rejected', decided_by = $2, decided_at = now()
                      WHERE registration_id = $1 AND revision = 2 AND status = 'Pending' RETURNING *)
                  INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision)
                  SELECT registration_id, decided_by, 'Rejected', 'Pending', 'Rejected', revision FROM decided"""
    assert as_app.execute(decision, registration_id, approver) == "INSERT 0 1"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        as_app.execute(_ENTRY.replace("'Approved', $4", "'Rejected', $4"), registration_id, approver, "Rejected", 2,
                       {})
    # The owner (the migrations) is not bound: a migration that must rewrite history can.
    sql = Sql(owner_url)
    assert sql.execute("UPDATE probes SET duration_ms = duration_ms WHERE registration_id = $1",
                       registration_id) == "UPDATE 1"


def test_stored_probes_may_be_pruned_but_never_changed(postgres: PostgresCluster) -> None:
    # Pruning old probes is a DELETE, which a later grant may give; the freeze is of UPDATE only.
    url = postgres.migrated_database("registry_grants_prune")
    sql = Sql(url)
    submitter = _person(sql, "Pruned")
    registration_id = _registration(sql, submitter)
    for _ in range(2):
        sql.execute("INSERT INTO probes (registration_id, revision, trigger, checked_at, outcome, duration_ms) "
                    "VALUES ($1, 1, 'scheduled', now(), 'unreachable', 5)", registration_id)
    sql.execute(f'GRANT UPDATE, DELETE ON probes TO "{APP_ROLE}"')
    as_app = Sql(with_user(url, APP_ROLE, APP_PASSWORD))
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        as_app.execute("UPDATE probes SET outcome = 'ok' WHERE registration_id = $1", registration_id)
    assert str(refused.value) == "a stored probe never changes"
    assert as_app.execute("DELETE FROM probes WHERE registration_id = $1", registration_id) == "DELETE 2"


# Stands in for the Azure extension's function: makes the login role, and leaves on it what it
# was called with.
FAKE_PGAADAUTH = """
CREATE FUNCTION pgaadauth_create_principal_with_oid(role_name text, object_id text, object_type text,
                                                    is_admin boolean, is_mfa boolean) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN', role_name);
    EXECUTE format('COMMENT ON ROLE %I IS %L', role_name,
                   concat_ws(' ', object_id, object_type, is_admin, is_mfa));
    RETURN format('Created role for "%s"', role_name);
END
$$
"""
# The az the script calls for a token: here the local superuser's password, which is what the
# token is to Azure's server.
FAKE_AZ = "#!/bin/sh\necho {password}\n"


def test_the_deployment_script_creates_the_role_by_object_id_and_applies_the_same_grants(
    tmp_path: Path,
) -> None:
    identity, principal_id = "id-registry-test", str(uuid.uuid4())
    with throwaway_server("registry-grant-script-") as server:
        server.start()
        url = server.create_database("registry")
        run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True))
        Sql(server.url).execute(FAKE_PGAADAUTH)
        (tmp_path / "az").write_text(FAKE_AZ.format(password=server.password))
        (tmp_path / "az").chmod(0o755)
        environment = os.environ | {
            "PATH": f"{tmp_path}:{binaries()}:{os.environ['PATH']}",
            "POSTGRES_SERVER_FQDN": "127.0.0.1", "PGPORT": str(server.port), "POSTGRES_DATABASE": "registry",
            "PGUSER": "postgres", "PGSSLMODE": "disable",
            "APP_IDENTITY_NAME": identity, "APP_IDENTITY_PRINCIPAL_ID": principal_id,
        }
        script = PROJECT_ROOT / "infra" / "scripts" / "grant-db-access.sh"
        for _ in range(2):  # idempotent: the second run finds the role and grants the same
            done = subprocess.run([str(script)], env=environment, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[-1] == f'Done: the app signs in as "{identity}".'

        sql = Sql(url)
        assert sql.fetchval("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
                            identity) == f"{principal_id} service f f"
        assert granted(sql, identity) == expected(sql)
        # The same rights the suite's role has, from the same file.
        run(grant_app_role(url, APP_ROLE))
        assert granted(sql, APP_ROLE) == granted(sql, identity)


def test_the_suites_dev_host_signs_in_as_the_least_privileged_role(client: httpx.Client, database_url: str) -> None:
    assert client.get("/health").status_code == 200
    sessions = Sql(database_url).fetch(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user")
    assert [row["usename"] for row in sessions] == [APP_ROLE]
