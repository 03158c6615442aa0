"""Types shared by several resources: problem details and text rules."""

from __future__ import annotations

import re
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


# Unicode's control characters (category Cc) are exactly C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAKS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control_characters(value: str, *, allow_whitespace: bool = False) -> bool:
    """True when `value` holds a control character; tabs and line breaks pass when allowed."""
    return (_CONTROL_BUT_LINE_BREAKS if allow_whitespace else _CONTROL).search(value) is not None
