"""SQL of registrations: create, read, list, delete. Every write commits its audit entry in the
same statement; edits, decisions and publication live in `shared.services.revisions`.

Visibility (API.md): an administrator sees every live registration and the submitter their own,
at their latest revision; anyone else sees a registration only while it has a published
revision, and then sees that revision (`shared.services.columns`). What the caller may not see
is reported as not found.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from shared import policy
from shared.config import ReviewSettings
from shared.db import Database
from shared.errors import Conflict, NotFound, TooManyRequests
from shared.policy import NOT_FOUND
from shared.schemas.registrations import RegistrationCreate, RegistrationPublic, RegistrationQuery
from shared.services import columns, namespaces
from shared.sql import Statement, compiled

# Each retry sees the names committed by the racers before it, so N racers need at most N tries.
_NAME_ATTEMPTS = 20
TOTAL_CAP = 10_000
_MAX_SUFFIX = 1000
# A queue of reviews drains at the pace of people: ask again in a while, not in a second.
PENDING_RETRY_AFTER_SECONDS = 600


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


def like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"




def too_many_pending(review: ReviewSettings) -> TooManyRequests:
    return TooManyRequests(
        f"You have {review.max_pending_per_user} registrations awaiting review; submit more once some are decided.",
        retry_after=PENDING_RETRY_AFTER_SECONDS,
    )


# The derived name if no live registration holds it, else the first free `name-N`: the common
# case costs one probe of the claims.
_NAME_HELD = ("SELECT 1 FROM registration_claims"
              " WHERE field = 'server_name' AND value = {name} AND registration_id IS NOT NULL")
_CANDIDATE_NAME = f"""
    CASE WHEN NOT EXISTS ({_NAME_HELD.format(name=":derived::text")}) THEN :derived::text ELSE (
        SELECT :derived::text || '-' || suffix FROM generate_series(2, {_MAX_SUFFIX}) AS suffix
        WHERE NOT EXISTS ({_NAME_HELD.format(name=":derived::text || '-' || suffix")})
        ORDER BY suffix LIMIT 1
    ) END
"""

# The submitter's row of the review queue is locked first; a second submission waits for the
# first to commit and then reads the count it left (kept by a trigger of migration 0003).
_CREATE = Statement(f"""
WITH admitted AS (
    INSERT INTO review_queue AS q (submitter_id) VALUES (:user_id)
    ON CONFLICT (submitter_id) DO UPDATE SET pending = q.pending WHERE q.pending < :max_pending
    RETURNING submitter_id
), inserted AS (
    INSERT INTO registrations AS r (endpoint_url, endpoint_name, description, owner_contact, available_tools,
                                    submitter_id, server_name, transport, version)
    SELECT :endpoint_url, :endpoint_name, :description, :owner_contact, :available_tools, :user_id,
           coalesce(:server_name, {_CANDIDATE_NAME}), :transport, :version FROM admitted
    RETURNING {columns.latest()}
), revision AS (
    INSERT INTO registration_revisions (registration_id, revision, {", ".join(columns.CONTENT)},
                                        submitted_by, submitted_at)
    SELECT registration_id, revision, {", ".join(columns.CONTENT)}, submitter_id, created_at FROM inserted
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, submitter_id, 'Created', NULL, status, revision,
           jsonb_build_object('endpoint_url', endpoint_url, 'server_name', server_name)
    FROM inserted
)
SELECT inserted.* FROM (SELECT 1) AS one LEFT JOIN inserted ON true
""")


class Creation(Enum):
    CREATED = "created"  # revision 1, Pending


@dataclass(frozen=True, slots=True)
class Created:
    outcome: Creation
    registration: RegistrationPublic


def _created(row: asyncpg.Record | None, *, review: ReviewSettings) -> Created:
    """What the create statement answered: the outcome, or the domain error it means."""
    assert row is not None
    if row["registration_id"] is None:
        raise too_many_pending(review)
    return Created(Creation.CREATED, columns.registration(row))


async def create(*, db: Database, actor: Actor, data: RegistrationCreate, review: ReviewSettings) -> Created:
    """Writes: `registrations` (the new row), `registration_revisions` (revision 1), `review_queue`,
    `registration_claims` (a trigger), `audit_log` (`Created`)."""
    if data.server_name and not actor.is_admin:
        namespaces.check(data.server_name, data.endpoint_url)
    derived = None if data.server_name else derive_server_name(data.endpoint_url, data.endpoint_name)
    for attempt in range(_NAME_ATTEMPTS):
        try:
            row = await db.fetchrow(_CREATE.sql, *_CREATE(
                endpoint_url=data.endpoint_url, endpoint_name=data.endpoint_name, description=data.description,
                owner_contact=data.owner_contact, available_tools=data.available_tools, user_id=actor.user_id,
                derived=derived, server_name=data.server_name, transport=data.transport, version=data.version,
                max_pending=review.max_pending_per_user))
        except asyncpg.UniqueViolationError as error:
            # Two submissions may derive the same free name at once; the loser takes the next one.
            racing_on_derived_name = derived is not None and error.constraint_name == "registration_claims_server_name"
            if racing_on_derived_name and attempt + 1 < _NAME_ATTEMPTS:
                continue
            raise columns.conflict(error) from None
        except asyncpg.NotNullViolationError:
            raise Conflict(f"No free server_name near {derived}; give one explicitly.") from None
        return _created(row, review=review)
    raise AssertionError("unreachable")


# :is_admin and :user_id are parameters of every read and list.
FULL_VIEW = policy.OWNER_OR_ADMIN
_VISIBLE = policy.visible()
_GET = Statement(f"SELECT {columns.viewed_by(FULL_VIEW)} FROM registrations AS r "
                 f"WHERE r.registration_id = :registration_id AND {_VISIBLE}")


async def get(*, db: Database, actor: Actor, registration_id: UUID) -> RegistrationPublic:
    row = await db.fetchrow(_GET.sql, *_GET(registration_id=registration_id, is_admin=actor.is_admin,
                                            user_id=actor.user_id))
    if row is None:
        raise NotFound(NOT_FOUND)
    return columns.registration(row)


_LATEST_SEARCH = ("lower(r.endpoint_name || chr(31) || r.owner_contact || chr(31) || r.endpoint_url || chr(31)"
                  " || coalesce(r.description, ''))")
_PUBLISHED_SEARCH = ("lower(r.published_endpoint_name || chr(31) || r.published_owner_contact || chr(31)"
                     " || r.published_endpoint_url || chr(31) || coalesce(r.published_description, ''))")
# Someone else's registration, seen at its published revision.
_OTHERS_PUBLISHED = "(r.submitter_id <> :user_id::uuid AND r.published_revision IS NOT NULL)"


_ATTESTATION = "SELECT 1 FROM attestations AS a WHERE a.registration_id = r.registration_id"
_DRIFTED = "a.drifted AND a.baseline_revision = r.published_revision"


def list_filter(query: RegistrationQuery, *, own_only: bool, is_admin: bool) -> tuple[str, dict[str, Any]]:
    """A WHERE clause built only from fixed fragments, and the values of its named parameters beyond
    :is_admin and :user_id (which every list binds).

    An administrator's list and anyone's own list filter the latest revisions. Anyone else's
    list is their own latest revisions beside others' published ones: each filter is an OR of
    the two, each side matching one partial index, so that search and totals stay on indexes.
    """
    latest_only = own_only or is_admin
    # The caller's own live rows are all visible. Left without the admin flag, the count reads
    # idx_registrations_submitter_id alone (index-only): 20,000 rows of a heavy submitter cost
    # ~1.5 ms instead of ~75 ms (bench/README.md). :is_admin still appears, so that every list
    # binds the same names; the admin flag is never null, so the test is always true.
    if own_only:
        conditions = ["r.deleted_at IS NULL AND r.submitter_id = :user_id::uuid AND :is_admin::boolean IS NOT NULL"]
    else:
        conditions = [_VISIBLE]
    arguments: dict[str, Any] = {}

    def parameter(name: str, value: Any) -> str:
        arguments[name] = value
        return f":{name}"

    if query.status is not None:
        status = parameter("status", query.status)
        if latest_only:
            conditions.append(f"r.status = {status}")
        elif query.status == "Approved":
            conditions.append(f"((r.submitter_id = :user_id::uuid AND r.status = {status}) OR {_OTHERS_PUBLISHED})")
        else:
            conditions.append(f"(r.submitter_id = :user_id::uuid AND r.status = {status})")
    if query.submitter_id is not None:
        conditions.append(f"r.submitter_id = {parameter('submitter_id', query.submitter_id)}")
    if query.search is not None:
        pattern = f"lower({parameter('search', like_pattern(query.search))})"
        if latest_only:
            conditions.append(f"{_LATEST_SEARCH} LIKE {pattern}")
        else:
            conditions.append(f"((r.submitter_id = :user_id::uuid AND {_LATEST_SEARCH} LIKE {pattern})"
                              f" OR ({_OTHERS_PUBLISHED} AND {_PUBLISHED_SEARCH} LIKE {pattern}))")
    # Administrators' filters (the route refuses them to anyone else), on the latest probe.
    attested = []
    if query.outcome is not None:
        attested.append(f"a.latest->>'outcome' = {parameter('outcome', query.outcome)}")
    if query.findings is not None:
        attested.append(f"(a.latest->'findings'->>{parameter('findings', query.findings)}::text)::integer > 0")
    if attested:
        conditions.append(f"EXISTS ({_ATTESTATION} AND {' AND '.join(attested)})")
    if query.drifted is not None:
        conditions.append(f"{'' if query.drifted else 'NOT '}EXISTS ({_ATTESTATION} AND {_DRIFTED})")
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
    where, arguments = list_filter(query, own_only=own_only, is_admin=actor.is_admin)
    statement = compiled(f"""
        SELECT counted.total, page.*
        FROM (
            SELECT count(*) AS total
            FROM (SELECT 1 FROM registrations AS r WHERE {where} LIMIT {TOTAL_CAP + 1}) AS capped
        ) AS counted
        LEFT JOIN LATERAL (
            -- The attestation above the OFFSET: a page at offset 10,000 would otherwise look up 10,020.
            SELECT r.*, {columns.attestation_summary(FULL_VIEW)} AS attestation
            FROM (
                SELECT {columns.viewed_by(FULL_VIEW, attestation=False)} FROM registrations AS r WHERE {where}
                ORDER BY r.created_at DESC, r.registration_id DESC
                LIMIT :limit OFFSET :offset
            ) AS r
            ORDER BY r.created_at DESC, r.registration_id DESC
        ) AS page ON true
        """)
    rows = await db.fetch(statement.sql, *statement(limit=query.limit, offset=query.offset, is_admin=actor.is_admin,
                                                    user_id=actor.user_id, **arguments))
    total = int(rows[0]["total"])
    return Page(min(total, TOTAL_CAP), total <= TOTAL_CAP, [row for row in rows if row["registration_id"] is not None])


# Deleting frees the URL and the name (the claims trigger) and, for a published registration,
# is a change the feed's incremental sync announces.
_DELETE = Statement("""
WITH deleted AS (
    UPDATE registrations SET deleted_at = now(),
        published_updated_at = CASE WHEN published_at IS NOT NULL THEN now() ELSE published_updated_at END
    WHERE registration_id = :registration_id AND deleted_at IS NULL
    RETURNING registration_id, status, revision
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, :user_id, 'Deleted', status, NULL, revision, '{}'::jsonb FROM deleted
)
SELECT registration_id FROM deleted
""")


class Deletion(Enum):
    DELETED = "deleted"


async def delete(*, db: Database, actor: Actor, registration_id: UUID) -> Deletion:
    """Writes: `registrations` (`deleted_at`), `registration_claims` and `review_queue` (triggers), `audit_log`
    (`Deleted`)."""
    deleted = await db.fetchval(_DELETE.sql, *_DELETE(registration_id=registration_id, user_id=actor.user_id))
    if deleted is None:
        raise NotFound(NOT_FOUND)
    return Deletion.DELETED
