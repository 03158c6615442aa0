"""Helpers shared by the tests: database access, dev host processes, callers with tokens."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from shared.config import DatabaseSettings
from shared.db import Database
from tests import pgbouncer_support
from tools.authority import DevAuthority
from tools.migrate import migrate
from tools.pgserver import PgServer, free_port, scratch_folder

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The grants the app's role gets in Azure (infra/scripts/grant-db-access.sh applies the same file).
APP_GRANTS = PROJECT_ROOT / "sql" / "app_grants.sql"
# The role every dev host signs in as on a migrated test database: the migrations run as the
# server's owner, the API as this role with exactly the rights of APP_GRANTS.
APP_ROLE = "registry_app"
# Its password for this test run (the servers accept passwords only); the log scan forbids it.
APP_PASSWORD = secrets.token_urlsafe(24)

# Owner URL of each database `migrated_database` made -> the URL the app uses for it.
_app_urls: dict[str, str] = {}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass
class PostgresCluster:
    """A server on which tests may create databases."""

    admin_url: str
    server: PgServer | None

    def create_database(self, prefix: str = "registry_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            connection = await asyncpg.connect(self.admin_url)
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        run(create())
        return with_database(self.admin_url, name)

    def migrated_database(self, prefix: str = "registry_test") -> str:
        """A new database migrated as the owner, with APP_ROLE granted as in Azure; its owner URL.

        `app_environment` points a dev host at it as APP_ROLE."""
        url = self.create_database(prefix)
        run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True))
        run(grant_app_role(url, APP_ROLE))
        _app_urls[url] = with_user(url, APP_ROLE, APP_PASSWORD)
        return url


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment))


async def grant_app_role(owner_url: str, role: str, password: str = APP_PASSWORD) -> None:
    """Create the login role once per server (or give it `password`), then apply
    sql/app_grants.sql for it as the deployment script does: the role named in
    registry.app_role, the file as written."""
    connection = await asyncpg.connect(owner_url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        # DDL takes no parameters; the password is URL-safe base64.
        verb = "ALTER" if exists else "CREATE"
        await connection.execute(f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        await connection.execute("SELECT set_config('registry.app_role', $1, false)", role)
        await connection.execute(APP_GRANTS.read_text(encoding="utf-8"))
    finally:
        await connection.close()


class Sql:
    """Synchronous access to the test database for arranging and asserting state."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _call(self, method: str, query: str, *args: Any) -> Any:
        connection = await asyncpg.connect(self.url)
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        try:
            return await getattr(connection, method)(query, *args)
        finally:
            await connection.close()

    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = run(self._call("fetch", query, *args))
        return rows

    def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = run(self._call("fetchrow", query, *args))
        return row

    def fetchval(self, query: str, *args: Any) -> Any:
        return run(self._call("fetchval", query, *args))

    def execute(self, query: str, *args: Any) -> str:
        status: str = run(self._call("execute", query, *args))
        return status


def app_database(database_url: str) -> Database:
    """The app's own pool for a database from `migrated_database`, signed in as the app's role (through
    PgBouncer where the suite runs behind it); close it in the event loop that used it."""
    app_url = _app_urls.get(database_url, database_url)
    settings = DatabaseSettings.from_env({"DATABASE_URL": app_url, **pgbouncer_support.app_settings(app_url)})
    return Database(lambda: settings)


def drain_probe_queueing(database_url: str) -> int:
    """Queue the probes the writes so far ask for, as the timer's round does before it claims: the
    outlet's probe queueing consumer, drained as the app's role; how many entries it was handed."""
    from shared import events
    from shared.jobs import probe_queueing

    db = app_database(database_url)

    async def drain() -> int:
        try:
            return await events.drain_all(db=db, consumer=probe_queueing.CONSUMER)
        finally:
            await db.close()

    handed: int = run(drain())
    return handed


def app_environment(database_url: str, authority: DevAuthority, **overrides: str) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("ENTRA_", "DB_", "REGISTRY_", "CORS_", "ALLOW_", "ALLOWED_", "REVIEW_", "MAX_PENDING",
                               "FEED_"))
        and key != "DATABASE_URL"
    }
    # A database from `migrated_database` is used as the app's least-privileged role.
    database_url = _app_urls.get(database_url, database_url)
    environment.update({
        "DATABASE_URL": database_url,
        "ENTRA_TENANT_ID": authority.tenant_id,
        "ENTRA_API_CLIENT_ID": authority.client_id,
        "ENTRA_AUTHORITY": authority.url,
        "LOG_LEVEL": "INFO",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "10",
        "PYTHONUNBUFFERED": "1",
        # Tests submit dozens of registrations as one person; the cap's own tests start a host with a small one.
        "MAX_PENDING_PER_USER": "1000",
        # Tests read the feed right after writing: the snapshot is confirmed (one statement) on every
        # feed request, so they see each change at once and still read the snapshot path.
        "FEED_SNAPSHOT_MAX_AGE": "0",
    })
    environment.update(pgbouncer_support.app_settings(database_url))
    environment.update(overrides)
    return environment


@dataclass
class RunningHost:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_host(environment: Mapping[str, str], log_dir: Path) -> RunningHost:
    """Start `python -m tools.devhost` on a free port and wait until it answers."""
    port = free_port()
    log_path = log_dir / f"devhost-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.devhost", "--port", str(port)],
            cwd=PROJECT_ROOT, env=dict(environment), stdout=log_file, stderr=subprocess.STDOUT,
        )
    host = RunningHost(f"http://127.0.0.1:{port}/api", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"devhost exited with {process.returncode}:\n{host.log()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return host
        except httpx.TransportError:
            time.sleep(0.1)
    host.stop()
    raise RuntimeError(f"devhost did not start within 30 s:\n{host.log()}")


@dataclass
class Caller:
    """A person with a token, for calling the API."""

    oid: str
    name: str
    email: str
    token: str
    is_admin: bool

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def throwaway_server(prefix: str) -> Iterator[PgServer]:
    """An initialised PostgreSQL that nothing else uses, in a folder removed afterwards; the
    caller starts (and may stop) it."""
    folder = scratch_folder(prefix)
    server = PgServer(folder / "data", free_port())
    server.ensure_initialised()
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)
