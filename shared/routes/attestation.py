"""Attestation endpoints. The timer trigger that re-probes published registrations is a job
(shared/jobs/timers.py).

The probe module (and the MCP SDK under it), the probe models and their SQL are imported by the
handlers that use them, never at import of this blueprint: the API's cold start does not carry
attestation at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared import texts
from shared.config import get_probe_settings
from shared.db import database
from shared.declare import REGISTRATION_ROUTE, Answer, Deferred, Routes, SignedIn
from shared.errors import NotFound
from shared.http import json_response, registration_response
from shared.schemas.acceptance import DriftAcceptance
from shared.schemas.registrations import RegistrationPublic

if TYPE_CHECKING:
    from shared.schemas.attestation import ProbePublic, ProbeQuery

routes = Routes("attestation")
blueprint = routes.blueprint
logger = logging.getLogger(__name__)

BY_ID = REGISTRATION_ROUTE
# POST .../probe may be asked again for the same registration after this long.
REQUEST_INTERVAL = 60.0
_MODELS = "shared.schemas.attestation"


def _public(row: Any) -> ProbePublic:
    from shared.schemas.attestation import ProbePublic

    return ProbePublic.model_validate(dict(row))


@routes.declare(
    "POST", f"{BY_ID}/probe", access="user", summary="Probe a registration's endpoint now",
    answers=(Answer(200, "The probe, stored.", Deferred(_MODELS, "ProbePublic")),),
    errors={403: texts.NOT_SUBMITTER, 404: texts.INVISIBLE, 409: "Probing is off: `PROBE_ENABLED` is not `true`.",
            429: "A probe of this registration was asked for through this endpoint less than a minute ago; "
                 "`Retry-After` says when the next may be."},
    description="""Speaks MCP to the endpoint of the registration's latest revision (at most 10 s, 1 MiB) through
the egress guard and answers with the stored probe: `outcome` is `ok`, `auth_required` (401/403 with
`WWW-Authenticate`; `auth` then holds the RFC 9728 metadata it names), `wrong_transport` (the endpoint
speaks the other transport; its tools are shown), `not_mcp`, `unreachable` (DNS, connection, TLS),
`timeout` or `refused` (an address the submission rules refuse, or more than 1 MiB). A non-`ok`
outcome is a 200 too: the probe ran. Probes queued after an edit and the timer's do not count
towards the one-a-minute limit.""",
)
async def probes_request(call: SignedIn[None, None]) -> func.HttpResponse:
    from shared.probe import probe_target
    from shared.services import probes

    settings = get_probe_settings()
    target = await probes.request(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                  enabled=settings.enabled, interval=REQUEST_INTERVAL)
    result = await probe_target(target, settings)
    recorded = await probes.record(db=database, target=target, result=result, drift_policy=settings.drift_policy,
                                   requested_by=call.user.user_id)
    return json_response(recorded.probe)


@routes.declare(
    "GET", f"{BY_ID}/probes", access="user", summary="The probes of a registration",
    answers=(Answer(200, "One page of probes, newest first.", Deferred(_MODELS, "ProbeList")),),
    errors=texts.QUERY_422 | {403: texts.NOT_SUBMITTER, 404: texts.INVISIBLE},
    query=Deferred(_MODELS, "ProbeQuery"),
    description="""For administrators and the submitter, like the audit trail. Each probe is a summary: its
outcome, `tool_count`, `tools_hash`, `findings` counted by severity, `findings_omitted` and `error`; the
whole probe (its surface and findings) is `GET …/probes/{probe_id}`. Old probes are pruned by the timer's
round: a registration keeps its newest `PROBE_HISTORY` (default 50), its baseline's, the latest `ok` probe
of its published revision and those its audit trail names.""",
)
async def probes_list(call: SignedIn[None, ProbeQuery]) -> func.HttpResponse:
    from shared.schemas.attestation import ProbeList, ProbeSummary
    from shared.services import probes

    rows = await probes.page(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                             limit=call.query.limit, offset=call.query.offset, summaries=True)
    return json_response(ProbeList(results=[ProbeSummary.model_validate(dict(row)) for row in rows]))


@routes.declare(
    "GET", f"{BY_ID}/probes/{{probe_id:guid}}", access="user", summary="One probe of a registration",
    answers=(Answer(200, "The probe.", Deferred(_MODELS, "ProbePublic")),),
    errors={403: texts.NOT_SUBMITTER,
            404: "No live registration has this id, the caller may not see it, or it has no probe with this id "
                 "(pruned, or another registration's)."},
    description="For administrators and the submitter, like the audit trail: the whole probe a list names.",
)
async def probes_one(call: SignedIn[None, None]) -> func.HttpResponse:
    from shared.services import probes

    row = await probes.one(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                           probe_id=call.path_id("probe_id"))
    return json_response(_public(row))


@routes.declare(
    "GET", f"{BY_ID}/probes/latest", access="user", summary="The latest probe of a registration",
    answers=(Answer(200, "The latest probe.", Deferred(_MODELS, "ProbePublic")),),
    errors={403: texts.NOT_SUBMITTER,
            404: "No live registration has this id, the caller may not see it, or it was never probed."},
)
async def probes_latest(call: SignedIn[None, None]) -> func.HttpResponse:
    from shared.services import probes

    rows = await probes.page(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                             limit=1, offset=0)
    if not rows:
        raise NotFound("This registration has not been probed yet.")
    return json_response(_public(rows[0]))


@routes.declare(
    "POST", f"{BY_ID}/attestation/accept", access="admin", summary="Accept a drifted tool surface as the new baseline",
    answers=(Answer(200, "The registration, no longer drifted.", RegistrationPublic, ("ETag#revision",)),),
    errors=texts.BODY | texts.BODY_422 | {
        403: "The caller is not an administrator, or submitted this registration (another administrator must "
             "accept).",
        404: "No live registration has this id.",
        409: "Nothing to accept: the published revision has not drifted (or has no `ok` probe).",
        412: "The probe (or `tools_hash`) named is no longer the latest `ok` probe of the published revision: one "
             "recorded since the review answered; nothing changed."},
    request=DriftAcceptance, request_example={"probe_id": "3f2b8c1e-9a4d-4e7b-8c21-5d6f7a8b9c0d"},
    description="""Takes the latest `ok` probe of the published revision as its baseline, clears `drifted` and
writes a `DriftAccepted` audit entry (its metadata names the new and the previous baseline probe and
hash). Where `DRIFT_POLICY=withdraw` deprecated the server because of the drift, it is reactivated
(`reactivated: true` in the entry); this is the only way back to `active` while that withdrawal
stands (`PATCH …/publication` answers 409), so reactivation always takes another administrator.

The body names what was reviewed: `probe_id` (the probe read, e.g. `GET …/probes/latest`) or
`tools_hash` (the registration's `attestation.tools_hash`), or both. When the latest `ok` probe is no
longer that one (the submitter, or the timer, probed again between the review and the click) the
answer is 412 and nothing changes: review again. The body is optional: without one (or with `{}`)
the latest `ok` probe is accepted, as before; a reviewer's client should name what it showed, since
a re-probe between the review and the click could otherwise swap in a surface nobody reviewed.""",
)
async def attestation_accept(call: SignedIn[DriftAcceptance, None]) -> func.HttpResponse:
    from shared.services import drift

    accepted = await drift.accept(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                  probe_id=call.body.probe_id, tools_hash=call.body.tools_hash)
    return registration_response(accepted.registration)

