"""Attestation endpoints and the timer trigger that re-probes published registrations.

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
from shared.declare import Answer, Deferred, Routes, SignedIn
from shared.errors import NotFound
from shared.http import json_response
from shared.schemas.registrations import RegistrationPublic

if TYPE_CHECKING:
    from shared.schemas.attestation import ProbePublic, ProbeQuery

routes = Routes("attestation")
blueprint = routes.blueprint
logger = logging.getLogger(__name__)

BY_ID = "registrations/{registration_id:guid}"
# POST .../probe may be asked again for the same registration after this long.
REQUEST_INTERVAL = 60.0
_MODELS = "shared.schemas.attestation"


def _public(row: Any) -> ProbePublic:
    from shared.schemas.attestation import ProbePublic

    return ProbePublic.model_validate(dict(row))


@routes.declare(
    "POST", f"{BY_ID}/probe", access="user", summary="Probe a registration's endpoint now",
    answers=(Answer(200, "The probe, stored.", Deferred(_MODELS, "ProbePublic")),),
    errors={403: texts.NOT_SUBMITTER, 404: texts.INVISIBLE, 409: "Probing is off: `PROBE_SCHEDULE` is not set.",
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
    from shared.probe.rounds import probe_target
    from shared.services import probes

    settings = get_probe_settings()
    target = await probes.request(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                  enabled=settings.enabled, interval=REQUEST_INTERVAL)
    result = await probe_target(target, settings)
    row = await probes.record(db=database, target=target, result=result, drift_policy=settings.drift_policy,
                              requested_by=call.user.user_id)
    return json_response(_public(row))


@routes.declare(
    "GET", f"{BY_ID}/probes", access="user", summary="The probes of a registration",
    answers=(Answer(200, "One page of probes, newest first.", Deferred(_MODELS, "ProbeList")),),
    errors=texts.QUERY_422 | {403: texts.NOT_SUBMITTER, 404: texts.INVISIBLE},
    query=Deferred(_MODELS, "ProbeQuery"), description="For administrators and the submitter, like the audit trail.",
)
async def probes_list(call: SignedIn[None, ProbeQuery]) -> func.HttpResponse:
    from shared.schemas.attestation import ProbeList
    from shared.services import probes

    rows = await probes.page(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                             limit=call.query.limit, offset=call.query.offset)
    return json_response(ProbeList(results=[_public(row) for row in rows]))


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
    errors={403: "The caller is not an administrator, or submitted this registration (another administrator "
                 "must accept).",
            404: "No live registration has this id.",
            409: "Nothing to accept: the published revision has not drifted (or has no `ok` probe)."},
    description="""Takes the latest `ok` probe of the published revision as its baseline, clears `drifted` and
writes a `DriftAccepted` audit entry (its metadata names the new and the previous baseline probe and
hash). Where `DRIFT_POLICY=withdraw` deprecated the server because of the drift, it is reactivated
(`reactivated: true` in the entry). No body.""",
)
async def attestation_accept(call: SignedIn[None, None]) -> func.HttpResponse:
    from shared.routes.registrations import registration_response
    from shared.services import drift

    row = await drift.accept(db=database, actor=call.actor, registration_id=call.path_id("registration_id"))
    return registration_response(row)


# The Functions host reads the schedule from the PROBE_SCHEDULE app setting (%NAME% binding
# expression); unset, the round below does nothing.
@blueprint.timer_trigger(schedule="%PROBE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def probes_round(timer: func.TimerRequest) -> None:
    from shared.probe.rounds import run_round

    settings = get_probe_settings()
    if not settings.enabled:
        return
    await run_round(db=database, settings=settings)
