"""All SQL of registrations. Every write commits its audit entry in the same statement.

Visibility: an administrator sees every live registration; anyone else sees `Approved` ones
and their own. What the caller may not see is reported as not found.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound
from shared.schemas.registrations import RegistrationCreate, RegistrationQuery, RegistrationUpdate, StatusChange

# Written out so the list is what the API promises and nothing more (no deleted_at, no published_at).
COLUMNS = """registration_id, endpoint_url, endpoint_name, description, owner_contact, available_tools, status,
    submitter_id, approver_id, approved_at, status_reason, server_name, transport, version, created_at, updated_at"""

_UNIQUE_FIELDS = {
    "idx_registrations_endpoint_url": "endpoint_url",
    "idx_registrations_server_name": "server_name",
}
# Each retry sees the names committed by the racers before it, so N racers need at most N tries.
_NAME_ATTEMPTS = 20
TOTAL_CAP = 10_000
_MAX_SUFFIX = 1000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as the services need it."""

    user_id: UUID
    is_admin: bool


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def derive_server_name(endpoint_url: str, endpoint_name: str) -> str:
    """`https://mcp.contoso.com/x` + "Weather Tools" -> `com.contoso.mcp/weather-tools`.

    Leaves room for a `-NNNN` suffix within the 200-character limit.
    """
    host = urlsplit(endpoint_url).hostname or "local"
    labels = [re.sub(r"[^a-z0-9-]+", "-", label) for label in host.lower().split(".") if label]
    namespace = ".".join(reversed(labels)).strip(".-")[:120] or "local"
    slug = _slug(endpoint_name)[: 200 - len(namespace) - 1 - 5].strip("-") or "server"
    return f"{namespace}/{slug}"


def _conflict(error: asyncpg.UniqueViolationError) -> Conflict:
    field = _UNIQUE_FIELDS.get(getattr(error, "constraint_name", "") or "", "a unique field")
    return Conflict(f"A registration with this {field} already exists.")


def like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# The derived name if it is free, else the first free `name-N`: the common case costs one probe.
_CANDIDATE_NAME = f"""
    CASE WHEN NOT EXISTS (
        SELECT 1 FROM registrations WHERE server_name = $7::text AND deleted_at IS NULL
    ) THEN $7::text ELSE (
        SELECT $7::text || '-' || suffix FROM generate_series(2, {_MAX_SUFFIX}) AS suffix
        WHERE NOT EXISTS (
            SELECT 1 FROM registrations WHERE server_name = $7::text || '-' || suffix AND deleted_at IS NULL
        )
        ORDER BY suffix LIMIT 1
    ) END
"""

_CREATE = f"""
WITH inserted AS (
    INSERT INTO registrations (endpoint_url, endpoint_name, description, owner_contact, available_tools,
                               submitter_id, server_name, transport, version)
    VALUES ($1, $2, $3, $4, $5, $6, coalesce($8, {_CANDIDATE_NAME}), $9, $10)
    RETURNING {COLUMNS}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, metadata)
    SELECT registration_id, submitter_id, 'Created', NULL, status,
           jsonb_build_object('endpoint_url', endpoint_url, 'server_name', server_name)
    FROM inserted
)
SELECT {COLUMNS} FROM inserted
"""


async def create(*, db: Database, actor: Actor, data: RegistrationCreate) -> asyncpg.Record:
    derived = None if data.server_name else derive_server_name(data.endpoint_url, data.endpoint_name)
    for attempt in range(_NAME_ATTEMPTS):
        try:
            row = await db.fetchrow(
                _CREATE, data.endpoint_url, data.endpoint_name, data.description, data.owner_contact,
                data.available_tools, actor.user_id, derived, data.server_name, data.transport, data.version,
            )
        except asyncpg.UniqueViolationError as error:
            # Two submissions may derive the same free name at once; the loser takes the next one.
            racing_on_derived_name = derived is not None and error.constraint_name == "idx_registrations_server_name"
            if racing_on_derived_name and attempt + 1 < _NAME_ATTEMPTS:
                continue
            raise _conflict(error) from None
        except asyncpg.NotNullViolationError:
            raise Conflict(f"No free server_name near {derived}; give one explicitly.") from None
        assert row is not None
        return row
    raise AssertionError("unreachable")


_VISIBLE = "(deleted_at IS NULL AND ($2::boolean OR status = 'Approved' OR submitter_id = $3::uuid))"
# The caller's own live rows are all visible. Left without the visibility rule's `status`, the
# count reads idx_registrations_submitter_id alone (index-only): 20,000 rows of a heavy
# submitter cost ~1.5 ms instead of ~75 ms (bench/README.md). $2 must still appear once for
# PostgreSQL to know its type; the admin flag is never null, so the test is always true.
_OWN = "(deleted_at IS NULL AND submitter_id = $3::uuid AND $2::boolean IS NOT NULL)"


async def get(*, db: Database, actor: Actor, registration_id: UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        f"SELECT {COLUMNS} FROM registrations WHERE registration_id = $1 AND {_VISIBLE}",
        registration_id, actor.is_admin, actor.user_id,
    )
    if row is None:
        raise NotFound("Registration not found.")
    return row


def list_filter(query: RegistrationQuery, *, own_only: bool) -> tuple[str, list[Any]]:
    """A WHERE clause built only from fixed fragments; every value is a parameter."""
    conditions = [_OWN if own_only else _VISIBLE]
    arguments: list[Any] = []

    def parameter(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments) + 3}"

    if query.status is not None:
        conditions.append(f"status = {parameter(query.status)}")
    if query.submitter_id is not None:
        conditions.append(f"submitter_id = {parameter(query.submitter_id)}")
    if query.search is not None:
        conditions.append(
            "lower(endpoint_name || chr(31) || owner_contact || chr(31) || endpoint_url || chr(31)"
            f" || coalesce(description, '')) LIKE lower({parameter(like_pattern(query.search))})"
        )
    return " AND ".join(conditions), arguments


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    total_exact: bool
    rows: list[asyncpg.Record]


async def list_page(*, db: Database, actor: Actor, query: RegistrationQuery, own_only: bool = False) -> Page:
    """One page, newest first, with the number of matches counted up to TOTAL_CAP.

    Counting stops past the cap: an exact count of hundreds of thousands of visible rows costs
    more than the page itself, and no one pages that far by offset.
    """
    where, arguments = list_filter(query, own_only=own_only)
    rows = await db.fetch(
        f"""
        SELECT counted.total, page.*
        FROM (
            SELECT count(*) AS total FROM (SELECT 1 FROM registrations WHERE {where} LIMIT {TOTAL_CAP + 1}) AS capped
        ) AS counted
        LEFT JOIN LATERAL (
            SELECT {COLUMNS} FROM registrations WHERE {where}
            ORDER BY created_at DESC, registration_id DESC
            LIMIT $1 OFFSET ${len(arguments) + 4}
        ) AS page ON true
        """,
        query.limit, actor.is_admin, actor.user_id, *arguments, query.offset,
    )
    total = int(rows[0]["total"])
    return Page(min(total, TOTAL_CAP), total <= TOTAL_CAP, [row for row in rows if row["registration_id"] is not None])


_UPDATE = f"""
WITH target AS (
    SELECT registration_id, status, submitter_id FROM registrations
    WHERE registration_id = $1 AND deleted_at IS NULL
    FOR UPDATE
), updated AS (
    UPDATE registrations AS r SET
        endpoint_url    = CASE WHEN $4 THEN $5 ELSE r.endpoint_url END,
        endpoint_name   = CASE WHEN $6 THEN $7 ELSE r.endpoint_name END,
        description     = CASE WHEN $8 THEN $9 ELSE r.description END,
        owner_contact   = CASE WHEN $10 THEN $11 ELSE r.owner_contact END,
        available_tools = CASE WHEN $12 THEN $13::jsonb ELSE r.available_tools END,
        server_name     = CASE WHEN $14 THEN $15 ELSE r.server_name END,
        transport       = CASE WHEN $16 THEN $17 ELSE r.transport END,
        version         = CASE WHEN $18 THEN $19 ELSE r.version END,
        status          = CASE WHEN $2 THEN r.status ELSE 'Pending' END,
        approver_id     = CASE WHEN $2 THEN r.approver_id END,
        approved_at     = CASE WHEN $2 THEN r.approved_at END,
        status_reason   = CASE WHEN $2 THEN r.status_reason END
    FROM target
    WHERE r.registration_id = target.registration_id AND ($2 OR target.submitter_id = $3)
    RETURNING {", ".join(f"r.{column.strip()}" for column in COLUMNS.split(","))}, target.status AS previous_status
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, metadata)
    SELECT registration_id, $3, 'Updated', previous_status, status, jsonb_build_object('changed', $20::text[])
    FROM updated
)
SELECT target.status AS found_status, target.submitter_id AS found_submitter, updated.*
FROM target LEFT JOIN updated ON true
"""

_UPDATABLE = ("endpoint_url", "endpoint_name", "description", "owner_contact", "available_tools", "server_name",
              "transport", "version")


async def update(*, db: Database, actor: Actor, registration_id: UUID, data: RegistrationUpdate) -> asyncpg.Record:
    changed = sorted(data.model_fields_set)
    values: list[Any] = []
    for field in _UPDATABLE:
        values += [field in data.model_fields_set, getattr(data, field)]
    try:
        row = await db.fetchrow(_UPDATE, registration_id, actor.is_admin, actor.user_id, *values, changed)
    except asyncpg.UniqueViolationError as error:
        raise _conflict(error) from None
    if row is None:
        raise NotFound("Registration not found.")
    if row["registration_id"] is None:
        if row["found_status"] == "Approved":
            raise Forbidden("Only the submitter or an administrator may change this registration.")
        raise NotFound("Registration not found.")
    return row


_DECIDE = f"""
WITH target AS (
    SELECT registration_id FROM registrations WHERE registration_id = $1 AND deleted_at IS NULL
), updated AS (
    UPDATE registrations SET
        status = $2, approver_id = $3, approved_at = now(), status_reason = $4,
        published_at = CASE WHEN $2 = 'Approved' THEN coalesce(published_at, now()) ELSE published_at END
    WHERE registration_id = $1 AND deleted_at IS NULL AND status = 'Pending'
    RETURNING {COLUMNS}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, metadata)
    SELECT registration_id, $3, status, 'Pending', status,
           CASE WHEN $4::text IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('reason', $4::text) END
    FROM updated
)
SELECT updated.* FROM target LEFT JOIN updated ON true
"""


async def decide(*, db: Database, actor: Actor, registration_id: UUID, change: StatusChange) -> asyncpg.Record:
    row = await db.fetchrow(_DECIDE, registration_id, change.status, actor.user_id, change.reason)
    if row is None:
        raise NotFound("Registration not found.")
    if row["registration_id"] is None:
        raise Conflict("Only a Pending registration can be approved or rejected; this one was already decided.")
    return row


_DELETE = """
WITH deleted AS (
    UPDATE registrations SET deleted_at = now()
    WHERE registration_id = $1 AND deleted_at IS NULL
    RETURNING registration_id, status
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, metadata)
    SELECT registration_id, $2, 'Deleted', status, NULL, '{}'::jsonb FROM deleted
)
SELECT registration_id FROM deleted
"""


async def delete(*, db: Database, actor: Actor, registration_id: UUID) -> None:
    if await db.fetchval(_DELETE, registration_id, actor.user_id) is None:
        raise NotFound("Registration not found.")
