"""Structured logs: one JSON object per line, each tied to the invocation that wrote it.

Where the records go depends on who owns the root handlers. The dev host owns them and
writes JSON lines to stderr with `JsonFormatter`. In Azure the Functions worker owns them: it
ships every record to the host, which stores it in Application Insights with its own
invocation id (the only path logs take there; see shared/telemetry.py). We do not replace
handlers we do not own; `stamp_invocation_ids()` instead puts the current invocation id on
every record as the attribute `invocation_id`, for any handler that exports record attributes.

The invocation id comes from `invocation()`, entered around each call of a function.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

INVOCATION_ATTRIBUTE = "invocation_id"

_invocation_id: ContextVar[str | None] = ContextVar("invocation_id", default=None)
# A signed JWT (header.payload.signature, base64url): no token reaches a log line, even by mistake.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_REDACTED = "[redacted token]"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, None, None, None))) | {
    "message", "asctime", "taskName", INVOCATION_ATTRIBUTE,
}
_stamping = False


@contextmanager
def invocation(invocation_id: str) -> Iterator[None]:
    """Tie every record logged inside the block (in this task) to `invocation_id`."""
    token = _invocation_id.set(invocation_id)
    try:
        yield
    finally:
        _invocation_id.reset(token)


def current_invocation() -> str | None:
    return _invocation_id.get()


def redact(text: str) -> str:
    return _JWT.sub(_REDACTED, text)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message and invocation_id, then any `extra` fields, then the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "invocation_id": getattr(record, INVOCATION_ATTRIBUTE, None) or current_invocation(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_json_to(stream: IO[str], level: str) -> None:
    """Make the root logger write JSON lines to `stream`: for hosts that own the root handlers."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)


def stamp_invocation_ids() -> None:
    """Put the current invocation id on every record created from now on, once per process."""
    global _stamping
    if _stamping:
        return
    _stamping = True
    create = logging.getLogRecordFactory()

    def stamped(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = create(*args, **kwargs)
        invocation_id = _invocation_id.get()
        # Only when known: OpenTelemetry rejects None as an attribute value.
        if invocation_id is not None:
            setattr(record, INVOCATION_ATTRIBUTE, invocation_id)
        return record

    logging.setLogRecordFactory(stamped)
