"""Revision endpoints: read a registration's revisions, publish an earlier one, deprecate."""

from __future__ import annotations

import azure.functions as func

from shared import texts
from shared.db import database
from shared.declare import REGISTRATION_ROUTE, Answer, Call, Routes, SignedIn
from shared.errors import NotFound
from shared.http import json_response, registration_response
from shared.schemas.registrations import RegistrationPublic
from shared.schemas.revisions import PublicationChange, Revision, RevisionList
from shared.services import publication, revisions

routes = Routes("registrations")
blueprint = routes.blueprint

BY_ID = REGISTRATION_ROUTE
REVISIONS = f"{BY_ID}/revisions"
REVISION = f"{REVISIONS}/{{revision:int}}"
_MAX_REVISION = 2_147_483_647


def _revision_number(call: Call[None, None]) -> int:
    try:
        number = int(call.req.route_params["revision"])
    except (KeyError, ValueError):
        number = 0
    if not 1 <= number <= _MAX_REVISION:
        raise NotFound("Revision not found.")
    return number


@routes.declare(
    "GET", REVISIONS, access="user", summary="The revisions of a registration",
    answers=(Answer(200, "Every revision, oldest first.", RevisionList),),
    errors={403: texts.VISIBLE_403, 404: texts.INVISIBLE},
    description="For administrators and the submitter: each revision as submitted, and its decision.",
)
async def revisions_list(call: SignedIn[None, None]) -> func.HttpResponse:
    rows = await revisions.revisions(db=database, actor=call.actor, registration_id=call.path_id("registration_id"))
    return json_response(RevisionList.model_validate({"results": [dict(row) for row in rows]}))


@routes.declare(
    "GET", REVISION, access="user", summary="One revision of a registration",
    answers=(Answer(200, "The revision.", Revision),),
    errors={403: texts.VISIBLE_403,
            404: "No live registration has this id, the caller may not see it, or it has no such revision."},
)
async def revisions_get(call: SignedIn[None, None]) -> func.HttpResponse:
    rows = await revisions.revisions(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                     revision=_revision_number(call))
    return json_response(Revision.model_validate(dict(rows[0])))


@routes.declare(
    "POST", f"{REVISION}/publish", access="admin", summary="Publish an earlier approved revision again (rollback)",
    answers=(Answer(200, "The registration, now publishing that revision.", RegistrationPublic, ("ETag#revision",)),),
    errors={404: "No live registration has this id, or it has no such revision.",
            409: "The revision was never approved, or another live registration holds its `endpoint_url` or "
                 "`server_name`."},
    description="The feed serves that revision from now on; the latest revision and its status do not change. "
                "Audited as `Published`.",
)
async def revisions_publish(call: SignedIn[None, None]) -> func.HttpResponse:
    published = await publication.publish(db=database, actor=call.actor,
                                           registration_id=call.path_id("registration_id"),
                                           revision=_revision_number(call))
    return registration_response(published.registration)


@routes.declare(
    "PATCH", f"{BY_ID}/publication", access="admin", summary="Deprecate or reactivate the published revision",
    answers=(Answer(200, "The registration.", RegistrationPublic, ("ETag#revision",)),),
    errors=texts.BODY | texts.BODY_422 | {
        404: "No live registration has this id.",
        409: "Nothing of this registration is published yet, or `active` was asked while the registry's drift "
             "withdrawal (`DRIFT_POLICY=withdraw`) of the published revision stands."},
    request=PublicationChange,
    request_example={"publication": "deprecated", "message": "Use com.contoso/weather-v2 instead."},
    description="A deprecated server stays in the feed with `status: deprecated` and `statusMessage` (the "
                "`message`), which clients show. Audited as `Deprecated` or `Reactivated`. A server the registry "
                "withdrew because its tools drifted becomes `active` again only through `POST …/attestation/accept` "
                "(another administrator than the submitter, naming the probe reviewed): `active` here is 409 while "
                "that withdrawal stands, so the four-eyes rule of accepting cannot be stepped around.",
)
async def registrations_publication(call: SignedIn[PublicationChange, None]) -> func.HttpResponse:
    published = await publication.set_publication(db=database, actor=call.actor, change=call.body,
                                                  registration_id=call.path_id("registration_id"))
    return registration_response(published.registration)
