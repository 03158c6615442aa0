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
from enum import Enum
from typing import Any
from uuid import UUID

import asyncpg

from shared import policy
from shared.config import ReviewSettings
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, PreconditionRequired
from shared.policy import NOT_FOUND
from shared.schemas.registrations import RegistrationPublic, RegistrationUpdate, StatusChange
from shared.services import columns, namespaces
from shared.services.registrations import Actor, too_many_pending
from shared.sql import Statement

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
# Each content field's new value where the edit gives it (`:given_<field>`), else the stored one.
_NEXT = ", ".join(f"CASE WHEN :given_{field} THEN :{field} ELSE t.{field} END AS {field}" for field in columns.CONTENT)

# :if_match the revision named, :max_pending the pending cap, :allowed_namespaces those a new URL
# allows (the stored name must be in one), :host_pattern the pattern a new name's namespace gives
# (the stored URL's host must match it).
_UPDATE = Statement(f"""
WITH target AS (
    SELECT * FROM registrations WHERE registration_id = :registration_id AND deleted_at IS NULL FOR UPDATE
), checked AS (
    SELECT t.*, {policy.owner_or_admin("t")} AS may_edit,
        (:if_match::integer IS NULL OR :if_match = t.revision) AS current,
        (:allowed_namespaces::text[] IS NULL
         OR lower(split_part(t.server_name, '/', 1)) = ANY(:allowed_namespaces::text[]))
        AND (:host_pattern::text IS NULL OR {_STORED_HOST} ~ :host_pattern)
            AS namespace_ok,
        {policy.self_approves("t")} AS self_approved
    FROM target AS t
), proposed AS (
    SELECT t.registration_id, t.submitter_id, t.revision + 1 AS revision, t.status AS previous_status,
           t.self_approved, {_NEXT},
           CASE WHEN t.self_approved THEN 'Approved' ELSE 'Pending' END AS status
    FROM checked AS t WHERE t.may_edit AND t.current AND t.namespace_ok
), queued AS (
    INSERT INTO review_queue AS q (submitter_id)
    SELECT submitter_id FROM proposed WHERE status = 'Pending' AND previous_status <> 'Pending'
    ON CONFLICT (submitter_id) DO UPDATE SET pending = q.pending WHERE q.pending < :max_pending
    RETURNING submitter_id
), admitted AS (
    SELECT * FROM proposed
    WHERE NOT (status = 'Pending' AND previous_status <> 'Pending') OR EXISTS (SELECT 1 FROM queued)
), revision AS (
    INSERT INTO registration_revisions AS v (registration_id, revision, {", ".join(columns.CONTENT)}, status,
                                             submitted_by, decided_by, decided_at)
    SELECT registration_id, revision, {", ".join(columns.CONTENT)}, status, :user_id,
           CASE WHEN self_approved THEN :user_id::uuid END, CASE WHEN self_approved THEN now() END
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
    SELECT a.registration_id, :user_id, 'Updated', a.previous_status, a.status, a.revision, {_changes("t", "a")}
    FROM admitted AS a CROSS JOIN target AS t
    UNION ALL
    SELECT a.registration_id, :user_id, 'Approved', a.previous_status, a.status, a.revision,
           {columns.decided_metadata("a")}
    FROM admitted AS a WHERE a.self_approved
)
SELECT t.submitter_id AS owner, t.current, t.namespace_ok, t.published_revision IS NOT NULL AS public,
       t.endpoint_url AS stored_url, t.server_name AS stored_name, changed.*
FROM checked AS t
LEFT JOIN (SELECT * FROM updated UNION ALL SELECT * FROM published) AS changed ON true
""")


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


class Edit(Enum):
    UPDATED = "updated"              # a new Pending revision
    SELF_APPROVED = "self_approved"  # approved and published at once (REVIEW_ALLOW_SELF_APPROVAL)


@dataclass(frozen=True, slots=True)
class Edited:
    outcome: Edit
    registration: RegistrationPublic


EDIT_FORBIDDEN = "Only the submitter or an administrator may change this registration."


def _edited(row: asyncpg.Record | None, *, actor: Actor, data: RegistrationUpdate,
            review: ReviewSettings) -> Edited:
    """What the edit's statement answered: the outcome, or the domain error it means."""
    if row is None:
        raise NotFound(NOT_FOUND)
    policy.full_access(actor, submitter_id=row["owner"], public=row["public"], forbidden=EDIT_FORBIDDEN)
    if not row["current"]:
        raise PreconditionFailed(STALE)
    if not row["namespace_ok"]:
        raise namespaces.refusal(data.server_name or row["stored_name"], data.endpoint_url or row["stored_url"])
    if row["registration_id"] is None:
        raise too_many_pending(review)
    return Edited(Edit.SELF_APPROVED if row["status"] == "Approved" else Edit.UPDATED, columns.registration(row))


async def update(*, db: Database, actor: Actor, registration_id: UUID, data: RegistrationUpdate,
                 if_match: int | None, review: ReviewSettings) -> Edited:
    """Writes: `registration_revisions` (the new revision; the one it supersedes, a trigger), `registrations` (the
    latest copy, and the published one when self-approved), `review_queue`, `registration_claims` (a trigger),
    `audit_log` (`Updated`, and `Approved` when self-approved)."""
    namespacing = _namespacing(actor, data)
    values: dict[str, Any] = {}
    for field in columns.CONTENT:
        values[f"given_{field}"], values[field] = field in data.model_fields_set, getattr(data, field)
    try:
        row = await db.fetchrow(_UPDATE.sql, *_UPDATE(
            registration_id=registration_id, is_admin=actor.is_admin, user_id=actor.user_id, if_match=if_match,
            max_pending=review.max_pending_per_user, allow_self_approval=review.allow_self_approval,
            allowed_namespaces=namespacing.allowed, host_pattern=namespacing.host_pattern, **values))
    except asyncpg.UniqueViolationError as error:
        raise columns.conflict(error) from None
    return _edited(row, actor=actor, data=data, review=review)


# :named the revision named (or null); :tools_hash the surface the reviewer saw (or null).
# `own_edit`: the caller submitted a revision since the published one (or any, while none is), so
# what they wrote rides along in the latest; `swapped`: the revision before the latest was replaced
# by an edit before anyone decided it (or is being replaced: a statement that waited for the lock
# may still see it Pending), so a reviewer who named no revision may have seen that older one.
_DECIDE = Statement(f"""
WITH target AS (
    SELECT registration_id, revision, status, published_revision FROM registrations
    WHERE registration_id = :registration_id AND deleted_at IS NULL
    FOR UPDATE
), checked AS (
    SELECT t.*,
        EXISTS (SELECT 1 FROM registration_revisions AS v
                WHERE v.registration_id = t.registration_id AND v.revision > coalesce(t.published_revision, 0)
                  AND v.submitted_by = :user_id) AS own_edit,
        EXISTS (SELECT 1 FROM registration_revisions AS v
                WHERE v.registration_id = t.registration_id AND v.revision = t.revision - 1
                  AND v.status IN ('Superseded', 'Pending')) AS swapped,
        -- The surface the reviewer saw, when they name it: the latest ok probe of the revision must
        -- still have it, or a re-probe between review and decision would become the baseline.
        :tools_hash::text IS NOT NULL AND :tools_hash IS DISTINCT FROM (
            SELECT p.tools_hash FROM probes AS p
            WHERE p.registration_id = t.registration_id AND p.revision = t.revision AND p.outcome = 'ok'
            ORDER BY p.checked_at DESC, p.probe_id DESC LIMIT 1) AS surface_changed
    FROM target AS t
), decided AS (
    UPDATE registration_revisions AS v SET status = :decision, decided_by = :user_id, decided_at = now(),
        reason = :reason
    FROM checked AS t
    WHERE v.registration_id = t.registration_id AND v.revision = t.revision AND v.status = 'Pending'
      AND t.status = 'Pending' AND (:named::integer IS NULL OR :named = t.revision)
      AND {policy.four_eyes("t.own_edit", waivable=True)}
      AND (:named::integer IS NOT NULL OR NOT t.swapped) AND NOT t.surface_changed
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
    SELECT registration_id, :user_id, status, 'Pending', status, revision,
           {columns.decided_metadata("decided")}
           || CASE WHEN :reason::text IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('reason', :reason::text) END
    FROM decided
)
SELECT t.revision AS found_revision, t.status AS found_status, t.own_edit, t.swapped, t.surface_changed, changed.*
FROM checked AS t
LEFT JOIN (SELECT * FROM updated UNION ALL SELECT * FROM published) AS changed ON true
""")

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


class Decision(Enum):
    APPROVED = "Approved"  # and published
    REJECTED = "Rejected"  # the published revision, if any, stays live


@dataclass(frozen=True, slots=True)
class Decided:
    outcome: Decision
    registration: RegistrationPublic


ALREADY_DECIDED = "Only a Pending registration can be approved or rejected; this one was already decided."


def _decided(row: asyncpg.Record | None, *, named: int | None, review: ReviewSettings) -> Decided:
    """What the decision's statement answered: the outcome, or the domain error it means (in this order)."""
    if row is None:
        raise NotFound(NOT_FOUND)
    if row["registration_id"] is not None:
        return Decided(Decision(row["status"]), columns.registration(row))
    if named is not None and named != row["found_revision"]:
        raise PreconditionFailed(STALE)
    if row["found_status"] == "Pending":
        if row["own_edit"] and not review.allow_self_approval:
            raise Forbidden(OWN_EDIT)
        if named is None and row["swapped"]:
            raise PreconditionRequired(SWAPPED)
        if row["surface_changed"]:
            raise PreconditionFailed(SURFACE_CHANGED)
    raise Conflict(ALREADY_DECIDED)


async def decide(*, db: Database, actor: Actor, registration_id: UUID, change: StatusChange, if_match: int | None,
                 review: ReviewSettings) -> Decided:
    """Writes: `registration_revisions` (the decision), `registrations` (its status; the published copy on an
    approval), `review_queue` and `registration_claims` (triggers), `audit_log` (`Approved` or `Rejected`)."""
    named = named_revision(change, if_match, review)
    try:
        row = await db.fetchrow(_DECIDE.sql, *_DECIDE(
            registration_id=registration_id, user_id=actor.user_id, decision=change.status, reason=change.reason,
            named=named, allow_self_approval=review.allow_self_approval, tools_hash=change.tools_hash))
    except asyncpg.UniqueViolationError as error:
        raise columns.conflict(error) from None
    return _decided(row, named=named, review=review)


# One statement: the registration and, when the caller may read them, its revisions (or one).
_REVISIONS = Statement(f"""
SELECT r.submitter_id AS owner, r.published_revision AS public_revision, v.*
FROM registrations AS r
LEFT JOIN registration_revisions AS v ON v.registration_id = r.registration_id AND {policy.OWNER_OR_ADMIN}
    AND (:revision::integer IS NULL OR v.revision = :revision)
WHERE r.registration_id = :registration_id AND r.deleted_at IS NULL
ORDER BY v.revision
""")


async def revisions(*, db: Database, actor: Actor, registration_id: UUID,
                    revision: int | None = None) -> list[asyncpg.Record]:
    rows = await db.fetch(_REVISIONS.sql, *_REVISIONS(registration_id=registration_id, is_admin=actor.is_admin,
                                                      user_id=actor.user_id, revision=revision))
    if not rows:
        raise NotFound(NOT_FOUND)
    policy.full_access(actor, submitter_id=rows[0]["owner"], public=rows[0]["public_revision"] is not None,
                       forbidden="Only the submitter or an administrator may read the revisions.")
    found = [row for row in rows if row["revision"] is not None]
    if revision is not None and not found:
        raise NotFound("Revision not found.")
    return found
