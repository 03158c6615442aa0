"""`python -m tools.migrate` on a real PostgreSQL, and the constraints the schema enforces."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.config import DatabaseSettings
from shared.db import connect_options
from tests.support import PROJECT_ROOT, PostgresCluster, Sql, throwaway_server
from tools.migrate import LOCK_KEY, MIGRATIONS_DIR, connect_when_reachable
from tools.pgserver import free_port

TABLES = ["attestations", "audit_log", "deliveries", "event_consumers", "feed_demand", "probe_queue", "probes",
          "registration_claims", "registration_revisions", "registrations", "review_queue", "schema_migrations",
          "subscriptions", "trailing_slash_review", "users"]


def migrate_environment(database_url: str | None) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("DB_") and name != "DATABASE_URL"
    }
    if database_url is not None:
        environment["DATABASE_URL"] = database_url
    return environment


def run_migrate(database_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.migrate", *args],
        cwd=PROJECT_ROOT, env=migrate_environment(database_url), capture_output=True, text=True, timeout=60,
    )


def expected_rows(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    return [(path.stem, hashlib.sha256(path.read_bytes()).hexdigest()) for path in sorted(directory.glob("*.sql"))]


def recorded_rows(sql: Sql) -> list[tuple[str, str, Any]]:
    rows = sql.fetch("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
    return [(row["version"], row["checksum"], row["applied_at"]) for row in rows]


def public_tables(sql: Sql) -> list[str]:
    rows = sql.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
    return [row["table_name"] for row in rows]


def schema_snapshot(sql: Sql) -> list[tuple[str, str, str]]:
    rows = sql.fetch(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'public' ORDER BY table_name, column_name"""
    )
    return [(row["table_name"], row["column_name"], row["data_type"]) for row in rows]


def test_migrations_apply_from_empty_and_a_second_run_is_a_no_op(postgres: PostgresCluster) -> None:
    url = postgres.create_database("migrate_fresh")
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))

    first = run_migrate(url)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.splitlines() == [
        *(f"applying {path.name} ..." for path in files),
        f"applied {len(files)} migration(s); schema is current",
    ]
    sql = Sql(url)
    assert public_tables(sql) == TABLES
    applied = recorded_rows(sql)
    assert [(version, checksum) for version, checksum, _ in applied] == expected_rows()

    second = run_migrate(url)
    assert (second.returncode, second.stdout, second.stderr) == (0, "schema is current; nothing to do\n", "")
    assert recorded_rows(sql) == applied
    assert public_tables(sql) == TABLES


def test_status_lists_pending_migrations_and_changes_nothing(postgres: PostgresCluster) -> None:
    url = postgres.create_database("migrate_status")
    versions = [version for version, _ in expected_rows()]

    pending = run_migrate(url, "--status")
    assert (pending.returncode, pending.stdout, pending.stderr) == (0, f"pending: {', '.join(versions)}\n", "")
    assert public_tables(Sql(url)) == ["schema_migrations"]
    assert recorded_rows(Sql(url)) == []

    assert run_migrate(url).returncode == 0
    current = run_migrate(url, "--status")
    assert (current.returncode, current.stdout) == (0, "pending: none\n")


def test_an_edited_applied_migration_is_refused_and_nothing_changes(postgres: PostgresCluster, tmp_path: Path) -> None:
    url = postgres.create_database("migrate_edited")
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    assert run_migrate(url, "--dir", str(directory)).returncode == 0
    sql = Sql(url)
    before = (schema_snapshot(sql), recorded_rows(sql))

    edited = sorted(directory.glob("*.sql"))[0]
    edited.write_text(edited.read_text() + "\nCREATE TABLE edited_afterwards (id int);\n")
    result = run_migrate(url, "--dir", str(directory))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"migrate: {edited.name} was edited after it was applied (checksum differs); "
        "add a new migration instead of changing an applied one\n"
    )
    assert (schema_snapshot(sql), recorded_rows(sql)) == before


def test_a_failing_migration_is_rolled_back_entirely(postgres: PostgresCluster, tmp_path: Path) -> None:
    url = postgres.create_database("migrate_broken")
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9999_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_function();\n"
    )
    result = run_migrate(url, "--dir", str(directory))

    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "applying 9999_broken.sql ..."
    assert result.stderr.splitlines()[0] == (
        "migrate: the database refused a migration: function no_such_function() does not exist"
    )
    sql = Sql(url)
    assert public_tables(sql) == TABLES
    assert [(version, checksum) for version, checksum, _ in recorded_rows(sql)] == expected_rows()


def test_two_runs_at_once_leave_one_consistent_schema(postgres: PostgresCluster) -> None:
    url = postgres.create_database("migrate_race")

    async def race() -> list[tuple[int, str, str]]:
        # Hold the migration lock until both runs wait for it, so they really start together.
        holder = await asyncpg.connect(url)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
            runs = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tools.migrate", cwd=PROJECT_ROOT, env=migrate_environment(url),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60  # a guard only
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
            assert waiting == 2, "both runs should wait for the lock"
            await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
            results = []
            for run in runs:
                out, err = await run.communicate()
                results.append((await run.wait(), out.decode(), err.decode()))
            return results
        finally:
            await holder.close()

    results = asyncio.run(race())
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    applying = "".join(f"applying {path.name} ...\n" for path in files)
    assert sorted(results) == [
        (0, f"{applying}applied {len(files)} migration(s); schema is current\n", ""),
        (0, "schema is current; nothing to do\n", ""),
    ]
    sql = Sql(url)
    assert public_tables(sql) == TABLES
    assert [(version, checksum) for version, checksum, _ in recorded_rows(sql)] == expected_rows()


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        (None, "migrate: configuration error: DATABASE_URL is required but not set\n"),
        ("mysql://root@127.0.0.1/registry",
         "migrate: configuration error: DATABASE_URL must start with postgresql:// (a libpq connection URI)\n"),
    ],
)
def test_a_bad_database_url_exits_1_naming_the_setting(database_url: str | None, message: str) -> None:
    result = run_migrate(database_url)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)


def test_an_unreachable_database_exits_1_with_a_clear_message() -> None:
    port = free_port()
    result = run_migrate(f"postgresql://postgres@127.0.0.1:{port}/registry")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"migrate: cannot reach the database (ConnectionRefusedError: [Errno 111] Connect call failed "
        f"('127.0.0.1', {port}))\n"
    )


def test_wait_tries_again_with_a_message_per_attempt_then_gives_up() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = run_migrate(f"postgresql://postgres@127.0.0.1:{port}/registry", "--wait", "1.5")
    elapsed = time.monotonic() - started
    refused = f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    assert (result.returncode, result.stdout) == (1, "")
    first, last = result.stderr.splitlines()
    assert re.fullmatch(re.escape(f"migrate: attempt 1 could not connect ({refused}); trying again in ")
                        + r"[12] s, giving up in [12] s", first), first
    assert last == f"migrate: cannot reach the database ({refused})"
    # It waited out --wait before giving up (how much longer a busy machine took does not matter).
    assert elapsed >= 1.5


def test_wait_connects_once_a_late_server_comes_up(capsys: pytest.CaptureFixture[str]) -> None:
    with throwaway_server("registry-migrate-late-") as server:
        url = server.database_url("postgres")
        starter = threading.Timer(1.0, server.start)
        starter.start()
        try:
            options = {**connect_options(DatabaseSettings.from_env({"DATABASE_URL": url})), "command_timeout": None}
            connection = asyncio.run(_connect_and_ask(options))
        finally:
            starter.join()
        assert connection == 1
    attempts = capsys.readouterr().err.splitlines()
    assert attempts, "the first attempt, before the server started, should have been reported"
    assert all(line.startswith("migrate: attempt ") for line in attempts)
    assert [int(line.split()[2]) for line in attempts] == list(range(1, len(attempts) + 1))


async def _connect_and_ask(options: dict[str, Any]) -> int:
    connection = await connect_when_reachable(options, 60, interval=0.2)
    try:
        value: int = await connection.fetchval("SELECT 1")
        return value
    finally:
        await connection.close()


def test_a_missing_database_exits_1_with_a_clear_message(postgres: PostgresCluster) -> None:
    name = f"missing_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database("migrate_missing").rsplit("/", 1)[0] + f"/{name}"
    result = run_migrate(url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f'migrate: cannot connect to the database: database "{name}" does not exist\n'


# The schema itself: constraints hold whatever code writes to it.


@pytest.fixture(scope="module")
def schema(postgres: PostgresCluster) -> Sql:
    return Sql(postgres.migrated_database("schema_checks"))


@pytest.fixture(scope="module")
def person(schema: Sql) -> str:
    user_id: uuid.UUID = schema.fetchval(
        "INSERT INTO users (entra_id, email, display_name) VALUES ($1, 'ada@example.com', 'Ada') RETURNING user_id",
        str(uuid.uuid4()),
    )
    return str(user_id)


def insert_registration(sql: Sql, submitter: str, **overrides: Any) -> uuid.UUID:
    token = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "endpoint_url": f"https://{token}.example.com/mcp",
        "endpoint_name": "Weather Tools",
        "owner_contact": "owner@example.com",
        "server_name": f"com.example.{token}/weather",
        "submitter_id": uuid.UUID(submitter),
    }
    values.update(overrides)
    columns = ", ".join(values)
    placeholders = ", ".join(f"${index}" for index in range(1, len(values) + 1))
    registration_id: uuid.UUID = sql.fetchval(
        f"INSERT INTO registrations ({columns}) VALUES ({placeholders}) RETURNING registration_id", *values.values()
    )
    return registration_id


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"status": "Published"}, "registrations_status_check"),
        ({"status": "pending"}, "registrations_status_check"),
        ({"server_name": "no-slash-here"}, "registrations_server_name_check"),
        ({"server_name": "com.example/with space"}, "registrations_server_name_check"),
        ({"version": "latest"}, "registrations_version_check"),
        ({"transport": "stdio"}, "registrations_transport_check"),
        ({"available_tools": {"not": "an array"}}, "registrations_available_tools_check"),
    ],
)
def test_registration_checks_reject_bad_values(
    schema: Sql, person: str, overrides: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        insert_registration(schema, person, **overrides)
    assert caught.value.constraint_name == constraint


AUDIT_ACTIONS = ["Created", "Updated", "Approved", "Rejected", "Deleted", "Deprecated", "Reactivated", "Published",
                 "Drifted", "DriftAccepted"]


def test_audit_action_must_be_one_of_the_ten(schema: Sql, person: str) -> None:
    registration_id = insert_registration(schema, person)
    insert = ("INSERT INTO audit_log (registration_id, user_id, action, new_status, revision) "
              "VALUES ($1, $2, $3, 'Pending', 1)")
    for action in AUDIT_ACTIONS:
        assert schema.execute(insert, registration_id, uuid.UUID(person), action) == "INSERT 0 1"
    # Entries the registry makes on its own have no user.
    assert schema.execute(insert, registration_id, None, "Drifted") == "INSERT 0 1"
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        schema.execute(insert, registration_id, uuid.UUID(person), "Withdrawn")
    assert caught.value.constraint_name == "audit_log_action_check"


def test_a_live_url_is_unique_until_the_first_row_is_soft_deleted(schema: Sql, person: str) -> None:
    url = f"https://{uuid.uuid4().hex[:10]}.example.com/mcp"
    first = insert_registration(schema, person, endpoint_url=url)
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        insert_registration(schema, person, endpoint_url=url)
    assert caught.value.constraint_name == "registration_claims_endpoint_url"

    schema.execute("UPDATE registrations SET deleted_at = now() WHERE registration_id = $1", first)
    second = insert_registration(schema, person, endpoint_url=url)
    rows = schema.fetch(
        "SELECT registration_id, deleted_at IS NULL AS live FROM registrations WHERE endpoint_url = $1 ORDER BY live",
        url,
    )
    assert [(row["registration_id"], row["live"]) for row in rows] == [(first, False), (second, True)]


def test_a_live_server_name_is_unique_until_the_first_row_is_soft_deleted(schema: Sql, person: str) -> None:
    name = f"com.example.{uuid.uuid4().hex[:10]}/weather"
    first = insert_registration(schema, person, server_name=name)
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        insert_registration(schema, person, server_name=name)
    assert caught.value.constraint_name == "registration_claims_server_name"
    schema.execute("UPDATE registrations SET deleted_at = now() WHERE registration_id = $1", first)
    assert insert_registration(schema, person, server_name=name) != first


def test_users_are_unique_by_entra_id(schema: Sql) -> None:
    entra_id = str(uuid.uuid4())
    schema.execute("INSERT INTO users (entra_id) VALUES ($1)", entra_id)
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        schema.execute("INSERT INTO users (entra_id) VALUES ($1)", entra_id)
    assert caught.value.constraint_name == "idx_users_entra_id"


@pytest.mark.parametrize(
    ("table", "key", "change"),
    [("users", "user_id", "display_name = 'Renamed'"), ("registrations", "registration_id", "status = 'Approved'")],
)
def test_updated_at_follows_every_update(schema: Sql, person: str, table: str, key: str, change: str) -> None:
    row_id = uuid.UUID(person) if table == "users" else insert_registration(schema, person)
    select = f"SELECT created_at, updated_at FROM {table} WHERE {key} = $1"
    before = schema.fetchrow(select, row_id)
    assert before is not None
    schema.execute(f"UPDATE {table} SET {change} WHERE {key} = $1", row_id)
    after = schema.fetchrow(select, row_id)
    assert after is not None
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
