"""The User resource as the API shows it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema


def _rfc3339_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(_rfc3339_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True, title="User")

    user_id: uuid.UUID
    entra_id: str
    email: str | None
    display_name: str
    is_admin: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime
