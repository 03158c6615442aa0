"""DB_AUTH=entra: a token from the credential for every new connection, never one about to expire,
and TLS that verifies the server whatever `sslmode` says.

The server here is a PostgreSQL of its own that asks the app's role for a SCRAM password over
TCP; the fake credential hands out the role's current password as its token, so a connection
only opens when the pool sent the token the credential gave for that very connection.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared import db as db_module
from shared.config import ConfigError, DatabaseSettings
from shared.db import ENTRA_DATABASE_SCOPE, Database, connect_options, entra_password
from shared.errors import ServiceUnavailable
from tests.support import PROJECT_ROOT, run
from tools.pgserver import PgServer, free_port, scratch_folder

APP_ROLE = "registry_app"
AN_HOUR = 3600


@dataclass
class ScramServer:
    server: PgServer

    @property
    def app_url(self) -> str:
        # The server has no TLS; sslmode=disable is honoured because the host is loopback.
        return f"postgresql://{APP_ROLE}@127.0.0.1:{self.server.port}/postgres?sslmode=disable"

    async def change_password(self, password: str) -> None:
        connection = await asyncpg.connect(self.server.url)
        try:
            await connection.execute(f"ALTER ROLE {APP_ROLE} PASSWORD '{password}'")
        finally:
            await connection.close()

    def set_password(self, password: str) -> None:
        run(self.change_password(password))


@pytest.fixture(scope="module")
def scram_server() -> Iterator[ScramServer]:
    folder = scratch_folder("registry-pg-entra-")
    server = PgServer(folder / "data", free_port())
    server.start()
    try:
        run(_create_role(server.url))
        yield ScramServer(server)
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


async def _create_role(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
    finally:
        await connection.close()


@dataclass
class FakeCredential:
    """Hands out `password` as the token, valid for `lifetime` seconds from the request."""

    password: str
    lifetime: float = AN_HOUR
    requests: list[tuple[str, ...]] = field(default_factory=list)

    async def get_token(self, *scopes: str) -> AccessToken:
        self.requests.append(scopes)
        return AccessToken(self.password, int(time.time() + self.lifetime))


@dataclass
class FailingCredential:
    async def get_token(self, *scopes: str) -> AccessToken:
        raise ClientAuthenticationError("no managed identity is assigned to this resource")


def new_password() -> str:
    return f"token-{uuid.uuid4().hex}"


def entra_database(url: str, *, min_size: int, max_size: int) -> Database:
    settings = DatabaseSettings.from_env({
        "DATABASE_URL": url, "DB_AUTH": "entra",
        "DB_POOL_MIN_SIZE": str(min_size), "DB_POOL_MAX_SIZE": str(max_size),
    })
    return Database(lambda: settings)


def use_credential(monkeypatch: pytest.MonkeyPatch, credential: FakeCredential | FailingCredential) -> None:
    monkeypatch.setattr(db_module, "database_credential", lambda: credential)


def test_the_server_refuses_a_token_that_is_not_the_current_one(
    scram_server: ScramServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    scram_server.set_password(new_password())
    use_credential(monkeypatch, FakeCredential(new_password()))
    database = entra_database(scram_server.app_url, min_size=1, max_size=1)

    with pytest.raises(ServiceUnavailable) as refused:
        run(database.fetchval("SELECT 1"))
    assert isinstance(refused.value.__cause__, asyncpg.InvalidPasswordError)


def test_every_new_connection_asks_for_its_own_token(
    scram_server: ScramServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = new_password()
    scram_server.set_password(password)
    credential = FakeCredential(password)
    use_credential(monkeypatch, credential)
    database = entra_database(scram_server.app_url, min_size=2, max_size=4)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[int, list[str], int, int]:
        await database.pool()
        after_pool = len(credential.requests)
        async with AsyncExitStack() as held:
            connections = [await held.enter_async_context(database.connection()) for _ in range(4)]
            users = [await connection.fetchval("SELECT current_user") for connection in connections]
        after_four = len(credential.requests)
        await database.fetchval("SELECT 1")
        after_reuse = len(credential.requests)
        await database.close()
        return after_pool, users, after_four, after_reuse

    assert run(scenario()) == (2, [APP_ROLE] * 4, 4, 4)
    assert credential.requests == [(ENTRA_DATABASE_SCOPE,)] * 4
    assert password not in caplog.text


def test_a_new_connection_signs_in_with_the_token_current_when_it_opens(
    scram_server: ScramServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = new_password(), new_password()
    scram_server.set_password(first)
    credential = FakeCredential(first)
    use_credential(monkeypatch, credential)
    database = entra_database(scram_server.app_url, min_size=1, max_size=2)

    async def scenario() -> tuple[str, int, int]:
        async with database.connection() as opened_first:
            # The role's password changes, as a token does on renewal; the open session stays.
            await scram_server.change_password(second)
            credential.password = second
            async with database.connection() as opened_after:
                user = await opened_after.fetchval("SELECT current_user")
            still_open = await opened_first.fetchval("SELECT 1")
        await database.close()
        return user, still_open, len(credential.requests)

    assert run(scenario()) == (APP_ROLE, 1, 2)


@pytest.mark.parametrize("lifetime", [-60, 0, 300], ids=["expired", "expiring now", "within five minutes"])
def test_a_token_at_or_near_its_expiry_is_never_sent(
    lifetime: int, scram_server: ScramServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = new_password()
    scram_server.set_password(password)
    # The stale token is the role's password: had the pool sent it, the connection would open.
    credential = FakeCredential(password, lifetime=lifetime)
    use_credential(monkeypatch, credential)
    database = entra_database(scram_server.app_url, min_size=1, max_size=2)

    async def scenario() -> tuple[str, BaseException | None, int, str]:
        refused: tuple[str, BaseException | None] = ("", None)
        try:
            await database.fetchval("SELECT 1")
        except ServiceUnavailable as error:
            refused = error.detail, error.__cause__
        credential.lifetime = AN_HOUR
        user = await database.fetchval("SELECT current_user")
        await database.close()
        return *refused, len(credential.requests), user

    detail, cause, requests, user = run(scenario())
    assert detail == "The database is unavailable. Try again shortly."
    assert isinstance(cause, db_module.TokenUnavailable)
    assert str(cause) == "The managed identity's database token is about to expire."
    assert (requests, user) == (2, APP_ROLE)
    assert "refused a database token that expires in" in caplog.text
    assert password not in caplog.text


def test_a_credential_failure_makes_the_database_unavailable(
    scram_server: ScramServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_credential(monkeypatch, FailingCredential())
    database = entra_database(scram_server.app_url, min_size=1, max_size=1)

    with pytest.raises(ServiceUnavailable) as raised:
        run(database.fetchval("SELECT 1"))

    assert isinstance(raised.value.__cause__, db_module.TokenUnavailable)
    assert str(raised.value.__cause__) == "The managed identity gave no database token."
    assert ("no database token from the managed identity: ClientAuthenticationError: "
            "no managed identity is assigned to this resource") in caplog.text


def test_the_password_is_the_callable_asyncpg_calls_per_connection() -> None:
    options = connect_options(DatabaseSettings.from_env({
        "DATABASE_URL": "postgresql://id-registry@db.example.com/registry?sslmode=require", "DB_AUTH": "entra",
    }))
    assert options["password"] is entra_password


@pytest.mark.parametrize("query", ["", "?sslmode=require", "?sslmode=prefer", "?sslmode=allow", "?sslmode=verify-full"])
def test_entra_verifies_the_server_certificate_and_name_whatever_sslmode_asks(query: str) -> None:
    options = connect_options(DatabaseSettings.from_env({
        "DATABASE_URL": f"postgresql://id-registry@db.example.com:5432/registry{query}", "DB_AUTH": "entra",
    }))
    context = options["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_sslmode_disable_is_honoured_on_a_loopback_host(host: str) -> None:
    options = connect_options(DatabaseSettings.from_env({
        "DATABASE_URL": f"postgresql://id-registry@{host}:6432/registry?sslmode=disable", "DB_AUTH": "entra",
    }))
    assert "ssl" not in options


def test_sslmode_disable_is_refused_for_a_remote_host() -> None:
    settings = DatabaseSettings.from_env({
        "DATABASE_URL": "postgresql://id-registry@db.example.com/registry?sslmode=disable", "DB_AUTH": "entra",
    })
    with pytest.raises(ConfigError) as raised:
        connect_options(settings)
    assert str(raised.value) == (
        "DATABASE_URL sslmode=disable is refused with DB_AUTH=entra unless the host is loopback: "
        "the token would cross the network unencrypted")


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://db.example.com/registry",
     "DATABASE_URL must name the managed identity's database role as its user with DB_AUTH=entra"),
    ("postgresql://id-registry:secret@db.example.com/registry",
     "DATABASE_URL must not carry a password with DB_AUTH=entra (the token is the password)"),
])
def test_entra_needs_the_identity_as_user_and_no_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        connect_options(DatabaseSettings.from_env({"DATABASE_URL": url, "DB_AUTH": "entra"}))
    assert str(raised.value) == message


def test_password_auth_leaves_the_password_and_tls_to_the_url() -> None:
    options = connect_options(DatabaseSettings.from_env({
        "DATABASE_URL": "postgresql://registry:secret@db.example.com/registry?sslmode=require",
    }))
    assert ("password" in options, "ssl" in options) == (False, False)


def test_azure_identity_loads_at_the_first_token_and_the_credential_is_made_once() -> None:
    script = """
import sys
from shared.config import DatabaseSettings
from shared.db import connect_options, database_credential
connect_options(DatabaseSettings.from_env({
    "DATABASE_URL": "postgresql://id-registry@db.example.com/registry", "DB_AUTH": "entra"}))
print("azure.identity" in sys.modules)
print(database_credential() is database_credential(), type(database_credential()).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout == "False\nTrue DefaultAzureCredential\n"
