"""All SQL about users.

`resolve` turns a signed-in principal into its users row in one statement: it inserts the row
the first time, refreshes e-mail, display name and admin flag when the token says something
new, and otherwise writes nothing. A process remembers each row it saw for a minute, so a
steady stream of requests from one person costs no statement at all while the token's values
match the remembered ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import TYPE_CHECKING

import asyncpg

from shared.auth.cache import TtlCache
from shared.db import Database
from shared.sql import Statement

if TYPE_CHECKING:
    from shared.auth.principal import Principal

RECENT_TTL_SECONDS = 60.0
RECENT_SIZE = 10_000
# The column limits of sql/migrations: a token's longer values are cut (name) or left out (e-mail).
MAX_EMAIL_CHARS = 320
MAX_DISPLAY_NAME_CHARS = 512

_COLUMNS = "user_id, entra_id, email, display_name, is_admin, created_at, updated_at"

# When ON CONFLICT … DO UPDATE … WHERE finds nothing to change it returns no row, so the
# second branch reads the existing one; it can only see rows committed before the statement
# began, which is why `resolve` asks once more when a concurrent first sign-in won the race.
_UPSERT = Statement(f"""
WITH upserted AS (
    INSERT INTO users (entra_id, email, display_name, is_admin)
    VALUES (:entra_id, :email, :display_name, :is_admin)
    ON CONFLICT (entra_id) DO UPDATE
        SET email = excluded.email, display_name = excluded.display_name, is_admin = excluded.is_admin
        WHERE users.email IS DISTINCT FROM excluded.email
           OR users.display_name IS DISTINCT FROM excluded.display_name
           OR users.is_admin IS DISTINCT FROM excluded.is_admin
    RETURNING {_COLUMNS}, (xmax = 0) AS created
)
SELECT * FROM upserted
UNION ALL
SELECT {_COLUMNS}, false AS created FROM users
WHERE entra_id = :entra_id AND NOT EXISTS (SELECT 1 FROM upserted)
""")

_SELECT_BY_ID = Statement(f"SELECT {_COLUMNS} FROM users WHERE user_id = :user_id")


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: uuid.UUID
    entra_id: str
    email: str | None
    display_name: str
    is_admin: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> UserRow:
        return cls(record["user_id"], record["entra_id"], record["email"], record["display_name"],
                   record["is_admin"], record["created_at"], record["updated_at"])


_recent: TtlCache[str, UserRow] = TtlCache(RECENT_SIZE, monotonic)


def reset() -> None:
    """Forget remembered rows, for tests (and after deleting users by hand)."""
    _recent.clear()


async def resolve(*, db: Database, principal: Principal, is_admin: bool) -> tuple[UserRow, bool]:
    """The principal's row, created or brought up to date, and whether it was created now.

    Writes: `users` (the row, or its `email`, `display_name`, `is_admin`), unless remembered as current."""
    email, display_name = _storable(principal)
    remembered = _recent.get(principal.oid)
    if remembered is not None and (remembered.email, remembered.display_name, remembered.is_admin) == (
        email, display_name, is_admin
    ):
        return remembered, False
    arguments = _UPSERT(entra_id=principal.oid, email=email, display_name=display_name, is_admin=is_admin)
    record = await db.fetchrow(_UPSERT.sql, *arguments)
    if record is None:  # a concurrent first sign-in of the same person won the race; see _UPSERT
        record = await db.fetchrow(_UPSERT.sql, *arguments)
    if record is None:
        raise RuntimeError("the users upsert returned no row twice")
    row = UserRow.from_record(record)
    _recent.put(principal.oid, row, RECENT_TTL_SECONDS)
    return row, bool(record["created"])


async def get_user(*, db: Database, user_id: uuid.UUID) -> UserRow | None:
    record = await db.fetchrow(_SELECT_BY_ID.sql, *_SELECT_BY_ID(user_id=user_id))
    return None if record is None else UserRow.from_record(record)


def _text(value: str) -> str:
    # PostgreSQL text holds neither NUL nor a lone surrogate (which JSON escapes can carry).
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _storable(principal: Principal) -> tuple[str | None, str]:
    # A cut e-mail address would be a wrong one, so a long one is left out instead.
    email = _text(principal.email) if principal.email else None
    display_name = _text(principal.display_name)[:MAX_DISPLAY_NAME_CHARS]
    return (email if email and len(email) <= MAX_EMAIL_CHARS else None), display_name
