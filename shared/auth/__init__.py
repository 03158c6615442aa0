"""Sign-in for the HTTP handlers: who is calling, which users row they are, and are they admin.

    principal = await authenticate(req)            # the token only; no database
    user, row, created = await sign_in(req)        # + the caller's users row, created or refreshed

`shared.declare` calls them for each operation's access rule, and where the rule is `admin`
refuses a caller who is not one with NOT_ADMIN. Each raises Unauthorized (401), Forbidden (403)
or ServiceUnavailable (503), which the `endpoint` wrapper turns into problem+json.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import azure.functions as func

from shared.auth import admin, keys, tokens
from shared.auth.principal import Principal
from shared.db import database
from shared.errors import Forbidden, Unauthorized
from shared.services import users  # the module, not names: it imports shared.auth.cache in turn

__all__ = ["CurrentUser", "Principal", "authenticate", "reset", "sign_in"]

NO_CREDENTIALS = "Sign in: send an Authorization header with a Bearer access token."
NOT_BEARER = "The Authorization header must hold 'Bearer <access token>'."
APP_REFUSED = "App-only tokens are not accepted here: call this API on behalf of a signed-in user."
NOT_ADMIN = "Administrator role required."


@dataclass(frozen=True, slots=True)
class CurrentUser:
    user_id: uuid.UUID
    is_admin: bool
    principal: Principal


def bearer_token(req: func.HttpRequest) -> str:
    header: str | None = req.headers.get("Authorization")
    if header is None:
        raise Unauthorized(NO_CREDENTIALS, error=None)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(NOT_BEARER)
    return token


async def authenticate(req: func.HttpRequest, *, allow_app: bool = False) -> Principal:
    """The validated caller. App-only tokens (no user behind them) are refused unless `allow_app`."""
    principal = await tokens.validate(bearer_token(req))
    if principal.is_app and not allow_app:
        raise Forbidden(APP_REFUSED)
    return principal


async def sign_in(req: func.HttpRequest) -> tuple[CurrentUser, users.UserRow, bool]:
    """The caller, their users row, and whether this request created it."""
    principal = await authenticate(req)
    is_admin = await admin.is_admin(principal)
    row, created = await users.resolve(db=database, principal=principal, is_admin=is_admin)
    return CurrentUser(user_id=row.user_id, is_admin=is_admin, principal=principal), row, created


def reset() -> None:
    """Forget every cached key, token, Graph answer and user, for tests and tools."""
    keys.reset()
    tokens.reset()
    admin.reset()
    users.reset()
