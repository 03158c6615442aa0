"""GET /api/demand: the names clients asked the feed for that no registration publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.services.demand import MAX_DAYS


class DemandQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=2_147_483_647)] = 0
    days: Annotated[int, Field(ge=1, le=MAX_DAYS, description="The window: today (UTC) and the days before it.")] = 30


class DemandEntry(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "name": "io.github.contoso/weather", "count": 42, "last_seen": "2026-01-05T09:14:03Z", "state": None}})

    name: str = Field(description="The server name as clients sent it.")
    count: int = Field(description="Lookups answered 404 within the window.")
    last_seen: datetime
    state: Literal["pending", "rejected", "deleted"] | None = Field(
        description="A registration by that name here: awaiting review, rejected, or deleted; null when none.")


class DemandList(BaseModel):
    results: list[DemandEntry]
