"""All SQL of attestation probes: what to probe, the results, and the due-work queue.

A probe talks to the network, so it never runs inside a statement or a transaction: a request
reads what to probe (one statement), probes, then writes the result (one statement, which also
moves the registration's place in the queue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID

import asyncpg

from shared.config import DriftPolicy
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, TooManyRequests
from shared.services import drift
from shared.services.registrations import Actor

if TYPE_CHECKING:  # the probe package loads only where a probe runs
    from shared.probe.result import ProbeResult

Trigger = Literal["requested", "queued", "scheduled"]
PROBE_COLUMNS = """probe_id, registration_id, revision, checked_at, outcome, duration_ms, protocol_version,
    server_info, instructions, tools, prompts, resources, tools_hash, findings, error, auth"""

# The tool names live registrations exposed in the latest `ok` probe of their published revision.
_PUBLISHED_TOOLS = """
SELECT latest.registration_id, latest.server_name, tool->>'name' AS name
FROM (
    SELECT DISTINCT ON (p.registration_id) p.registration_id, r.published_server_name AS server_name, p.tools
    FROM probes p JOIN registrations r ON r.registration_id = p.registration_id
    WHERE p.outcome = 'ok' AND p.revision = r.published_revision AND r.deleted_at IS NULL
    ORDER BY p.registration_id, p.checked_at DESC
) latest, jsonb_array_elements(latest.tools) tool
"""
_KNOWN_TOOLS = f"""
SELECT coalesce(jsonb_object_agg(known.name, known.server_name), '{{}}')
FROM ({_PUBLISHED_TOOLS}) known WHERE known.registration_id <> $1
"""

# A probe asked for through the API: the target, and the reservation of the one-a-minute slot in
# the same statement (only for a caller who may ask, only while probing is on), so that racing
# requests cannot both pass. The outer SELECT sees the queue row as it was before the reservation.
_REQUEST = f"""
WITH r AS (
    SELECT registration_id, endpoint_url, transport, available_tools, revision,
           published_revision IS NOT NULL AS public, submitter_id
    FROM registrations WHERE registration_id = $1 AND deleted_at IS NULL
), reserved AS (
    INSERT INTO probe_queue (registration_id, requested_at)
    SELECT registration_id, now() FROM r WHERE $4 AND ($2 OR r.submitter_id = $3)
    ON CONFLICT (registration_id) DO UPDATE SET requested_at = excluded.requested_at
    WHERE probe_queue.requested_at IS NULL OR probe_queue.requested_at <= now() - make_interval(secs => $5)
    RETURNING registration_id
), attested AS (
    {drift.ATTESTED.format(source="reserved")}
)
SELECT r.*, now() AS now,
       (SELECT requested_at FROM probe_queue q WHERE q.registration_id = r.registration_id) AS last_requested,
       EXISTS (SELECT 1 FROM reserved) AS reserved,
       CASE WHEN EXISTS (SELECT 1 FROM reserved) THEN ({_KNOWN_TOOLS}) END AS known_tools
FROM r
"""

_RECORD = drift.record_statement(probe_columns=PROBE_COLUMNS)

# A batch of due registrations, leased to this worker; rows another worker holds are skipped.
_CLAIM = f"""
WITH due AS (
    SELECT q.registration_id FROM probe_queue q
    WHERE q.due_at <= $1 AND (q.claimed_until IS NULL OR q.claimed_until < now())
    ORDER BY q.due_at, q.registration_id
    LIMIT $2
    FOR UPDATE OF q SKIP LOCKED
), leased AS (
    UPDATE probe_queue q SET claimed_until = now() + make_interval(secs => $3)
    FROM due WHERE q.registration_id = due.registration_id
    RETURNING q.registration_id, q.queued
), attested AS (
    {drift.ATTESTED.format(source="leased")}
)
-- A queued registration is probed at its new (latest) revision; the round re-probes the published one.
SELECT r.registration_id, probed.*
FROM leased JOIN registrations r ON r.registration_id = leased.registration_id
CROSS JOIN LATERAL (
    SELECT r.endpoint_url, r.transport, r.available_tools, r.revision, leased.queued
    WHERE leased.queued OR r.published_revision IS NULL
    UNION ALL
    SELECT r.published_endpoint_url, r.published_transport, r.published_available_tools, r.published_revision,
           false
    WHERE NOT leased.queued AND r.published_revision IS NOT NULL
) AS probed
WHERE r.deleted_at IS NULL
"""

_PROBES = f"""
SELECT r.published_revision IS NOT NULL AS public, r.submitter_id, p.*
FROM registrations r
LEFT JOIN LATERAL (
    SELECT {PROBE_COLUMNS} FROM probes
    WHERE registration_id = r.registration_id AND ($2 OR r.submitter_id = $3)
    ORDER BY checked_at DESC, probe_id DESC
    LIMIT $4 OFFSET $5
) p ON true
WHERE r.registration_id = $1 AND r.deleted_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class Target:
    registration_id: UUID
    endpoint_url: str
    transport: Literal["streamable-http", "sse"]
    declared_tools: list[str]
    revision: int
    known_tools: dict[str, str]
    trigger: Trigger = "scheduled"


def _check_reader(actor: Actor, public: bool, submitter_id: UUID) -> None:
    """Probes are visible like the audit trail: to administrators and the submitter."""
    if actor.is_admin or submitter_id == actor.user_id:
        return
    if public:
        raise Forbidden("Only the submitter or an administrator may read or ask for probes.")
    raise NotFound("Registration not found.")


async def request(*, db: Database, actor: Actor, registration_id: UUID, enabled: bool, interval: float) -> Target:
    """What to probe for `POST .../probe`, with its one-a-minute slot reserved."""
    row = await db.fetchrow(_REQUEST, registration_id, actor.is_admin, actor.user_id, enabled, interval)
    if row is None:
        raise NotFound("Registration not found.")
    _check_reader(actor, row["public"], row["submitter_id"])
    if not enabled:
        raise Conflict("Probing is off: PROBE_SCHEDULE is not set.")
    if not row["reserved"]:
        waited = (row["now"] - row["last_requested"]).total_seconds()
        raise TooManyRequests("A probe of this registration was asked for less than a minute ago.",
                              retry_after=max(1, math.ceil(interval - waited)))
    return Target(registration_id=registration_id, endpoint_url=row["endpoint_url"], transport=row["transport"],
                  declared_tools=list(row["available_tools"]), revision=row["revision"],
                  known_tools=dict(row["known_tools"]), trigger="requested")


# What a withdrawn server's entry says in the feed (DRIFT_POLICY=withdraw).
WITHDRAWN_MESSAGE = ("Withdrawn by the registry: the server's tools changed after approval; "
                     "an administrator must review them.")


async def record(*, db: Database, target: Target, result: ProbeResult, drift_policy: DriftPolicy,
                 requested_by: UUID | None = None) -> asyncpg.Record:
    """Store a probe and apply it to the registration's attestation (drift included), in one statement."""
    row = await db.fetchrow(
        _RECORD, target.registration_id, target.revision, target.trigger, requested_by, result.checked_at,
        result.outcome, result.duration_ms, result.protocol_version, result.server_info, result.instructions,
        result.tools, result.prompts, result.resources, result.tools_hash,
        [finding.as_json() for finding in result.findings], result.error, result.auth, drift_policy,
        WITHDRAWN_MESSAGE)
    assert row is not None
    return row


async def claim(*, db: Database, round_started: datetime, batch: int, lease_seconds: float) -> list[Target]:
    """Due registrations (least recently checked first), leased so no other worker takes them."""
    rows = await db.fetch(_CLAIM, round_started, batch, lease_seconds)
    if not rows:
        return []
    # The round reads every published server's tools once; a registration is not its own shadow.
    published = await db.fetch(_PUBLISHED_TOOLS)
    return [Target(registration_id=row["registration_id"], endpoint_url=row["endpoint_url"],
                   transport=row["transport"], declared_tools=list(row["available_tools"]),
                   revision=row["revision"], trigger="queued" if row["queued"] else "scheduled",
                   known_tools={tool["name"]: tool["server_name"] for tool in published
                                if tool["registration_id"] != row["registration_id"]}) for row in rows]


async def page(*, db: Database, actor: Actor, registration_id: UUID, limit: int, offset: int,
               ) -> list[asyncpg.Record]:
    rows = await db.fetch(_PROBES, registration_id, actor.is_admin, actor.user_id, limit, offset)
    if not rows:
        raise NotFound("Registration not found.")
    _check_reader(actor, rows[0]["public"], rows[0]["submitter_id"])
    return [row for row in rows if row["probe_id"] is not None]
