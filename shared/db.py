"""The asyncpg pool: one per worker process, created on the first request that needs it.

Nothing here runs at import. A failure to connect (or a pool with no free connection within
the acquire timeout) becomes `ServiceUnavailable`, so the caller answers 503 with
`Retry-After`, and the next request tries again without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared.config import DatabaseSettings, get_settings
from shared.errors import ServiceUnavailable

log = logging.getLogger(__name__)

ENTRA_DATABASE_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"

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
)

PasswordProvider = Callable[[], Awaitable[str]]
QueryObserver = Callable[[Any], None]


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await connection.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """We never change session state, so a released connection needs no RESET ALL round trip."""


def entra_password_provider() -> PasswordProvider:
    """A token per new connection from the app's managed identity, used as the password."""
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential()

    async def token() -> str:
        return (await credential.get_token(ENTRA_DATABASE_SCOPE)).token

    return token


def connect_options(settings: DatabaseSettings, password: PasswordProvider | None = None) -> dict[str, Any]:
    """Keyword arguments for asyncpg.connect / create_pool shared by the pool and the migrator."""
    options: dict[str, Any] = {
        "dsn": settings.url,
        "timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
        "statement_cache_size": settings.statement_cache_size,
    }
    if settings.auth == "entra":
        options["password"] = password or entra_password_provider()
        options["ssl"] = ssl.create_default_context()
    return options


class Database:
    """Owns the lazily created pool of one process."""

    def __init__(self, settings: Callable[[], DatabaseSettings]) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self.password_provider: PasswordProvider | None = None
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
                **connect_options(settings, self.password_provider),
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

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.pool()
        try:
            connection = await pool.acquire(timeout=self._settings().acquire_timeout)
        except UNAVAILABLE_ERRORS as error:
            raise ServiceUnavailable("The database is busy or unavailable. Try again shortly.") from error
        try:
            yield connection
        finally:
            await pool.release(connection)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as connection:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as connection:
            row: asyncpg.Record | None = await connection.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as connection:
            return await connection.fetchval(query, *args)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


database = Database(lambda: get_settings().database)
