"""Types shared by several resources: problem details and text rules."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An RFC 9457 problem: every non-2xx answer has this shape."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "type": "about:blank", "title": "Conflict", "status": 409,
        "detail": "A registration with this endpoint_url already exists.",
    }})

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Present on 422: what failed, where.")


def has_control_characters(value: str, *, allow_whitespace: bool = False) -> bool:
    allowed = "\t\n\r" if allow_whitespace else ""
    return any(unicodedata.category(character) == "Cc" and character not in allowed for character in value)
