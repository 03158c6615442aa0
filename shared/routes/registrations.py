"""Registration endpoints: each declared once, its handler calling the service and shaping the answer."""

from __future__ import annotations

import azure.functions as func

from shared import policy, texts
from shared.config import get_settings
from shared.db import database
from shared.declare import REGISTRATION_ROUTE, Answer, Routes, SignedIn
from shared.errors import Forbidden
from shared.http import empty_response, if_match_revision, json_response, registration_response
from shared.schemas.registrations import (
    AuditLogEntry,
    AuditTrail,
    RegistrationCreate,
    RegistrationList,
    RegistrationPublic,
    RegistrationQuery,
    RegistrationUpdate,
    StatusChange,
)
from shared.services import audit, registrations, revisions

routes = Routes("registrations")
blueprint = routes.blueprint

BY_ID = REGISTRATION_ROUTE

_LINKS = {
    name: {"operationId": operation, "parameters": {"registration_id": "$response.body#/registration_id"}}
    for name, operation in (("GetRegistration", "registrations_get"), ("UpdateRegistration", "registrations_update"),
                            ("DecideRegistration", "registrations_decide"),
                            ("DeleteRegistration", "registrations_delete"), ("ReadAuditTrail", "registrations_audit"),
                            ("ListRevisions", "revisions_list"))
}
_CREATE_EXAMPLE = {
    "endpoint_url": "https://mcp.contoso.com/weather",
    "endpoint_name": "Weather Tools",
    "description": "Forecasts and alerts for any city.",
    "owner_contact": "weather-team@contoso.com",
    "available_tools": ["forecast", "alerts"],
}
_LIST_DESCRIPTION = """Newest first (`created_at`, ties by `registration_id`), `limit` at a time from `offset`;
`total` counts the matches up to 10,000; when more match it reads 10,000 and `total_exact: false`
is added (an exact count of hundreds of thousands of rows would cost more than the page).

- `search`: a case-insensitive substring of `endpoint_name`, `owner_contact`, `endpoint_url` or
  `description`; `%` and `_` are literal characters, not wildcards; an empty `search` matches all.
- `status` and `submitter_id` filter exactly.
- Administrators only (anyone else gets 403 rather than a silently unfiltered list), on the
  `attestation` summary: `outcome` (of the latest probe), `drifted` (`true`: the published
  revision drifted from its baseline and no one accepted it yet; `false`: it did not), `findings`
  (`high`, `medium` or `low`: the latest probe has at least one finding of that severity).
- Unknown query parameters are ignored; a known one with a bad value is 422."""
_LIST_ERRORS = texts.QUERY_422 | {
    403: "`outcome`, `drifted` or `findings` sent by anyone other than an administrator (or the token may "
         "not be used here)."}
_REVISIONS_NOTE = """Every create and every edit makes a new numbered revision holding the fields as submitted.
The submitter and administrators see the latest revision; anyone else sees a registration only while
it has a published revision, and then sees that revision's content with status `Approved` (its
`revision`, `updated_at` and `ETag` too), never a pending or rejected edit."""


@routes.declare(
    "POST", "registrations", access="user", summary="Submit an endpoint for approval",
    answers=(Answer(201, "Created, `Pending`, revision 1, with its URL in `Location`.", RegistrationPublic,
                    ("Location", "ETag#revision")),),
    errors=texts.BODY | texts.NAMESPACE_422 | texts.PENDING_429 | {
        409: "A live registration already has this `endpoint_url` (compared normalised, a trailing `/` on a "
             "non-root path ignored) or `server_name`, as "
             "its latest or its published revision."},
    request=RegistrationCreate, request_example=_CREATE_EXAMPLE, links=_LINKS,
    description="""`endpoint_url` must be `https` on a public host and is stored normalised (RFC 3986 section
6: scheme and host lower-cased, trailing dot and default port dropped, percent-encoding
normalised, dot-segments removed) and published in that form, a trailing `/` kept; equivalent
URLs collide (409), and so do `/mcp/` and `/mcp` (a trailing `/` on a non-root path is ignored by
uniqueness; `https://h.example.com` is stored as `https://h.example.com/`); its
field description lists every host, address range and query parameter that is refused, and
`ALLOWED_ENDPOINT_NETWORKS` / `ALLOW_HTTP_ENDPOINTS` admit internal networks and http. Text fields
refuse control, bidi, zero-width, private-use and separator characters; names and tool names are
NFKC-normalised; `owner_contact` is ASCII. Every refusal is a 422 whose `detail` says what to send
instead and whose `errors[].type` names the rule. Without `server_name` one is derived from the URL's host,
reversed, and the slug of `endpoint_name` (`com.contoso.mcp/weather-tools`), with `-2`, `-3`… on a
clash. An explicit `server_name` of anyone but an administrator must have the host's labels reversed
(or a parent domain of at least two labels) as its namespace: `com.contoso.mcp/...` or
`com.contoso/...` for `mcp.contoso.com`. Text fields are trimmed. The submission is revision 1,
audited as `Created`.""",
)
async def registrations_create(call: SignedIn[RegistrationCreate, None]) -> func.HttpResponse:
    created = await registrations.create(db=database, actor=call.actor, data=call.body, review=get_settings().review)
    location = f"{call.req.url.split('?', 1)[0].rstrip('/')}/{created.registration.registration_id}"
    return registration_response(created.registration, 201, {"Location": location})


async def _list(call: SignedIn[None, RegistrationQuery], *, own_only: bool) -> func.HttpResponse:
    query = call.query
    if query.filters_attestation and not policy.may_filter_attestation(call.actor):
        raise Forbidden("Only administrators may filter by outcome, drifted or findings.")
    found = await registrations.list_page(db=database, actor=call.actor, query=query, own_only=own_only)
    # One validation call for the whole page: a model_validate per row costs ~15 % more CPU.
    page = RegistrationList.model_validate({
        "total": found.total, "total_exact": found.total_exact, "limit": query.limit, "offset": query.offset,
        "results": [dict(row) for row in found.rows],
    })
    return json_response(page)


@routes.declare(
    "GET", "registrations", access="user", summary="List the registrations the caller may see",
    answers=(Answer(200, "One page of registrations.", RegistrationList),), errors=_LIST_ERRORS,
    query=RegistrationQuery,
    description="An administrator sees every live registration and the caller their own, at their latest "
                "revision; anyone else's appear only while published, at their published revision "
                "(`status` `Approved`), and `search`, `status` and `total` apply to what the caller sees."
                "\n\n" + _LIST_DESCRIPTION,
)
async def registrations_list(call: SignedIn[None, RegistrationQuery]) -> func.HttpResponse:
    return await _list(call, own_only=False)


@routes.declare(
    "GET", "registrations/my", access="user", summary="List the caller's own registrations",
    answers=(Answer(200, "One page of the caller's registrations.", RegistrationList),), errors=_LIST_ERRORS,
    query=RegistrationQuery, description=_LIST_DESCRIPTION,
)
async def registrations_my(call: SignedIn[None, RegistrationQuery]) -> func.HttpResponse:
    return await _list(call, own_only=True)


@routes.declare(
    "GET", BY_ID, access="user", summary="One registration",
    answers=(Answer(200, "The registration.", RegistrationPublic, ("ETag#revision",)),), errors={404: texts.INVISIBLE},
    description=_REVISIONS_NOTE,
)
async def registrations_get(call: SignedIn[None, None]) -> func.HttpResponse:
    registration = await registrations.get(db=database, actor=call.actor,
                                           registration_id=call.path_id("registration_id"))
    return registration_response(registration)


@routes.declare(
    "PATCH", BY_ID, access="user", summary="Edit a registration",
    answers=(Answer(200, "The registration at its new revision.", RegistrationPublic, ("ETag#revision",)),),
    errors=texts.BODY | texts.NAMESPACE_422 | texts.STALE_412 | texts.PENDING_429 | {
        403: texts.VISIBLE_403,
        404: texts.INVISIBLE,
        409: "Another live registration already has this `endpoint_url` or `server_name` (latest or published)."},
    request=RegistrationUpdate, request_example={"description": "Forecasts, alerts and radar images."},
    request_headers=("If-Match",),
    description="""Any non-empty subset of the submission's fields; only `description` may be `null` (to
clear it). An empty object `{}` is 422. The fields follow the same rules as on submission. The
edit is a new `Pending` revision, whoever makes it
(clearing `approver_id`, `approved_at`, `status_reason`; a pending revision it replaces becomes
`Superseded`); the published revision, if any, stays live in the feed until the new one is approved.
Where `REVIEW_ALLOW_SELF_APPROVAL=true`, an administrator's edit of a registration whose latest
revision is approved is approved and published at once. With `If-Match: "<revision>"` the edit
applies only to that revision (412 otherwise: no lost updates). An edit changing `endpoint_url` or
`server_name` keeps the pair within the namespace rule (see create) for anyone but an administrator.
Audited as `Updated` with each changed field's `old` and `new` value (cut at 512 characters).""",
)
async def registrations_update(call: SignedIn[RegistrationUpdate, None]) -> func.HttpResponse:
    edited = await revisions.update(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                    data=call.body, if_match=if_match_revision(call.req), review=get_settings().review)
    return registration_response(edited.registration)


@routes.declare(
    "PATCH", f"{BY_ID}/status", access="admin", summary="Approve or reject a pending revision",
    answers=(Answer(200, "The decided registration.", RegistrationPublic, ("ETag#revision",)),),
    errors=texts.BODY | texts.BODY_422 | texts.STALE_412 | {
        403: "The caller is not an administrator, or submitted a revision of this registration since its published "
             "one (the latest carries their edit), unless `REVIEW_ALLOW_SELF_APPROVAL=true`.",
        404: "No live registration has this id.",
        409: "The latest revision is no longer `Pending`: it was already decided.",
        412: "`If-Match` or the body's `revision` names a revision that is no longer the latest (or they "
             "disagree, or `If-Match` is not a revision number); nothing changed.",
        428: "Neither `If-Match` nor `revision` names the revision, and an edit replaced a pending revision since "
             "the last decision (the reviewer may have seen that one), or `REVIEW_REQUIRE_MATCH=true`."},
    request=StatusChange, request_example={"status": "Approved", "reason": "Reviewed by the platform team.",
                                           "revision": 1},
    request_headers=("If-Match",),
    description="""Decides one revision: the one `If-Match: "<revision>"` or the body's `revision` names,
which must be the latest and `Pending`. Without either, it decides the latest revision only if that is
`Pending` and the only revision submitted since the registration's last decision (or its creation):
when an edit replaced a pending revision meanwhile, the reviewer may have seen the replaced one, so
the answer is 428 and the `ETag` reviewed must be sent as `If-Match`. `REVIEW_REQUIRE_MATCH=true`
makes every decision without either 428. An administrator who submitted any revision since the
published one (or since creation, while none is) may not decide: their edit rides along in the
latest revision (403, unless `REVIEW_ALLOW_SELF_APPROVAL=true`). Sets `status`, `approver_id`,
`approved_at` and `status_reason`.
Approving publishes the revision in the feed (a deprecated registration stays deprecated; one
published for the first time is `active`); rejecting leaves the published revision, if any, live.
Audited as `Approved` or `Rejected` with the revision's `endpoint_url`, `server_name` and `version`.""",
)
async def registrations_decide(call: SignedIn[StatusChange, None]) -> func.HttpResponse:
    decided = await revisions.decide(db=database, actor=call.actor, registration_id=call.path_id("registration_id"),
                                     change=call.body, if_match=if_match_revision(call.req),
                                     review=get_settings().review)
    return registration_response(decided.registration)


@routes.declare(
    "DELETE", BY_ID, access="admin", summary="Delete a registration",
    answers=(Answer(204, texts.NO_CONTENT),),
    errors={404: "No live registration has this id (it never existed or is already deleted)."},
    description="Soft delete: the row and its audit trail stay, audited as `Deleted`; the `endpoint_url` "
                "and `server_name` become free for a new submission. The feed's incremental sync reports "
                "it as `deleted`.",
)
async def registrations_delete(call: SignedIn[None, None]) -> func.HttpResponse:
    await registrations.delete(db=database, actor=call.actor, registration_id=call.path_id("registration_id"))
    return empty_response(204)


@routes.declare(
    "GET", f"{BY_ID}/audit", access="user", summary="The audit trail of a registration",
    answers=(Answer(200, "Every entry, oldest first.", AuditTrail),),
    errors={403: texts.NOT_SUBMITTER, 404: "No registration has this id, or the caller may not see it."},
    description="For administrators and the submitter. Every entry names the revision it is about. Deleted "
                "registrations keep their trail and can still be read here.",
)
async def registrations_audit(call: SignedIn[None, None]) -> func.HttpResponse:
    rows = await audit.trail(db=database, actor=call.actor, registration_id=call.path_id("registration_id"))
    return json_response(AuditTrail(results=[AuditLogEntry.model_validate(dict(row)) for row in rows]))
