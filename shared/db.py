"""The asyncpg pool: one per worker process, created on the first request that needs it.

Nothing here runs at import. A failure to connect (or a pool with no free connection within
the acquire timeout) becomes `ServiceUnavailable`, so the caller answers 503 with
`Retry-After`, and the next request tries again without a restart.

With DB_AUTH=entra there is no password: asyncpg calls `entra_password` for every connection
it opens, which asks the process's Azure credential for a token for Azure Database for
PostgreSQL. The credential keeps its tokens in memory and renews them five minutes before
they expire, so asking per connection costs a lookup; a token that is already that close to
its expiry (the credential could not renew it) is refused rather than sent, and the
connection attempt fails as "unavailable". Such a connection would sign in, but the rule
keeps a stale token from ever starting a new session. The token is never logged.

TLS under DB_AUTH=entra: the token is a bearer credential, so the server's certificate and
host name are always verified (`ssl.create_default_context()`), whatever `sslmode` the URL
asks for; `sslmode=require`, which libpq and asyncpg read as "encrypt but do not verify",
becomes verify-full. The one exception is `sslmode=disable` on a loopback host (a local test
server or a PgBouncer beside the app), which is honoured; on any other host it is refused.
With DB_AUTH=password the URL's `sslmode` applies as asyncpg reads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from shared import telemetry
from shared.config import ConfigError, DatabaseSettings, get_settings
from shared.errors import ServiceUnavailable
from shared.identity import TokenCredential, managed_credential

log = logging.getLogger(__name__)

ENTRA_DATABASE_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
# azure-identity renews a cached token this long before it expires; one it still hands back
# inside this window is one it failed to renew.
TOKEN_MARGIN_SECONDS = 300
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class TokenUnavailable(Exception):
    """No usable Entra token for a new database connection; the message never holds a token."""


# Driver and socket failures that mean "the database is not there right now", never a bug.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.AdminShutdownError,
    # The server is up but refuses us (a role or database not created yet, a rejected token):
    # to a caller that is the database being unavailable, and it may pass without a restart.
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    TokenUnavailable,
)

QueryObserver = Callable[[Any], None]


# Tests replace this factory.
database_credential: Callable[[], TokenCredential] = managed_credential


async def entra_password() -> str:
    """asyncpg's password for a new connection under DB_AUTH=entra: a current Entra token."""
    from azure.core.exceptions import AzureError

    try:
        access = await database_credential().get_token(ENTRA_DATABASE_SCOPE)
    except AzureError as error:
        log.warning("no database token from the managed identity: %s: %s", type(error).__name__, error.message)
        raise TokenUnavailable("The managed identity gave no database token.") from None
    remaining = access.expires_on - time.time()
    if remaining <= TOKEN_MARGIN_SECONDS:
        log.warning("refused a database token that expires in %d s; the credential did not renew it", remaining)
        raise TokenUnavailable("The managed identity's database token is about to expire.")
    return access.token


def _check_entra_user(url: str) -> None:
    parts = urlsplit(url)
    if not parts.username:
        raise ConfigError("DATABASE_URL must name the managed identity's database role as its user with DB_AUTH=entra")
    if parts.password:
        raise ConfigError("DATABASE_URL must not carry a password with DB_AUTH=entra (the token is the password)")


def _entra_ssl(url: str) -> ssl.SSLContext | None:
    """The TLS context for DB_AUTH=entra, or None where the URL's sslmode=disable is honoured."""
    parts = urlsplit(url)
    if parse_qs(parts.query).get("sslmode", [""])[-1] != "disable":
        return ssl.create_default_context()
    if parts.hostname in _LOOPBACK_HOSTS:
        return None
    raise ConfigError("DATABASE_URL sslmode=disable is refused with DB_AUTH=entra unless the host is loopback: "
                      "the token would cross the network unencrypted")


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await connection.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """We never change session state, so a released connection needs no RESET ALL round trip."""


def connect_options(settings: DatabaseSettings) -> dict[str, Any]:
    """Keyword arguments for asyncpg.connect / create_pool shared by the pool and the migrator."""
    options: dict[str, Any] = {
        "dsn": settings.url,
        "timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
        "statement_cache_size": settings.statement_cache_size,
    }
    if settings.auth == "entra":
        _check_entra_user(settings.url)
        options["password"] = entra_password
        context = _entra_ssl(settings.url)
        if context is not None:
            # An explicit context wins over the URL's sslmode in asyncpg.
            options["ssl"] = context
    return options


class Database:
    """Owns the lazily created pool of one process."""

    def __init__(self, settings: Callable[[], DatabaseSettings]) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        # Called with asyncpg's LoggedQuery for every statement on connections opened from now
        # on; the round-trip tests and benchmarks count statements with it.
        self.query_observers: list[QueryObserver] = []

    async def pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop, self._pool = asyncio.Lock(), loop, None
        async with self._lock:
            if self._pool is None:
                self._pool = await self._create_pool()
            return self._pool

    async def _create_pool(self) -> asyncpg.Pool:
        settings = self._settings()
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                **connect_options(settings),
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                init=self._init_connection,
                reset=_keep_session,
                max_inactive_connection_lifetime=300.0,
            )
        except UNAVAILABLE_ERRORS as error:
            log.warning("database unavailable while creating the pool: %s", type(error).__name__)
            raise ServiceUnavailable("The database is unavailable. Try again shortly.") from error
        log.info("database pool created (min %s, max %s)", settings.pool_min_size, settings.pool_max_size)
        return pool

    async def _init_connection(self, connection: asyncpg.Connection) -> None:
        await _init_connection(connection)
        for observer in self.query_observers:
            connection.add_query_logger(observer)

    def _url(self) -> str:
        return self._settings().url

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.pool()
        try:
            connection = await pool.acquire(timeout=self._settings().acquire_timeout)
        except UNAVAILABLE_ERRORS as error:
            raise ServiceUnavailable("The database is busy or unavailable. Try again shortly.") from error
        try:
            yield connection
        except asyncpg.InternalClientError as error:
            # The server ended the session while it sat idle in the pool (a fast shutdown sends
            # FATAL 57P01, then closes the socket); handed out before asyncpg saw the close, the
            # connection refuses the next statement with "cannot switch to state". An outage, not
            # a bug: drop the connection so the pool opens a new one.
            log.warning("dropped a pooled connection the server had ended: %s", type(error).__name__)
            connection.terminate()
            raise ServiceUnavailable("The database is unavailable. Try again shortly.") from error
        finally:
            await pool.release(connection)

    # Each call is one dependency in Application Insights when telemetry is on, the wait for a
    # pooled connection included; with telemetry off the span is a shared no-op.
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        with telemetry.database_span(query, self._url):
            async with self.connection() as connection:
                rows: list[asyncpg.Record] = await connection.fetch(query, *args)
                return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        with telemetry.database_span(query, self._url):
            async with self.connection() as connection:
                row: asyncpg.Record | None = await connection.fetchrow(query, *args)
                return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        with telemetry.database_span(query, self._url):
            async with self.connection() as connection:
                return await connection.fetchval(query, *args)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


database = Database(lambda: get_settings().database)
