"""SQL of revisions: edits make them, decisions decide one, and reading them.

Every statement locks the registration row first, so an edit and a decision on one
registration take their turns in one order (no deadlock), and a decision made on a revision
that is no longer the latest changes nothing (412). A statement that waited for that lock sees
the registration row as the one before it left it, but other rows as they were when it began:
so it never joins the row it locked to a revision on a column the other may have changed, and
the pending revision an edit replaces is marked `Superseded` by a trigger (migration 0003),
whose own statement sees what committed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from shared.config import ReviewSettings
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, PreconditionRequired
from shared.schemas.registrations import RegistrationUpdate, StatusChange
from shared.services import columns, namespaces
from shared.services.registrations import Actor, too_many_pending

NOT_FOUND = "Registration not found."
STALE = "The registration has a newer revision than the one named; reload it and try again."
# Audit values are cut to this many characters, so one entry stays small whatever was submitted.
AUDIT_VALUE_CHARS = 512


def _changes(old: str, new: str) -> str:
    """`{"changes": {field: {"old", "new"}}}` of the fields that differ between two row aliases."""
    parts = []
    for field in columns.CONTENT:
        if field == "available_tools":
            cut = ("CASE WHEN length({0}.available_tools::text) <= {1} THEN {0}.available_tools "
                   "ELSE to_jsonb(left({0}.available_tools::text, {1})) END")
        else:
            cut = "to_jsonb(left({0}." + field + ", {1}))"
        before, after = cut.format(old, AUDIT_VALUE_CHARS), cut.format(new, AUDIT_VALUE_CHARS)
        pair = f"jsonb_build_object('old', {before}, 'new', {after})"
        parts.append(f"CASE WHEN {old}.{field} IS DISTINCT FROM {new}.{field} "
                     f"THEN jsonb_build_object('{field}', {pair}) ELSE '{{}}'::jsonb END")
    return f"jsonb_build_object('changes', {' || '.join(parts)})"


_STORED_HOST = "lower(split_part(split_part(split_part(t.endpoint_url, '://', 2), '/', 1), ':', 1))"
_NEXT = ", ".join(f"CASE WHEN ${7 + 2 * index} THEN ${8 + 2 * index} ELSE t.{field} END AS {field}"
                  for index, field in enumerate(columns.CONTENT))

# $1 id, $2 admin, $3 caller, $4 If-Match revision, $5 pending cap, $6 self-approval allowed,
# $7..$22 (given, value) per content field, $23 the namespaces a new URL allows (the stored name
# must be in one), $24 the pattern a new name's namespace gives (the stored URL's host must match it).
_UPDATE = f"""
WITH target AS (
    SELECT * FROM registrations WHERE registration_id = $1 AND deleted_at IS NULL FOR UPDATE
), checked AS (
    SELECT t.*, ($2 OR t.submitter_id = $3) AS may_edit, ($4::integer IS NULL OR $4 = t.revision) AS current,
        ($23::text[] IS NULL OR lower(split_part(t.server_name, '/', 1)) = ANY($23::text[]))
        AND ($24::text IS NULL OR {_STORED_HOST} ~ $24)
            AS namespace_ok,
        ($2 AND $6 AND t.status = 'Approved') AS self_approved
    FROM target AS t
), proposed AS (
    SELECT t.registration_id, t.submitter_id, t.revision + 1 AS revision, t.status AS previous_status,
           t.self_approved, {_NEXT},
           CASE WHEN t.self_approved THEN 'Approved' ELSE 'Pending' END AS status
    FROM checked AS t WHERE t.may_edit AND t.current AND t.namespace_ok
), queued AS (
    INSERT INTO review_queue AS q (submitter_id)
    SELECT submitter_id FROM proposed WHERE status = 'Pending' AND previous_status <> 'Pending'
    ON CONFLICT (submitter_id) DO UPDATE SET pending = q.pending WHERE q.pending < $5
    RETURNING submitter_id
), admitted AS (
    SELECT * FROM proposed
    WHERE NOT (status = 'Pending' AND previous_status <> 'Pending') OR EXISTS (SELECT 1 FROM queued)
), revision AS (
    INSERT INTO registration_revisions AS v (registration_id, revision, {", ".join(columns.CONTENT)}, status,
                                             submitted_by, decided_by, decided_at)
    SELECT registration_id, revision, {", ".join(columns.CONTENT)}, status, $3,
           CASE WHEN self_approved THEN $3::uuid END, CASE WHEN self_approved THEN now() END
    FROM admitted
    RETURNING v.*
), updated AS (
    UPDATE registrations AS r SET
        {", ".join(f"{field} = v.{field}" for field in columns.CONTENT)},
        revision = v.revision, status = v.status, approver_id = v.decided_by, approved_at = v.decided_at,
        status_reason = NULL
    FROM revision AS v WHERE r.registration_id = v.registration_id AND v.status = 'Pending'
    RETURNING {columns.latest()}
), published AS (
    UPDATE registrations AS r SET
        {", ".join(f"{field} = v.{field}" for field in columns.CONTENT)},
        revision = v.revision, status = v.status, approver_id = v.decided_by, approved_at = v.decided_at,
        status_reason = NULL, {columns.publish_from("v")}
    FROM revision AS v WHERE r.registration_id = v.registration_id AND v.status = 'Approved'
    RETURNING {columns.latest()}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT a.registration_id, $3, 'Updated', a.previous_status, a.status, a.revision, {_changes("t", "a")}
    FROM admitted AS a CROSS JOIN target AS t
    UNION ALL
    SELECT a.registration_id, $3, 'Approved', a.previous_status, a.status, a.revision, {columns.decided_metadata("a")}
    FROM admitted AS a WHERE a.self_approved
)
SELECT t.may_edit, t.current, t.namespace_ok, t.published_revision IS NOT NULL AS public,
       t.endpoint_url AS stored_url, t.server_name AS stored_name, changed.*
FROM checked AS t
LEFT JOIN (SELECT * FROM updated UNION ALL SELECT * FROM published) AS changed ON true
"""


@dataclass(frozen=True, slots=True)
class Namespacing:
    """What an edit's statement must check of the namespace rule, where one side is stored."""

    allowed: list[str] | None = None
    host_pattern: str | None = None


def _namespacing(actor: Actor, data: RegistrationUpdate) -> Namespacing:
    given = data.model_fields_set
    if actor.is_admin or not given & {"endpoint_url", "server_name"}:
        return Namespacing()
    if data.endpoint_url is not None and data.server_name is not None:
        namespaces.check(data.server_name, data.endpoint_url)
        return Namespacing()
    if data.endpoint_url is not None:
        return Namespacing(allowed=namespaces.namespaces_for(data.endpoint_url))
    assert data.server_name is not None
    return Namespacing(host_pattern=namespaces.host_pattern(data.server_name))


async def update(*, db: Database, actor: Actor, registration_id: UUID, data: RegistrationUpdate,
                 if_match: int | None, review: ReviewSettings) -> asyncpg.Record:
    namespacing = _namespacing(actor, data)
    values: list[Any] = []
    for field in columns.CONTENT:
        values += [field in data.model_fields_set, getattr(data, field)]
    try:
        row = await db.fetchrow(
            _UPDATE, registration_id, actor.is_admin, actor.user_id, if_match, review.max_pending_per_user,
            review.allow_self_approval, *values, namespacing.allowed, namespacing.host_pattern,
        )
    except asyncpg.UniqueViolationError as error:
        raise columns.conflict(error) from None
    if row is None:
        raise NotFound(NOT_FOUND)
    if not row["may_edit"]:
        if row["public"]:
            raise Forbidden("Only the submitter or an administrator may change this registration.")
        raise NotFound(NOT_FOUND)
    if not row["current"]:
        raise PreconditionFailed(STALE)
    if not row["namespace_ok"]:
        raise namespaces.refusal(data.server_name or row["stored_name"], data.endpoint_url or row["stored_url"])
    if row["registration_id"] is None:
        raise too_many_pending(review)
    return row


# $1 id, $2 caller, $3 decision, $4 reason, $5 the revision named, $6 self-approval allowed.
# `own_edit`: the caller submitted a revision since the published one (or any, while none is), so
# what they wrote rides along in the latest; `swapped`: the revision before the latest was replaced
# by an edit before anyone decided it (or is being replaced: a statement that waited for the lock
# may still see it Pending), so a reviewer who named no revision may have seen that older one.
_DECIDE = f"""
WITH target AS (
    SELECT registration_id, revision, status, published_revision FROM registrations
    WHERE registration_id = $1 AND deleted_at IS NULL
    FOR UPDATE
), checked AS (
    SELECT t.*,
        EXISTS (SELECT 1 FROM registration_revisions AS v
                WHERE v.registration_id = t.registration_id AND v.revision > coalesce(t.published_revision, 0)
                  AND v.submitted_by = $2) AS own_edit,
        EXISTS (SELECT 1 FROM registration_revisions AS v
                WHERE v.registration_id = t.registration_id AND v.revision = t.revision - 1
                  AND v.status IN ('Superseded', 'Pending')) AS swapped,
        -- The surface the reviewer saw, when they name it: the latest ok probe of the revision must
        -- still have it, or a re-probe between review and decision would become the baseline.
        $7::text IS NOT NULL AND $7 IS DISTINCT FROM (
            SELECT p.tools_hash FROM probes AS p
            WHERE p.registration_id = t.registration_id AND p.revision = t.revision AND p.outcome = 'ok'
            ORDER BY p.checked_at DESC, p.probe_id DESC LIMIT 1) AS surface_changed
    FROM target AS t
), decided AS (
    UPDATE registration_revisions AS v SET status = $3, decided_by = $2, decided_at = now(), reason = $4
    FROM checked AS t
    WHERE v.registration_id = t.registration_id AND v.revision = t.revision AND v.status = 'Pending'
      AND t.status = 'Pending' AND ($5::integer IS NULL OR $5 = t.revision) AND ($6 OR NOT t.own_edit)
      AND ($5::integer IS NOT NULL OR NOT t.swapped) AND NOT t.surface_changed
    RETURNING v.*
), updated AS (
    UPDATE registrations AS r SET status = v.status, approver_id = v.decided_by, approved_at = v.decided_at,
        status_reason = v.reason
    FROM decided AS v WHERE r.registration_id = v.registration_id AND v.status = 'Rejected'
    RETURNING {columns.latest()}
), published AS (
    UPDATE registrations AS r SET status = v.status, approver_id = v.decided_by, approved_at = v.decided_at,
        status_reason = v.reason, {columns.publish_from("v")}
    FROM decided AS v WHERE r.registration_id = v.registration_id AND v.status = 'Approved'
    RETURNING {columns.latest()}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, $2, status, 'Pending', status, revision,
           {columns.decided_metadata("decided")}
           || CASE WHEN $4::text IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('reason', $4::text) END
    FROM decided
)
SELECT t.revision AS found_revision, t.status AS found_status, t.own_edit, t.swapped, t.surface_changed, changed.*
FROM checked AS t
LEFT JOIN (SELECT * FROM updated UNION ALL SELECT * FROM published) AS changed ON true
"""

NAME_THE_REVISION = 'Name the revision you reviewed: send If-Match: "<revision>" or "revision" in the body.'
SWAPPED = ("An edit replaced the pending revision since the last decision, so the one you reviewed may not be the "
           'latest: send the ETag you reviewed as If-Match (If-Match: "<revision>"), or its number as "revision" '
           "in the body.")
SURFACE_CHANGED = ("The revision's latest ok probe no longer has the tools_hash named: the server answered "
                   "differently since you reviewed it; review its latest probe and decide again.")
OWN_EDIT = ("An administrator may not decide a revision they submitted, nor one that carries their own edit (a "
            "revision they submitted since the published one); ask another administrator.")


def named_revision(change: StatusChange, if_match: int | None, review: ReviewSettings) -> int | None:
    """The revision a decision is about: If-Match and the body must agree; one is required where configured."""
    if if_match is not None and change.revision is not None and if_match != change.revision:
        raise PreconditionFailed("If-Match and the body's revision name different revisions.")
    named = if_match if if_match is not None else change.revision
    if named is None and review.require_match:
        raise PreconditionRequired(NAME_THE_REVISION)
    return named


async def decide(*, db: Database, actor: Actor, registration_id: UUID, change: StatusChange, if_match: int | None,
                 review: ReviewSettings) -> asyncpg.Record:
    named = named_revision(change, if_match, review)
    try:
        row = await db.fetchrow(_DECIDE, registration_id, actor.user_id, change.status, change.reason, named,
                                review.allow_self_approval, change.tools_hash)
    except asyncpg.UniqueViolationError as error:
        raise columns.conflict(error) from None
    if row is None:
        raise NotFound(NOT_FOUND)
    if row["registration_id"] is not None:
        return row
    if named is not None and named != row["found_revision"]:
        raise PreconditionFailed(STALE)
    if row["found_status"] == "Pending":
        if row["own_edit"] and not review.allow_self_approval:
            raise Forbidden(OWN_EDIT)
        if named is None and row["swapped"]:
            raise PreconditionRequired(SWAPPED)
        if row["surface_changed"]:
            raise PreconditionFailed(SURFACE_CHANGED)
    raise Conflict("Only a Pending registration can be approved or rejected; this one was already decided.")


# One statement: the registration and, when the caller may read them, its revisions (or one).
_REVISIONS = """
SELECT r.submitter_id AS owner, r.published_revision AS public_revision, v.*
FROM registrations AS r
LEFT JOIN registration_revisions AS v ON v.registration_id = r.registration_id AND ($2 OR r.submitter_id = $3)
    AND ($4::integer IS NULL OR v.revision = $4)
WHERE r.registration_id = $1 AND r.deleted_at IS NULL
ORDER BY v.revision
"""


async def revisions(*, db: Database, actor: Actor, registration_id: UUID,
                    revision: int | None = None) -> list[asyncpg.Record]:
    rows = await db.fetch(_REVISIONS, registration_id, actor.is_admin, actor.user_id, revision)
    if not rows:
        raise NotFound(NOT_FOUND)
    if not actor.is_admin and rows[0]["owner"] != actor.user_id:
        if rows[0]["public_revision"] is not None:
            raise Forbidden("Only the submitter or an administrator may read the revisions.")
        raise NotFound(NOT_FOUND)
    found = [row for row in rows if row["revision"] is not None]
    if revision is not None and not found:
        raise NotFound("Revision not found.")
    return found
