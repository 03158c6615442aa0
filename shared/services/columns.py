"""SQL fragments shared by the registration statements: what a registration answers with, to whom.

A registration row holds its latest revision in the plain columns and a copy of its published
revision in the `published_*` columns (sql/migrations/0003_revisions.sql). The submitter and
administrators read the former; everyone else reads the latter, with status `Approved`, so
nothing reveals that an edit is waiting.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.errors import Conflict
from shared.schemas.registrations import RegistrationPublic

# The body fields a revision holds.
CONTENT = ("endpoint_url", "endpoint_name", "description", "owner_contact", "available_tools", "server_name",
           "transport", "version")
# Response fields that differ between the latest and the published view, and where the published one is.
_VIEWED = {
    **{field: f"published_{field}" for field in CONTENT},
    "approver_id": "published_approver_id",
    "approved_at": "published_approved_at",
    "status_reason": "published_status_reason",
    "updated_at": "published_updated_at",
    "revision": "published_revision",
}
_SHARED = ("registration_id", "submitter_id", "created_at", "published_revision", "published_version", "publication",
           "publication_message")


def attestation_summary(full: str | None, alias: str = "r") -> str:
    """`attestation`: the summary of the latest probe (migration 0005's `attestations`), or null.

    Those who see the latest revision (`full` SQL, None: always) see the latest probe; those who
    see only the published revision see the latest probe of that revision, so that nothing tells
    them an edit is waiting. A scalar subquery, so that it fits in RETURNING too; a list applies it
    above its LIMIT/OFFSET, so it runs for the rows answered, never for those counted or skipped.
    """
    published = (f"CASE WHEN (a.latest->>'revision')::integer = {alias}.published_revision THEN a.latest "
                 f"WHEN (a.published->>'revision')::integer = {alias}.published_revision THEN a.published END")
    shown = "a.latest" if full is None else f"CASE WHEN {full} THEN a.latest ELSE {published} END"
    drifted = f"coalesce(a.drifted AND a.baseline_revision = {alias}.published_revision, false)"
    return (f"(SELECT {shown} || jsonb_build_object('drifted', {drifted}) FROM attestations AS a "
            f"WHERE a.registration_id = {alias}.registration_id)")


def latest(alias: str = "r", *, attestation: bool = True) -> str:
    """The registration as its submitter and administrators see it."""
    parts = [f"{alias}.{column}" for column in (*_SHARED, *_VIEWED, "status")]
    if attestation:
        parts.append(f"{attestation_summary(None, alias)} AS attestation")
    return ", ".join(parts)


def viewed_by(full: str, alias: str = "r", *, attestation: bool = True) -> str:
    """The registration as a caller sees it: the latest revision where `full` (SQL) holds, else the published."""
    parts = [f"{alias}.{column}" for column in _SHARED]
    parts += [f"CASE WHEN {full} THEN {alias}.{column} ELSE {alias}.{published} END AS {column}"
              for column, published in _VIEWED.items()]
    parts.append(f"CASE WHEN {full} THEN {alias}.status ELSE 'Approved' END AS status")
    if attestation:
        parts.append(f"{attestation_summary(full, alias)} AS attestation")
    return ", ".join(parts)


def registration(row: Any) -> RegistrationPublic:
    """The typed registration of a row selected with `latest` or `viewed_by`."""
    return RegistrationPublic.model_validate(dict(row))


def publish_from(revision: str) -> str:
    """SET assignments that publish the revision row `revision` (an alias with the revision columns)."""
    copies = [f"published_{field} = {revision}.{field}" for field in CONTENT]
    return ", ".join([
        f"published_revision = {revision}.revision", *copies,
        f"published_approver_id = {revision}.decided_by", f"published_approved_at = {revision}.decided_at",
        f"published_status_reason = {revision}.reason", "published_updated_at = now()",
        "published_at = coalesce(published_at, now())",
        # A deprecated registration stays deprecated; one published for the first time is active.
        "publication = coalesce(publication, 'active')",
    ])


def decided_metadata(revision: str) -> str:
    """What an Approved/Rejected/Published audit entry records of the revision it is about."""
    return (f"jsonb_build_object('endpoint_url', {revision}.endpoint_url, 'server_name', {revision}.server_name, "
            f"'version', {revision}.version)")


UNIQUE_FIELDS = {
    "registration_claims_endpoint_url": "endpoint_url",
    "registration_claims_server_name": "server_name",
}


def conflict(error: asyncpg.UniqueViolationError) -> Conflict:
    field = UNIQUE_FIELDS.get(getattr(error, "constraint_name", "") or "", "a unique field")
    return Conflict(f"A registration with this {field} already exists.")
