"""Attestation endpoints and the timer trigger that re-probes published registrations.

The probe module (and the MCP SDK under it), the probe models and their SQL are imported by the
handlers that use them, never at import of this blueprint: the API's cold start does not carry
attestation at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import azure.functions as func

from shared.auth import CurrentUser, require_user
from shared.config import get_probe_settings
from shared.db import database
from shared.errors import NotFound
from shared.http import endpoint, json_response, parse_query
from shared.services.registrations import Actor

if TYPE_CHECKING:
    from shared.schemas.attestation import ProbePublic

blueprint = func.Blueprint()
logger = logging.getLogger(__name__)

BY_ID = "registrations/{registration_id:guid}"
# POST .../probe may be asked again for the same registration after this long.
REQUEST_INTERVAL = 60.0


def _actor(user: CurrentUser) -> Actor:
    return Actor(user_id=user.user_id, is_admin=user.is_admin)


def _registration_id(req: func.HttpRequest) -> UUID:
    try:
        return UUID(req.route_params["registration_id"])
    except (KeyError, ValueError):
        raise NotFound("Registration not found.") from None


def _public(row: Any) -> ProbePublic:
    from shared.schemas.attestation import ProbePublic

    return ProbePublic.model_validate(dict(row))


@blueprint.route(route=f"{BY_ID}/probe", methods=["POST"])
@endpoint
async def probes_request(req: func.HttpRequest) -> func.HttpResponse:
    from shared.probe.rounds import probe_target
    from shared.services import probes

    user = await require_user(req)
    settings = get_probe_settings()
    target = await probes.request(db=database, actor=_actor(user), registration_id=_registration_id(req),
                                  enabled=settings.enabled, interval=REQUEST_INTERVAL)
    result = await probe_target(target, settings)
    row = await probes.record(db=database, target=target, result=result, drift_policy=settings.drift_policy,
                              requested_by=user.user_id)
    return json_response(_public(row))


@blueprint.route(route=f"{BY_ID}/probes", methods=["GET"])
@endpoint
async def probes_list(req: func.HttpRequest) -> func.HttpResponse:
    from shared.schemas.attestation import ProbeList, ProbeQuery
    from shared.services import probes

    user = await require_user(req)
    query = parse_query(req, ProbeQuery)
    rows = await probes.page(db=database, actor=_actor(user), registration_id=_registration_id(req),
                             limit=query.limit, offset=query.offset)
    return json_response(ProbeList(results=[_public(row) for row in rows]))


@blueprint.route(route=f"{BY_ID}/probes/latest", methods=["GET"])
@endpoint
async def probes_latest(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services import probes

    user = await require_user(req)
    rows = await probes.page(db=database, actor=_actor(user), registration_id=_registration_id(req), limit=1,
                             offset=0)
    if not rows:
        raise NotFound("This registration has not been probed yet.")
    return json_response(_public(rows[0]))


@blueprint.route(route=f"{BY_ID}/attestation/accept", methods=["POST"])
@endpoint
async def attestation_accept(req: func.HttpRequest) -> func.HttpResponse:
    from shared.routes.registrations import registration_response
    from shared.services import drift

    user = await require_user(req)
    row = await drift.accept(db=database, actor=_actor(user), registration_id=_registration_id(req))
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
