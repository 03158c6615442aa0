"""SQL of publication: publish an earlier approved revision again, deprecate or reactivate.

Like every write, each statement locks the registration row first and writes its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from uuid import UUID

import asyncpg

from shared.db import Database
from shared.errors import Conflict, NotFound
from shared.policy import NOT_FOUND
from shared.schemas.registrations import RegistrationPublic
from shared.schemas.revisions import PublicationChange
from shared.services import columns
from shared.services.registrations import Actor
from shared.sql import Statement

# :revision the revision to publish again.
_PUBLISH = Statement(f"""
WITH target AS (
    SELECT registration_id, status, published_revision FROM registrations
    WHERE registration_id = :registration_id AND deleted_at IS NULL FOR UPDATE
), chosen AS (
    SELECT v.* FROM registration_revisions AS v JOIN target AS t USING (registration_id) WHERE v.revision = :revision
), published AS (
    UPDATE registrations AS r SET {columns.publish_from("v")}
    FROM chosen AS v WHERE r.registration_id = v.registration_id AND v.status = 'Approved'
    RETURNING {columns.latest()}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT v.registration_id, :user_id, 'Published', t.status, t.status, v.revision,
           {columns.decided_metadata("v")} || jsonb_build_object('previous_revision', t.published_revision)
    FROM chosen AS v CROSS JOIN target AS t WHERE v.status = 'Approved'
)
SELECT chosen.status AS revision_status, published.*
FROM target LEFT JOIN chosen ON true LEFT JOIN published ON true
""")


class Publication(Enum):
    PUBLISHED = "published"      # the feed serves the revision named from now on
    DEPRECATED = "deprecated"
    REACTIVATED = "reactivated"


@dataclass(frozen=True, slots=True)
class Published:
    outcome: Publication
    registration: RegistrationPublic


def _published(row: asyncpg.Record | None, *, revision: int) -> Published:
    """What the rollback's statement answered: the outcome, or the domain error it means."""
    if row is None:
        raise NotFound(NOT_FOUND)
    if row["revision_status"] is None:
        raise NotFound("Revision not found.")
    if row["registration_id"] is None:
        raise Conflict(f"Revision {revision} was never approved; only an approved revision can be published.")
    return Published(Publication.PUBLISHED, columns.registration(row))


async def publish(*, db: Database, actor: Actor, registration_id: UUID, revision: int) -> Published:
    """Writes: `registrations` (the published copy), `registration_claims` (a trigger), `audit_log` (`Published`)."""
    try:
        row = await db.fetchrow(_PUBLISH.sql, *_PUBLISH(registration_id=registration_id, user_id=actor.user_id,
                                                        revision=revision))
    except asyncpg.UniqueViolationError as error:
        raise columns.conflict(error) from None
    return _published(row, revision=revision)


# :publication and :message as asked. While a drift withdrawal of the published revision
# stands (DRIFT_POLICY=withdraw deprecated it), making it active again is accepting the drift, which
# takes another administrator and names the probe reviewed: only `…/attestation/accept` does that.
# The attestation row is locked after the registration (the order every drift statement takes), so
# a withdrawal recorded while this statement waited is seen.
_PUBLICATION = Statement(f"""
WITH target AS (
    SELECT registration_id, published_revision FROM registrations
    WHERE registration_id = :registration_id AND deleted_at IS NULL FOR UPDATE
), withdrawal AS (
    SELECT a.registration_id FROM attestations AS a JOIN target AS t USING (registration_id)
    WHERE a.drift_withdrawn AND a.baseline_revision = t.published_revision FOR UPDATE OF a
), updated AS (
    UPDATE registrations AS r SET publication = :publication, publication_message = :message,
        published_updated_at = now()
    FROM target AS t WHERE r.registration_id = t.registration_id AND r.published_revision IS NOT NULL
      AND (:publication = 'deprecated' OR NOT EXISTS (SELECT 1 FROM withdrawal))
    RETURNING {columns.latest()}
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, :user_id, CASE WHEN :publication = 'deprecated' THEN 'Deprecated' ELSE 'Reactivated' END,
           status, status, published_revision,
           CASE WHEN :message::text IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('message', :message::text) END
    FROM updated
)
SELECT t.published_revision IS NOT NULL AS published, EXISTS (SELECT 1 FROM withdrawal) AS withdrawn, updated.*
FROM target AS t LEFT JOIN updated ON true
""")

WITHDRAWN = ("The registry withdrew this server because its tools drifted from what was approved; it becomes active "
             "again only when another administrator accepts the drift (POST …/attestation/accept naming the probe "
             "reviewed).")


def _set(row: asyncpg.Record | None, *, change: PublicationChange) -> Published:
    """What the publication statement answered: the outcome, or the domain error it means."""
    if row is None:
        raise NotFound(NOT_FOUND)
    if row["registration_id"] is None:
        if row["published"] and row["withdrawn"]:
            raise Conflict(WITHDRAWN)
        raise Conflict("Nothing of this registration is published yet; approve a revision first.")
    outcome = Publication.DEPRECATED if change.publication == "deprecated" else Publication.REACTIVATED
    return Published(outcome, columns.registration(row))


async def set_publication(*, db: Database, actor: Actor, registration_id: UUID,
                          change: PublicationChange) -> Published:
    """Writes: `registrations` (`publication`, its message), `audit_log` (`Deprecated` or `Reactivated`)."""
    row = await db.fetchrow(_PUBLICATION.sql, *_PUBLICATION(registration_id=registration_id, user_id=actor.user_id,
                                                            publication=change.publication, message=change.message))
    return _set(row, change=change)
