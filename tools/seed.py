"""Example data for a new development database: one registration in each status.

`make run` calls `seed()` the first time it creates its database, so a newcomer opens a
populated registry. The people are the ones `make run` prints tokens for.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from uuid import UUID

from shared.config import DatabaseSettings, EndpointSettings, ReviewSettings
from shared.db import Database
from shared.schemas.registrations import RegistrationCreate, StatusChange
from shared.schemas.urls import validation_context
from shared.services import registrations, revisions
from shared.services.registrations import Actor

ADMIN_NAME, ADMIN_EMAIL = "Ada Admin", "ada.admin@example.com"
USER_NAME, USER_EMAIL = "Uma User", "uma.user@example.com"

EXAMPLES: list[tuple[dict[str, object], str | None]] = [
    ({"endpoint_url": "https://mcp.contoso.com/weather", "endpoint_name": "Weather Tools",
      "description": "Forecasts and severe-weather alerts for any city.", "owner_contact": "weather@contoso.com",
      "available_tools": ["get_forecast", "get_alerts"]}, "Approved"),
    ({"endpoint_url": "https://tickets.contoso.com/mcp", "endpoint_name": "Ticket Desk",
      "description": "Search and update support tickets.", "owner_contact": "helpdesk@contoso.com",
      "available_tools": ["search_tickets", "update_ticket"]}, None),
    ({"endpoint_url": "https://legacy.contoso.com:8443/mcp", "endpoint_name": "Legacy Inventory",
      "description": "Inventory lookups behind a self-signed certificate.", "owner_contact": "inventory@contoso.com",
      "available_tools": ["lookup_item"], "transport": "sse"}, "Rejected"),
]


def dev_oid(name: str) -> str:
    """The `oid` the development authority puts in tokens minted for `name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dev-user:{name}"))


async def _upsert_user(db: Database, name: str, email: str, is_admin: bool) -> UUID:
    user_id: UUID = await db.fetchval(
        """INSERT INTO users (entra_id, email, display_name, is_admin) VALUES ($1, $2, $3, $4)
           ON CONFLICT (entra_id) DO UPDATE SET display_name = excluded.display_name RETURNING user_id""",
        dev_oid(name), email, name, is_admin,
    )
    return user_id


async def seed(database_url: str) -> None:
    db = Database(lambda: DatabaseSettings.from_env({"DATABASE_URL": database_url, "DB_POOL_MIN_SIZE": "0"}))
    try:
        admin = Actor(await _upsert_user(db, ADMIN_NAME, ADMIN_EMAIL, True), is_admin=True)
        user = Actor(await _upsert_user(db, USER_NAME, USER_EMAIL, False), is_admin=False)
        review = ReviewSettings(require_match=False, allow_self_approval=False, max_pending_per_user=20)
        for fields, decision in EXAMPLES:
            data = RegistrationCreate.model_validate(fields, context=validation_context(EndpointSettings()))
            created = (await registrations.create(db=db, actor=user, data=data, review=review)).registration
            if decision is not None:
                change = StatusChange.model_validate(
                    {"status": decision, "reason": "Plain HTTP is not allowed." if decision == "Rejected" else None}
                )
                await revisions.decide(db=db, actor=admin, registration_id=created.registration_id, change=change,
                                       if_match=created.revision, review=review)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.seed", description="Insert example registrations.")
    parser.add_argument("database_url", help="postgresql:// URL of a migrated database")
    asyncio.run(seed(parser.parse_args().database_url))


if __name__ == "__main__":
    main()
