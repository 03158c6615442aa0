"""All SQL of attestation probes: what to probe, the results, and the due-work queue.

A probe talks to the network, so it never runs inside a statement or a transaction: a request
reads what to probe (one statement), probes, then writes the result (one statement, which also
moves the registration's place in the queue).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Literal
from uuid import UUID

import asyncpg

from shared import policy
from shared.config import DriftPolicy
from shared.db import Database
from shared.errors import Conflict, NotFound, TooManyRequests
from shared.policy import NOT_FOUND
from shared.schemas.attestation import ProbePublic
from shared.services import drift
from shared.services.registrations import Actor
from shared.sql import Statement

if TYPE_CHECKING:  # the probe package loads only where a probe runs
    from shared.probe.result import ProbeResult

logger = logging.getLogger(__name__)
Trigger = Literal["requested", "queued", "scheduled"]
PROBE_COLUMNS = """probe_id, registration_id, revision, checked_at, outcome, duration_ms, protocol_version,
    server_info, instructions, tools, prompts, resources, tools_hash, findings, error, auth, findings_omitted"""
# A probe in a list: what it found, counted, without the surface (a surface may be a megabyte).
SUMMARY_COLUMNS = f"""p.probe_id, p.registration_id, p.revision, p.checked_at, p.outcome, p.duration_ms,
    p.protocol_version, jsonb_array_length(p.tools) AS tool_count, p.tools_hash, p.error, p.findings_omitted,
    (SELECT jsonb_build_object({", ".join(f"'{level}', count(*) FILTER (WHERE f->>'severity' = '{level}')"
                                          for level in drift.SEVERITIES)})
     FROM jsonb_array_elements(p.findings) AS f) AS findings"""

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
FROM ({_PUBLISHED_TOOLS}) known WHERE known.registration_id <> :registration_id
"""

# A probe asked for through the API: the target, and the reservation of the one-a-minute slot in
# the same statement (only for a caller who may ask, only while probing is on), so that racing
# requests cannot both pass. The outer SELECT sees the queue row as it was before the reservation.
_REQUEST = Statement(f"""
WITH r AS (
    SELECT registration_id, endpoint_url, transport, available_tools, revision,
           published_revision IS NOT NULL AS public, submitter_id
    FROM registrations WHERE registration_id = :registration_id AND deleted_at IS NULL
), reserved AS (
    INSERT INTO probe_queue (registration_id, requested_at)
    SELECT registration_id, now() FROM r WHERE :enabled AND {policy.OWNER_OR_ADMIN}
    ON CONFLICT (registration_id) DO UPDATE SET requested_at = excluded.requested_at
    WHERE probe_queue.requested_at IS NULL
       OR probe_queue.requested_at <= now() - make_interval(secs => :interval)
    RETURNING registration_id
), attested AS (
    {drift.ATTESTED.format(source="reserved")}
)
SELECT r.*, now() AS now,
       (SELECT requested_at FROM probe_queue q WHERE q.registration_id = r.registration_id) AS last_requested,
       EXISTS (SELECT 1 FROM reserved) AS reserved,
       CASE WHEN EXISTS (SELECT 1 FROM reserved) THEN ({_KNOWN_TOOLS}) END AS known_tools
FROM r
""")

_RECORD = drift.record_statement(probe_columns=PROBE_COLUMNS)

# A batch of due registrations, leased to this worker; rows another worker holds are skipped.
_CLAIM = Statement(f"""
WITH due AS (
    SELECT q.registration_id FROM probe_queue q
    WHERE q.due_at <= :round_started AND (q.claimed_until IS NULL OR q.claimed_until < now())
    ORDER BY q.due_at, q.registration_id
    LIMIT :batch
    FOR UPDATE OF q SKIP LOCKED
), leased AS (
    UPDATE probe_queue q SET claimed_until = now() + make_interval(secs => :lease_seconds)
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
""")

# One page of a registration's probes (`columns` of probe row `p`), newest first, for a reader who
# may see them; the registration row alone (a NULL probe) when there are none.
_PAGE = f"""
SELECT r.published_revision IS NOT NULL AS public, r.submitter_id, page.*
FROM registrations r
LEFT JOIN LATERAL (
    SELECT {{columns}} FROM probes AS p
    WHERE p.registration_id = r.registration_id AND {policy.OWNER_OR_ADMIN}
    ORDER BY p.checked_at DESC, p.probe_id DESC
    LIMIT :limit OFFSET :offset
) page ON true
WHERE r.registration_id = :registration_id AND r.deleted_at IS NULL
"""
_PROBES = Statement(_PAGE.format(columns=", ".join(f"p.{column.strip()}" for column in PROBE_COLUMNS.split(","))))
_SUMMARIES = Statement(_PAGE.format(columns=SUMMARY_COLUMNS))
# One probe by id, like the page.
_PROBE = Statement(f"""
SELECT r.published_revision IS NOT NULL AS public, r.submitter_id, p.*
FROM registrations r
LEFT JOIN LATERAL (
    SELECT {PROBE_COLUMNS} FROM probes
    WHERE registration_id = r.registration_id AND probe_id = :probe_id AND {policy.OWNER_OR_ADMIN}
) p ON true
WHERE r.registration_id = :registration_id AND r.deleted_at IS NULL
""")

# Pruning: the probes of up to :batch registrations probed since they were last pruned, less those
# kept: the newest :history, the baseline's, the latest `ok` probe of the published revision (the next
# baseline, an acceptance and the shadowing rule read it), and those the audit trail names.
_PRUNE = Statement("""
WITH due AS (
    SELECT q.registration_id, q.last_checked_at FROM probe_queue q
    WHERE q.last_checked_at IS NOT NULL AND (q.pruned_at IS NULL OR q.last_checked_at > q.pruned_at)
    ORDER BY q.last_checked_at
    LIMIT :batch
    FOR UPDATE OF q SKIP LOCKED
), marked AS (
    UPDATE probe_queue q SET pruned_at = due.last_checked_at
    FROM due WHERE q.registration_id = due.registration_id
    RETURNING q.registration_id
), kept AS (
    SELECT newest.probe_id FROM marked AS m CROSS JOIN LATERAL (
        SELECT probe_id FROM probes WHERE registration_id = m.registration_id
        ORDER BY checked_at DESC, probe_id DESC LIMIT :history
    ) AS newest
    UNION
    SELECT CASE WHEN a.baseline->>'probe_id' ~ '^[0-9a-f-]{36}$' THEN (a.baseline->>'probe_id')::uuid END
    FROM attestations AS a JOIN marked AS m USING (registration_id)
    UNION
    SELECT ok.probe_id FROM marked AS m JOIN registrations AS r USING (registration_id) CROSS JOIN LATERAL (
        SELECT probe_id FROM probes
        WHERE registration_id = m.registration_id AND revision = r.published_revision AND outcome = 'ok'
        ORDER BY checked_at DESC, probe_id DESC LIMIT 1
    ) AS ok
    UNION
    SELECT CASE WHEN e.metadata->>k.key ~ '^[0-9a-f-]{36}$' THEN (e.metadata->>k.key)::uuid END
    FROM marked AS m JOIN audit_log AS e USING (registration_id)
    CROSS JOIN unnest(ARRAY['probe_id', 'baseline_probe_id', 'previous_probe_id']) AS k (key)
    WHERE e.action IN ('Drifted', 'DriftAccepted')
), pruned AS (
    DELETE FROM probes AS p USING marked AS m
    WHERE p.registration_id = m.registration_id
      AND p.probe_id NOT IN (SELECT probe_id FROM kept WHERE probe_id IS NOT NULL)
    RETURNING p.probe_id
)
SELECT (SELECT count(*) FROM marked) AS registrations, (SELECT count(*) FROM pruned) AS probes
""")

# A target whose probe could not be recorded at all: its lease ends and its next check waits
# :seconds, so it neither holds the head of the queue nor is probed again at once.
_DEFER = Statement("""
UPDATE probe_queue SET claimed_until = NULL, due_at = greatest(due_at, now() + make_interval(secs => :seconds))
WHERE registration_id = :registration_id
""")


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
    policy.full_access(actor, submitter_id=submitter_id, public=public,
                       forbidden="Only the submitter or an administrator may read or ask for probes.")


async def request(*, db: Database, actor: Actor, registration_id: UUID, enabled: bool, interval: float) -> Target:
    """What to probe for `POST .../probe`, with its one-a-minute slot reserved.

    Writes: `probe_queue` (`requested_at`), `attestations` (the row, made before the probe runs)."""
    row = await db.fetchrow(_REQUEST.sql, *_REQUEST(registration_id=registration_id, is_admin=actor.is_admin,
                                                    user_id=actor.user_id, enabled=enabled, interval=interval))
    if row is None:
        raise NotFound(NOT_FOUND)
    _check_reader(actor, row["public"], row["submitter_id"])
    if not enabled:
        raise Conflict("Probing is off: PROBE_ENABLED is not true.")
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


# What the database (or the driver, encoding an argument) refuses in a probe's values: bad text or
# JSON, a check, a size past a limit, a trigger's refusal. Outages and bugs are not among them.
UNSTORABLE = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError,
              asyncpg.RaiseError, ValueError, TypeError, RecursionError)


class Storage(Enum):
    STORED = "stored"      # as the endpoint answered (clipped to the caps)
    REFUSED = "refused"    # the database refused what it answered: stored as a failed probe instead


@dataclass(frozen=True, slots=True)
class Recorded:
    outcome: Storage
    probe: ProbePublic


async def record(*, db: Database, target: Target, result: ProbeResult, drift_policy: DriftPolicy,
                 requested_by: UUID | None = None) -> Recorded:
    """Store a probe and apply it to the registration's attestation (drift included), in one statement.

    A probe the database refuses is stored as what it is, a failed probe (`refused`, naming the
    refusal, nothing the endpoint sent), so the latest probe never silently stays an older one.

    Writes: `probes` (the probe), `attestations` (summaries, baseline, drift), `registrations` (`publication`, when
    `DRIFT_POLICY=withdraw` withdraws it), `audit_log` (`Drifted`), `probe_queue` (next due, lease, `last_checked_at`).
    """
    try:
        return Recorded(Storage.STORED, await _record(db, target, result.clipped(), drift_policy, requested_by))
    except UNSTORABLE as refusal:
        logger.warning("probe of %s could not be stored (%s); recorded as refused", target.registration_id,
                       type(refusal).__name__)
        failed = result.failed("refused", f"the registry could not store the endpoint's answer "
                                          f"({type(refusal).__name__})")
        return Recorded(Storage.REFUSED, await _record(db, target, failed, drift_policy, requested_by))


async def _record(db: Database, target: Target, result: ProbeResult, drift_policy: DriftPolicy,
                  requested_by: UUID | None) -> ProbePublic:
    row = await db.fetchrow(_RECORD.sql, *_RECORD(
        registration_id=target.registration_id, revision=target.revision, trigger=target.trigger,
        requested_by=requested_by, checked_at=result.checked_at, outcome=result.outcome,
        duration_ms=result.duration_ms, protocol_version=result.protocol_version, server_info=result.server_info,
        instructions=result.instructions, tools=result.tools, prompts=result.prompts, resources=result.resources,
        tools_hash=result.tools_hash, findings=[finding.as_json() for finding in result.findings],
        error=result.error, auth=result.auth, findings_omitted=result.findings_omitted, drift_policy=drift_policy,
        withdrawn_message=WITHDRAWN_MESSAGE))
    assert row is not None
    return ProbePublic.model_validate(dict(row))


async def defer(*, db: Database, registration_id: UUID, seconds: float) -> None:
    """End the lease of a target whose probe could not be recorded, and push its next check back.

    Writes: `probe_queue` (`claimed_until`, `due_at`)."""
    await db.fetchval(_DEFER.sql, *_DEFER(registration_id=registration_id, seconds=seconds))


async def prune(*, db: Database, history: int, batch: int) -> tuple[int, int]:
    """Delete old probes of up to `batch` registrations probed since their last pruning; returns
    (registrations pruned, probes deleted). Kept: the newest `history`, the baseline's, the latest
    `ok` probe of the published revision, and every probe the audit trail names.

    Writes: `probe_queue` (`pruned_at`), `probes` (deleted)."""
    row = await db.fetchrow(_PRUNE.sql, *_PRUNE(history=history, batch=batch))
    assert row is not None
    return int(row["registrations"]), int(row["probes"])


async def claim(*, db: Database, round_started: datetime, batch: int, lease_seconds: float) -> list[Target]:
    """Due registrations (least recently checked first), leased so no other worker takes them.

    Writes: `probe_queue` (`claimed_until`), `attestations` (the row, made before the probe runs)."""
    rows = await db.fetch(_CLAIM.sql, *_CLAIM(round_started=round_started, batch=batch, lease_seconds=lease_seconds))
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
               summaries: bool = False) -> list[asyncpg.Record]:
    """One page of the registration's probes, newest first: whole, or as summaries."""
    statement = _SUMMARIES if summaries else _PROBES
    rows = await db.fetch(statement.sql, *statement(registration_id=registration_id, is_admin=actor.is_admin,
                                                    user_id=actor.user_id, limit=limit, offset=offset))
    if not rows:
        raise NotFound(NOT_FOUND)
    _check_reader(actor, rows[0]["public"], rows[0]["submitter_id"])
    return [row for row in rows if row["probe_id"] is not None]


async def one(*, db: Database, actor: Actor, registration_id: UUID, probe_id: UUID) -> asyncpg.Record:
    row = await db.fetchrow(_PROBE.sql, *_PROBE(registration_id=registration_id, is_admin=actor.is_admin,
                                                user_id=actor.user_id, probe_id=probe_id))
    if row is None:
        raise NotFound(NOT_FOUND)
    _check_reader(actor, row["public"], row["submitter_id"])
    if row["probe_id"] is None:
        raise NotFound("This registration has no probe with this id.")
    return row
