"""Notification subscriptions and their delivery log: one statement per call, administrators only
(the routes enforce that)."""

from __future__ import annotations

import base64
import secrets
from typing import Any
from uuid import UUID

import asyncpg

from shared.db import Database
from shared.errors import NotFound
from shared.sql import Statement

# Standard Webhooks: `whsec_` + base64 of the key; 32 random bytes (the specification asks 24 or more).
SECRET_BYTES = 32
DELIVERY_LOG_LIMIT = 100
NOT_FOUND = "Subscription not found."
_COLUMNS = "subscription_id, channel, url, events, description, created_by, created_at, updated_at"

_CREATE = Statement(f"""
INSERT INTO subscriptions (channel, url, events, description, secret, created_by)
VALUES (:channel, :url, :events, :description, :secret, :created_by)
RETURNING {_COLUMNS}, secret
""")
_LIST = Statement(f"SELECT {_COLUMNS} FROM subscriptions WHERE deleted_at IS NULL ORDER BY created_at, subscription_id")
_GET = Statement(f"SELECT {_COLUMNS} FROM subscriptions "
                 "WHERE subscription_id = :subscription_id AND deleted_at IS NULL")
_UPDATE = Statement(f"""
UPDATE subscriptions SET url = coalesce(:url, url), events = coalesce(:events, events),
       description = CASE WHEN :set_description THEN :description ELSE description END, updated_at = now()
WHERE subscription_id = :subscription_id AND deleted_at IS NULL
RETURNING {_COLUMNS}
""")
# Deleting keeps the row (the log refers to it); what was still waiting will never be sent.
_DELETE = Statement("""
WITH deleted AS (
    UPDATE subscriptions SET deleted_at = now(), updated_at = now()
    WHERE subscription_id = :subscription_id AND deleted_at IS NULL
    RETURNING subscription_id
), dropped AS (
    UPDATE deliveries AS d SET status = 'failed', error = 'the subscription was deleted', leased_until = NULL
    FROM deleted WHERE d.subscription_id = deleted.subscription_id AND d.status = 'pending'
)
SELECT count(*) FROM deleted
""")
_DELIVERY_COLUMNS = ("delivery_id, event, webhook_id, status, attempt, status_code, error, created_at, attempted_at, "
                     "due_at")
# A test delivery: queued like any other, behind what the subscription is still owed.
_TEST = Statement(f"""
INSERT INTO deliveries (subscription_id, event, webhook_id, payload)
SELECT subscription_id, 'test', 'msg_' || replace(gen_random_uuid()::text, '-', ''),
       jsonb_build_object('type', 'test', 'timestamp', now(),
                          'data', jsonb_build_object('subscription_id', subscription_id))
FROM subscriptions WHERE subscription_id = :subscription_id AND deleted_at IS NULL
RETURNING {_DELIVERY_COLUMNS}
""")
_DELIVERIES = Statement(f"""
SELECT s.deleted_at IS NULL AS live, {", ".join(f"d.{name.strip()}" for name in _DELIVERY_COLUMNS.split(","))}
FROM subscriptions AS s LEFT JOIN deliveries AS d ON d.subscription_id = s.subscription_id
WHERE s.subscription_id = :subscription_id
ORDER BY d.delivery_id DESC NULLS LAST
LIMIT :limit
""")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


async def create(*, db: Database, created_by: UUID, channel: str, url: str, events: list[str],
                 description: str | None) -> asyncpg.Record:
    secret = new_secret() if channel == "webhook" else None
    row = await db.fetchrow(_CREATE.sql, *_CREATE(channel=channel, url=url, events=events, description=description,
                                                  secret=secret, created_by=created_by))
    assert row is not None
    return row


async def list_all(*, db: Database) -> list[asyncpg.Record]:
    return await db.fetch(_LIST.sql, *_LIST())


async def get(*, db: Database, subscription_id: UUID) -> asyncpg.Record:
    return _found(await db.fetchrow(_GET.sql, *_GET(subscription_id=subscription_id)))


async def update(*, db: Database, subscription_id: UUID, changes: dict[str, Any]) -> asyncpg.Record:
    return _found(await db.fetchrow(_UPDATE.sql, *_UPDATE(
        subscription_id=subscription_id, url=changes.get("url"), events=changes.get("events"),
        set_description="description" in changes, description=changes.get("description"))))


async def delete(*, db: Database, subscription_id: UUID) -> None:
    if not await db.fetchval(_DELETE.sql, *_DELETE(subscription_id=subscription_id)):
        raise NotFound(NOT_FOUND)


async def queue_test(*, db: Database, subscription_id: UUID) -> asyncpg.Record:
    return _found(await db.fetchrow(_TEST.sql, *_TEST(subscription_id=subscription_id)))


async def deliveries(*, db: Database, subscription_id: UUID) -> list[asyncpg.Record]:
    rows = await db.fetch(_DELIVERIES.sql, *_DELIVERIES(subscription_id=subscription_id, limit=DELIVERY_LOG_LIMIT))
    if not rows or not rows[0]["live"]:
        raise NotFound(NOT_FOUND)
    return [row for row in rows if row["delivery_id"] is not None]


def _found(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:
        raise NotFound(NOT_FOUND)
    return row
