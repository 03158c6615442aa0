"""Calling the app's function handlers in process, the way the Functions worker calls them.

No HTTP server sits in between: a `func.HttpRequest` goes straight into the user function
that `function_app.app` registered, with an invocation context like the worker's. The round
trip test and the in-process benchmarks use this, so what they measure is the app's own code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import azure.functions as func
from asyncpg import introspection

from tools.authority import DevAuthority
from tools.devhost import InvocationContext, Route, collect_routes

BASE_URL = "http://127.0.0.1:7071/api"
_ROUTE_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\??\}")
# asyncpg's own statements: type introspection on a connection's first use of a type it has no
# codec for, with JIT switched off around it. They are not the app's, so counts leave them out.
_DRIVER_STATEMENTS = (introspection.INTRO_LOOKUP_TYPES, introspection.INTRO_LOOKUP_TYPES_13)
_DRIVER_JIT_TOGGLE = "set_config('jit'"


def app_environment(database_url: str, authority: DevAuthority, **overrides: str) -> dict[str, str]:
    """The settings the app reads, pointing at `database_url` and the local sign-in authority."""
    return {
        "DATABASE_URL": database_url,
        "ENTRA_TENANT_ID": authority.tenant_id,
        "ENTRA_API_CLIENT_ID": authority.client_id,
        "ENTRA_AUTHORITY": authority.url,
        "LOG_LEVEL": "WARNING",
        # Benchmarks submit thousands of registrations as a few people.
        "MAX_PENDING_PER_USER": "1000000",
        **overrides,
    }


def configure(environment: Mapping[str, str]) -> None:
    """Replace the app's settings in this process and forget everything cached under the old ones."""
    from shared import auth
    from shared.config import reset_settings
    from shared.services.feed_snapshot import snapshots

    prefixes = ("ENTRA_", "DB_", "REGISTRY_", "CORS_", "REVIEW_", "MAX_PENDING", "FEED_")
    for name in [name for name in os.environ if name.startswith(prefixes)]:
        del os.environ[name]
    os.environ.update(environment)
    reset_settings()
    auth.reset()
    # A snapshot belongs to the database it was loaded from.
    snapshots.reset()


def is_driver_statement(query: str) -> bool:
    return query in _DRIVER_STATEMENTS or _DRIVER_JIT_TOGGLE in query


@dataclass(eq=False)  # asyncpg keeps query loggers in a set, so they hash by identity
class StatementLog:
    """A query observer for `shared.db.database.query_observers`: keeps what the app ran.

    asyncpg calls observers with `loop.call_soon`, so a statement shows up here one loop
    iteration after it finished; `settle()` waits for that.
    """

    recording: bool = True
    statements: list[Any] = field(default_factory=list)
    driver_statements: int = 0

    def __call__(self, record: Any) -> None:
        if not self.recording:
            return
        if is_driver_statement(record.query):
            self.driver_statements += 1
        else:
            self.statements.append(record)

    def clear(self) -> None:
        self.statements.clear()
        self.driver_statements = 0

    @property
    def texts(self) -> list[str]:
        return [" ".join(record.query.split())[:90] for record in self.statements]


async def settle() -> None:
    import asyncio

    # Two turns: one for call_soon callbacks queued by the last statement, one for safety
    # when the release of the connection queued more work behind them.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _functions() -> dict[str, Route]:
    import function_app

    return {route.function_name: route for route in collect_routes(function_app.app)}


class InProcessApp:
    """The registered functions of `function_app.app`, callable with request objects."""

    def __init__(self) -> None:
        self.functions = _functions()

    def has(self, name: str) -> bool:
        return name in self.functions

    def request(
        self,
        name: str,
        *,
        method: str | None = None,
        token: str | None = None,
        route_params: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> func.HttpRequest:
        function = self.functions[name]
        values = dict(route_params or {})
        path = _ROUTE_PARAMETER.sub(lambda match: values[match.group(1)], function.template)
        headers = {**(headers or {}), **({} if token is None else {"Authorization": f"Bearer {token}"})}
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return func.HttpRequest(
            # A route's trigger takes its CORS preflight too: the default is the operation's own method.
            method=method or min(function.methods - {"OPTIONS"}),
            url=f"{BASE_URL}/{path}",
            headers=headers,
            params=dict(params or {}),
            route_params=values,
            body=payload,
        )

    async def call(
        self, name: str, request: func.HttpRequest, context: InvocationContext | None = None
    ) -> func.HttpResponse:
        invocation = context or InvocationContext(name)
        return await self.functions[name].handler(req=request, context=cast(func.Context, invocation))
