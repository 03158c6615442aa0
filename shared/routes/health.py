"""GET /api/health: is the app up, does the database answer within 2 s, and what the feed answers from.

The status is the database's alone (a monitor alerts on it); `feed` says where the next feed
answer comes from and how old the instance's snapshot is, so that a feed with no snapshot at all
(`source: none`, the only state in which the feed answers 503) can be alerted on apart.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from shared.db import UNAVAILABLE_ERRORS, database
from shared.declare import Answer, Call, Routes
from shared.errors import ServiceUnavailable
from shared.http import json_response
from shared.services.feed_snapshot import Source, snapshots

HEALTH_TIMEOUT_SECONDS = 2.0
DOWN_ERRORS: tuple[type[BaseException], ...] = (ServiceUnavailable, *UNAVAILABLE_ERRORS)

routes = Routes("health")
blueprint = routes.blueprint
# Checks given up on finish their clean-up here; the loop itself keeps only weak references.
_abandoned: set[asyncio.Task[Any]] = set()


class FeedHealth(BaseModel):
    model_config = ConfigDict(defer_build=True)

    source: Source = Field(description="Where the next feed answer comes from: `database` (a snapshot confirmed "
                                       "current, or the database answers and the next request confirms it), "
                                       "`memory` (the snapshot, unconfirmed: the feed answers with `Age`), `none` "
                                       "(no snapshot and no database: the feed answers 503). `blob` (a durable "
                                       "snapshot read at start) is reserved: no durable snapshot is kept yet.")
    snapshot_age_s: int | None = Field(description="Whole seconds since the snapshot was last confirmed current; "
                                                   "null before the instance loaded one.")


class HealthStatus(BaseModel):
    """What `GET /health` answers, 200 or 503."""

    # Only the document uses it: its schema is built then, not when the app starts.
    model_config = ConfigDict(defer_build=True, json_schema_extra={"example": {
        "status": "healthy", "database": "connected", "feed": {"source": "database", "snapshot_age_s": 4}}})

    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]
    feed: FeedHealth


@routes.declare(
    "GET", "health", access="anonymous", summary="Is the app up, and does its database answer?",
    answers=(Answer(200, "The database answered within 2 s.", HealthStatus),
             Answer(503, "The database did not answer within 2 s.", HealthStatus, ("Retry-After",))),
)
async def health(call: Call[None, None]) -> func.HttpResponse:
    check = asyncio.ensure_future(database.fetchval("SELECT 1"))
    # Not wait_for: it would also wait for the cancelled query's clean-up, and asyncpg's cancel
    # request to a hung server takes as long again, breaking the 2 s bound.
    done, _ = await asyncio.wait({check}, timeout=HEALTH_TIMEOUT_SECONDS)
    if not done:
        check.cancel()
        _abandoned.add(check)
        check.add_done_callback(_abandoned.discard)
        return _unhealthy()
    try:
        check.result()
    except DOWN_ERRORS:
        return _unhealthy()
    return json_response({"status": "healthy", "database": "connected", "feed": _feed(True)})


def _feed(database_answers: bool) -> dict[str, Any]:
    source, age = snapshots.status(database_answers)
    return {"source": source, "snapshot_age_s": age}


def _unhealthy() -> func.HttpResponse:
    return json_response({"status": "unhealthy", "database": "disconnected", "feed": _feed(False)}, 503,
                         {"Retry-After": "5"})
