"""SQL of drift: what recording a probe does to a registration's attestation, and accepting a drift.

The baseline of a published revision is taken lazily, by the first probe recorded after that
revision was published (an approval, a rollback): that revision's latest `ok` probe before it,
else this probe if it is `ok`. So the decision statements stay as they are, and a probe that
ran before the approval still counts as what the administrator saw.

Every statement here locks the registration row first and then its `attestations` row (made
before any probe runs: `ATTESTED`), so two probes recorded at once take turns and the second
reads what the first left: one `Drifted` entry, whatever races.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from uuid import UUID

import asyncpg

from shared import policy
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from shared.policy import NOT_FOUND
from shared.schemas.registrations import RegistrationPublic
from shared.services import columns
from shared.services.registrations import Actor
from shared.sql import Statement

# The registration answer's `attestation` of a probe row `p` (plus the revision it is about).
SEVERITIES = ("high", "medium", "low")


def summary(p: str) -> str:
    counts = ", ".join(f"'{level}', count(*) FILTER (WHERE f->>'severity' = '{level}')" for level in SEVERITIES)
    return (f"jsonb_build_object('revision', {p}.revision, 'outcome', {p}.outcome, 'checked_at', {p}.checked_at, "
            f"'tool_count', jsonb_array_length({p}.tools), 'tools_hash', {p}.tools_hash, 'findings', "
            f"(SELECT jsonb_build_object({counts}) FROM jsonb_array_elements({p}.findings) AS f))")


def snapshot(p: str) -> str:
    """The surface of probe row `p` that drift compares (see `surface_diff` in migration 0005)."""
    return (f"jsonb_build_object('probe_id', {p}.probe_id, 'tools_hash', {p}.tools_hash, 'tools', {p}.tools, "
            f"'instructions', {p}.instructions, 'prompts', {p}.prompts, 'resources', {p}.resources)")


# The attestation row of the registrations in CTE `source`, made before their probe runs.
ATTESTED = ("INSERT INTO attestations (registration_id) SELECT registration_id FROM {source} "
            "ON CONFLICT (registration_id) DO NOTHING")

_LATEST_OK = f"""(
    SELECT {snapshot("p")} FROM probes AS p
    WHERE p.registration_id = t.registration_id AND p.revision = t.published_revision AND p.outcome = 'ok'
    ORDER BY p.checked_at DESC, p.probe_id DESC LIMIT 1
)"""


# The probe's own columns, each bound by its name.
PROBE_VALUES = ("registration_id", "revision", "trigger", "requested_by", "checked_at", "outcome", "duration_ms",
                "protocol_version", "server_info", "instructions", "tools", "prompts", "resources", "tools_hash",
                "findings", "error", "auth", "findings_omitted")


def record_statement(*, probe_columns: str) -> Statement:
    """Insert a probe (`PROBE_VALUES`) and apply it: the summaries, the baseline, drift and its entry
    under DRIFT_POLICY (:drift_policy, the feed's message of a withdrawal :withdrawn_message), the queue."""
    return Statement(f"""
WITH target AS (
    -- NO KEY UPDATE: the claim of a round makes attestation rows (a key share of this row) meanwhile.
    SELECT registration_id, status, published_revision, publication FROM registrations
    WHERE registration_id = :registration_id FOR NO KEY UPDATE
), state AS (
    SELECT a.* FROM attestations AS a JOIN target AS t USING (registration_id) FOR UPDATE OF a
), inserted AS (
    INSERT INTO probes (registration_id, revision, trigger, requested_by, checked_at, outcome, duration_ms,
                        protocol_version, server_info, instructions, tools, prompts, resources, tools_hash,
                        findings, error, auth, findings_omitted)
    VALUES ({", ".join(f":{name}" for name in PROBE_VALUES)})
    RETURNING {probe_columns}
), basis AS (
    SELECT i.probe_id, i.tools_hash, t.registration_id, t.status, t.published_revision, t.publication,
           i.revision = t.published_revision AS of_published,
           i.outcome = 'ok' AND i.revision = t.published_revision AS counts,
           {summary("i")} AS summary, {snapshot("i")} AS snapshot, s.published AS published_before,
           kept.kept, CASE WHEN kept.kept THEN s.baseline ELSE {_LATEST_OK} END AS prior,
           kept.kept AND coalesce(s.drifted, false) AS was_drifted,
           kept.kept AND coalesce(s.drift_withdrawn, false) AS was_withdrawn
    FROM inserted AS i CROSS JOIN target AS t LEFT JOIN state AS s ON true
    CROSS JOIN LATERAL (SELECT s.baseline_revision IS NOT DISTINCT FROM t.published_revision AS kept) AS kept
), decided AS (
    SELECT b.*, coalesce(b.prior, CASE WHEN b.counts THEN b.snapshot END) AS baseline,
           b.counts AND b.prior IS NOT NULL AND b.tools_hash IS DISTINCT FROM b.prior->>'tools_hash'
               AND NOT b.was_drifted AS drifts
    FROM basis AS b
), withdraws AS (
    SELECT d.*, d.drifts AND :drift_policy::text = 'withdraw' AND d.publication = 'active' AS withdraws
    FROM decided AS d
), attested AS (
    INSERT INTO attestations AS a (registration_id, latest, published, baseline_revision, baseline, drifted,
                                   drift_withdrawn)
    SELECT registration_id, summary, CASE WHEN of_published THEN summary ELSE published_before END,
           published_revision, baseline, was_drifted OR drifts, was_withdrawn OR withdraws
    FROM withdraws
    ON CONFLICT (registration_id) DO UPDATE SET latest = excluded.latest, published = excluded.published,
        baseline_revision = excluded.baseline_revision, baseline = excluded.baseline, drifted = excluded.drifted,
        drift_withdrawn = excluded.drift_withdrawn
), withdrawn AS (
    UPDATE registrations AS r SET publication = 'deprecated', publication_message = :withdrawn_message,
        published_updated_at = now()
    FROM withdraws AS w WHERE r.registration_id = w.registration_id AND w.withdraws
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, NULL, 'Drifted', status, status, published_revision,
           jsonb_build_object('probe_id', probe_id, 'baseline_probe_id', prior->'probe_id',
                              'baseline_hash', prior->'tools_hash', 'tools_hash', tools_hash,
                              'policy', :drift_policy::text,
                              'withdrawn', withdraws)
           || surface_diff(prior, snapshot)
    FROM withdraws WHERE drifts
), queue AS (
    -- Published registrations are due again at the next round; others wait for an edit or approval.
    INSERT INTO probe_queue (registration_id, due_at, queued, last_checked_at)
    SELECT t.registration_id, CASE WHEN t.published_revision IS NOT NULL THEN :checked_at::timestamptz END, false,
           :checked_at
    FROM target AS t
    ON CONFLICT (registration_id) DO UPDATE
    SET due_at = CASE WHEN probe_queue.queued AND probe_queue.due_at > :checked_at THEN probe_queue.due_at
                      ELSE excluded.due_at END,
        queued = probe_queue.queued AND probe_queue.due_at > :checked_at,
        claimed_until = NULL, last_checked_at = excluded.last_checked_at
)
SELECT {probe_columns} FROM inserted
""")


# :probe_id the probe reviewed, :tools_hash the tools_hash reviewed. Only a drift of the published
# revision is accepted, by an administrator who did not submit the registration (four eyes, never
# waived here: `shared.policy`), and only onto the latest `ok` probe of that revision, which must be
# the one named: `current` is false when a probe recorded since the review replaced it.
_ACCEPT = Statement(f"""
WITH target AS (
    SELECT registration_id, submitter_id, status, published_revision, publication FROM registrations
    WHERE registration_id = :registration_id AND deleted_at IS NULL FOR NO KEY UPDATE
), state AS (
    SELECT a.* FROM attestations AS a JOIN target AS t USING (registration_id)
    WHERE a.drifted AND a.baseline_revision = t.published_revision FOR UPDATE OF a
), accepted AS (
    SELECT s.registration_id, s.baseline AS previous, s.drift_withdrawn, t.status, t.published_revision,
           {_LATEST_OK} AS baseline
    FROM state AS s JOIN target AS t USING (registration_id)
    WHERE {policy.four_eyes("t.submitter_id = :user_id", waivable=False)}
), named AS (
    SELECT c.*, (:probe_id::uuid IS NULL OR c.baseline->>'probe_id' = :probe_id::uuid::text)
                AND (:tools_hash::text IS NULL OR c.baseline->>'tools_hash' = :tools_hash::text) AS current
    FROM accepted AS c
), attested AS (
    UPDATE attestations AS a SET baseline = c.baseline, drifted = false, drift_withdrawn = false
    FROM named AS c WHERE a.registration_id = c.registration_id AND c.baseline IS NOT NULL AND c.current
    RETURNING a.latest, a.published
), reactivated AS (
    UPDATE registrations AS r SET publication = 'active', publication_message = NULL, published_updated_at = now()
    FROM named AS c
    WHERE r.registration_id = c.registration_id AND c.baseline IS NOT NULL AND c.current AND c.drift_withdrawn
      AND r.publication = 'deprecated'
    RETURNING r.registration_id
), audit AS (
    INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata)
    SELECT registration_id, :user_id, 'DriftAccepted', status, status, published_revision,
           jsonb_build_object('probe_id', baseline->'probe_id', 'tools_hash', baseline->'tools_hash',
                              'previous_probe_id', previous->'probe_id', 'previous_hash', previous->'tools_hash',
                              'reactivated', EXISTS (SELECT 1 FROM reactivated))
    FROM named WHERE baseline IS NOT NULL AND current
)
SELECT t.submitter_id AS owner, EXISTS (SELECT 1 FROM state) AS drifted,
       EXISTS (SELECT 1 FROM named WHERE baseline IS NOT NULL) AS probed,
       EXISTS (SELECT 1 FROM attested) AS accepted, EXISTS (SELECT 1 FROM reactivated) AS reactivated,
       (SELECT latest || jsonb_build_object('drifted', false) FROM attested) AS accepted_attestation,
       {columns.latest(attestation=False)}
FROM target AS t JOIN registrations AS r USING (registration_id)
""")


NOT_LATEST = ("The probe named is no longer the latest ok probe of the published revision: a probe recorded since "
              "the review answered. Review the latest (GET …/probes/latest) and accept that one.")


class Acceptance(Enum):
    ACCEPTED = "accepted"        # the new baseline; `drifted` cleared
    REACTIVATED = "reactivated"  # and, withdrawn for the drift (DRIFT_POLICY=withdraw), active again


@dataclass(frozen=True, slots=True)
class Accepted:
    outcome: Acceptance
    registration: RegistrationPublic


OWN_REGISTRATION = ("An administrator may not accept a drift of a registration they submitted; "
                    "ask another administrator.")


def _accepted(row: asyncpg.Record | None, *, actor: Actor) -> Accepted:
    """What the acceptance statement answered: the outcome, or the domain error it means. The row's
    registration columns are read before the statement's own writes, so the answer takes the
    attestation (and, reactivated, the publication) those writes made."""
    if row is None:
        raise NotFound(NOT_FOUND)
    if row["owner"] == actor.user_id:
        raise Forbidden(OWN_REGISTRATION)
    if not row["accepted"]:
        if not row["drifted"]:
            raise Conflict("Nothing to accept: the published revision has not drifted.")
        if not row["probed"]:
            raise Conflict("Nothing to accept: no ok probe of the published revision.")
        raise PreconditionFailed(NOT_LATEST)
    written: dict[str, object] = {"attestation": row["accepted_attestation"]}
    if row["reactivated"]:
        written |= {"publication": "active", "publication_message": None}
    outcome = Acceptance.REACTIVATED if row["reactivated"] else Acceptance.ACCEPTED
    return Accepted(outcome, RegistrationPublic.model_validate({**dict(row), **written}))


async def accept(*, db: Database, actor: Actor, registration_id: UUID, probe_id: UUID | None,
                 tools_hash: str | None) -> Accepted:
    """Take the latest `ok` probe of the published revision as its baseline, if it is the one named; the
    registration as it is now. Only administrators reach this (the endpoint is declared `admin`).

    Writes: `attestations` (the baseline, `drifted` cleared), `registrations` (`publication`, when a withdrawal
    ends), `audit_log` (`DriftAccepted`)."""
    row = await db.fetchrow(_ACCEPT.sql, *_ACCEPT(registration_id=registration_id, user_id=actor.user_id,
                                                  probe_id=probe_id, tools_hash=tools_hash))
    return _accepted(row, actor=actor)
