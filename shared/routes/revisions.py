"""Revision endpoints: read a registration's revisions, publish an earlier one, deprecate."""

from __future__ import annotations

import azure.functions as func

from shared.auth import require_admin, require_user
from shared.db import database
from shared.errors import NotFound
from shared.http import endpoint, json_response, parse_body
from shared.routes.registrations import BY_ID, actor_of, registration_id_of, registration_response
from shared.schemas.revisions import PublicationChange, Revision, RevisionList
from shared.services import publication, revisions

blueprint = func.Blueprint()

REVISIONS = f"{BY_ID}/revisions"
REVISION = f"{REVISIONS}/{{revision:int}}"
_MAX_REVISION = 2_147_483_647


def _revision_number(req: func.HttpRequest) -> int:
    try:
        number = int(req.route_params["revision"])
    except (KeyError, ValueError):
        number = 0
    if not 1 <= number <= _MAX_REVISION:
        raise NotFound("Revision not found.")
    return number


@blueprint.route(route=REVISIONS, methods=["GET"])
@endpoint
async def revisions_list(req: func.HttpRequest) -> func.HttpResponse:
    user = await require_user(req)
    rows = await revisions.revisions(db=database, actor=actor_of(user), registration_id=registration_id_of(req))
    return json_response(RevisionList.model_validate({"results": [dict(row) for row in rows]}))


@blueprint.route(route=REVISION, methods=["GET"])
@endpoint
async def revisions_get(req: func.HttpRequest) -> func.HttpResponse:
    user = await require_user(req)
    rows = await revisions.revisions(db=database, actor=actor_of(user), registration_id=registration_id_of(req),
                                     revision=_revision_number(req))
    return json_response(Revision.model_validate(dict(rows[0])))


@blueprint.route(route=f"{REVISION}/publish", methods=["POST"])
@endpoint
async def revisions_publish(req: func.HttpRequest) -> func.HttpResponse:
    admin = await require_admin(req)
    row = await publication.publish(db=database, actor=actor_of(admin), registration_id=registration_id_of(req),
                                    revision=_revision_number(req))
    return registration_response(row)


@blueprint.route(route=f"{BY_ID}/publication", methods=["PATCH"])
@endpoint
async def registrations_publication(req: func.HttpRequest) -> func.HttpResponse:
    admin = await require_admin(req)
    registration_id = registration_id_of(req)
    change = parse_body(req, PublicationChange)
    row = await publication.set_publication(db=database, actor=actor_of(admin), registration_id=registration_id,
                                            change=change)
    return registration_response(row)
