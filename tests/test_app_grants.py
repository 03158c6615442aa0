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
EXCEPTIONS = {"audit_log": {"SELECT", "INSERT"}, "schema_migrations": set()}


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


def test_the_role_has_exactly_the_common_rights_and_the_named_exceptions(owner_url: str) -> None:
    sql = Sql(owner_url)
    assert {"users", "registrations", "audit_log", "schema_migrations"} <= set(tables(sql))
    assert granted(sql) == expected(sql)
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


def test_the_role_may_delete_from_no_table_at_all(owner_url: str, as_app: Sql) -> None:
    for table in tables(Sql(owner_url)):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            as_app.execute(f'DELETE FROM "{table}" WHERE false')


def test_the_role_appends_to_and_reads_the_audit_trail(owner_url: str, as_app: Sql) -> None:
    sql = Sql(owner_url)
    user_id, registration_id = uuid.uuid4(), uuid.uuid4()
    sql.execute("INSERT INTO users (user_id, entra_id, display_name) VALUES ($1, $2, 'Grace')", user_id,
                str(uuid.uuid4()))
    sql.execute("""INSERT INTO registrations (registration_id, endpoint_name, endpoint_url, owner_contact, submitter_id,
                   server_name) VALUES ($1, 'Grants', 'https://mcp.contoso.com/grants', 'ops@contoso.com', $2,
                   'com.contoso/grants')""",
                registration_id, user_id)
    as_app.execute("INSERT INTO audit_log (registration_id, user_id, action, revision) VALUES ($1, $2, 'Created', 1)",
                   registration_id, user_id)
    assert as_app.fetchval("SELECT action FROM audit_log WHERE registration_id = $1", registration_id) == "Created"


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
