"""The OpenAPI 3.1 description of the API, built from the operation table below and from the
same pydantic models the handlers parse and answer with, so the document cannot drift from them.

`OPERATIONS` lists every HTTP trigger of the app in Functions form (`registrations/{id:guid}`),
one entry per method; the operationId is the function's name. `build(settings)` turns the table
into paths relative to the server `/{routePrefix}` of host.json; `document(settings)` is that,
serialised once. tests/test_openapi.py fails when a trigger is missing here or an entry serves
no trigger.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.config import EntraSettings, FeedAuth, Settings
from shared.http import JSON_TYPE, MAX_BODY_BYTES, PROBLEM_TYPE
from shared.schemas.attestation import ProbeList, ProbePublic, ProbeQuery
from shared.schemas.common import Problem
from shared.schemas.feed import FeedQuery, ServerList, ServerQuery, ServerResponse
from shared.schemas.registrations import (
    AuditTrail,
    RegistrationCreate,
    RegistrationList,
    RegistrationPublic,
    RegistrationQuery,
    RegistrationUpdate,
    StatusChange,
)
from shared.schemas.revisions import PublicationChange, Revision, RevisionList
from shared.schemas.users import UserPublic

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
SCHEMA_REF = "#/components/schemas/{model}"

Auth = Literal["anonymous", "user", "admin", "feed"]


class HealthStatus(BaseModel):
    """What `GET /health` answers, 200 or 503."""

    model_config = ConfigDict(json_schema_extra={"example": {"status": "healthy", "database": "connected"}})

    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]


@dataclass(frozen=True, slots=True)
class Raw:
    """A body that no model describes: the media types it comes in and one JSON Schema for all."""

    media_types: tuple[str, ...]
    schema: Mapping[str, Any]


Body = type[BaseModel] | Raw


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented non-error answer of an operation."""

    status: int
    description: str
    body: Body | None = None
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP trigger: its Functions route, method and function name, and what it takes and answers.

    `errors` maps each problem+json status the operation can answer to what it means there.
    """

    route: str
    method: str
    function: str
    summary: str
    tag: str
    auth: Auth
    answers: tuple[Answer, ...]
    errors: Mapping[int, str] = field(default_factory=dict)
    request: type[BaseModel] | None = None
    request_example: Mapping[str, Any] | None = None
    query: type[BaseModel] | None = None
    description: str = ""
    cors: bool = False
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # A catch-all trigger serves several shapes of path: each is documented as its own path
    # (`path`, in OpenAPI form) with its own operationId (`name`).
    path: str | None = None
    name: str | None = None
    # Request headers the operation reads, by their `_REQUEST_HEADERS` entry.
    request_headers: tuple[str, ...] = ()


# Problem statuses: the generic meaning, used where an operation gives none of its own.
PROBLEM_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
    412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 428: "Precondition Required", 429: "Too Many Requests",
    500: "Internal Server Error", 503: "Service Unavailable",
}
PROBLEM_EXAMPLES = {
    400: "The request body is not valid JSON.",
    401: "Sign in: send an Authorization header with a Bearer access token.",
    403: "Administrator role required.",
    404: "Registration not found.",
    409: "A registration with this endpoint_url already exists.",
    412: "The registration has a newer revision than the one named; reload it and try again.",
    413: f"The request body must not exceed {MAX_BODY_BYTES} bytes.",
    415: "The request body must be sent as application/json.",
    422: "Invalid body: endpoint_url: Value error, must be an absolute http or https URL",
    428: 'Name the revision you reviewed: send If-Match: "<revision>" or "revision" in the body.',
    # One example for every operation's 429; each operation's description says what it means there.
    429: "Too many requests of this kind for now; try again after Retry-After seconds.",
    500: "An unexpected error occurred. It was logged with invocation id 7f1c….",
    503: "The database is unavailable. Try again shortly.",
}
_VALIDATION_ERRORS = [{"loc": ["body", "endpoint_url"], "type": "value_error",
                       "msg": "Value error, must be an absolute http or https URL"}]

SIGNED_IN = {
    401: "No bearer token, or it is not a valid access token for this API (see `WWW-Authenticate`).",
    403: "The token is valid but may not be used here: an app-only token, a guest while guests are off, "
         "or a token without the required scope.",
    503: "The database, or the sign-in keys on a cold cache, cannot be reached; try again after `Retry-After`.",
}
ADMIN = SIGNED_IN | {403: "The caller is not an administrator (or the token may not be used here)."}
BODY = {
    400: "The body is not valid JSON, or not a JSON object.",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
    415: "The body was sent with a content type other than `application/json`.",
}
QUERY_422 = {422: "A query parameter has a value outside its schema; `errors` says which."}
PENDING_429 = {429: "The submitter already has `MAX_PENDING_PER_USER` registrations awaiting review; try again "
                    "after `Retry-After`, once some are decided."}
STALE_412 = {412: "`If-Match` names a revision that is no longer the latest, or is not a revision number; nothing "
                  "changed."}
_NAMESPACE_422 = {422: "The body fails validation, an unknown field included, or (for anyone but an administrator) "
                       "`server_name` is outside the namespace of the endpoint host; `errors` lists every failure."}
BODY_422 = {422: "The body fails validation, an unknown field included; `errors` lists every failure."}

_REGISTRATION_LINKS = {
    "GetRegistration": {"operationId": "registrations_get",
                        "parameters": {"registration_id": "$response.body#/registration_id"}},
    "UpdateRegistration": {"operationId": "registrations_update",
                           "parameters": {"registration_id": "$response.body#/registration_id"}},
    "DecideRegistration": {"operationId": "registrations_decide",
                           "parameters": {"registration_id": "$response.body#/registration_id"}},
    "DeleteRegistration": {"operationId": "registrations_delete",
                           "parameters": {"registration_id": "$response.body#/registration_id"}},
    "ReadAuditTrail": {"operationId": "registrations_audit",
                       "parameters": {"registration_id": "$response.body#/registration_id"}},
    "ListRevisions": {"operationId": "revisions_list",
                      "parameters": {"registration_id": "$response.body#/registration_id"}},
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

_FILTER_403 = {403: "`outcome`, `drifted` or `findings` from a caller who is not an administrator (or the token may "
                    "not be used here)."}

_FEED_NOTE = """Part of the MCP Registry API v0.1 (use `https://<host>/api` as the registry URL in VS Code or
GitHub Copilot). Anonymous unless the deployment sets `REGISTRY_FEED_AUTH=entra`. Only the
**published revision** of non-deleted registrations appears (deleted ones too with
`include_deleted=true`): an edit awaiting review, or a rejected one, leaves the previously approved
revision live. `status` is `active` or `deprecated` (with `statusMessage`, which clients show). Beside
`io.modelcontextprotocol.registry/official`, `_meta` carries `<REGISTRY_META_NAMESPACE>/attestation`
(`internal.mcp-registry/attestation` by default) with `outcome`, `checkedAt`, `toolCount`, `toolsHash`
and `drifted` of the latest probe of the published revision, where one exists. Every answer carries
CORS headers for any origin, is cacheable for a minute and carries an `ETag`;
`If-None-Match` with it answers 304. A query parameter with an empty value (`?limit=`) is absent, as
on the Functions host."""

_SERVER_NAME_NOTE = """`serverName` is sent URL-encoded (`com.example%2Fweather`); Azure's front end decodes the
`%2F` before the app sees it, so the name may equally arrive as two segments (`com.example/weather`):
both are served."""
_SERVER = "v0.1/servers/{serverName}/{*rest}"
_VERSIONS = "/v0.1/servers/{serverName}/versions"
_VERSION = "/v0.1/servers/{serverName}/versions/{version}"

_REVISIONS_NOTE = """Every create and every edit makes a new numbered revision holding the fields as submitted.
The submitter and administrators see the latest revision; anyone else sees a registration only while
it has a published revision, and then sees that revision's content with status `Approved` (its
`revision`, `updated_at` and `ETag` too), never a pending or rejected edit."""
_VISIBLE_403 = ("The registration is published (so visible) but the caller is neither its submitter nor an "
                "administrator.")

_CREATE_EXAMPLE = {
    "endpoint_url": "https://mcp.contoso.com/weather",
    "endpoint_name": "Weather Tools",
    "description": "Forecasts and alerts for any city.",
    "owner_contact": "weather-team@contoso.com",
    "available_tools": ["forecast", "alerts"],
}

JSON_DOCUMENT = Raw((JSON_TYPE,), {"type": "object", "description": "An OpenAPI 3.1 document."})
HTML_PAGE = Raw(("text/html",), {"type": "string"})
STATIC_FILE = Raw(("text/javascript", "text/css", "text/html", "text/plain"), {"type": "string"})
_NO_CONTENT = "No content."
_NOT_MODIFIED = "Not modified: the `ETag` sent in `If-None-Match` is still current."
_PREFLIGHT = "CORS preflight answered for any origin, without authentication."
_DOCS_ASSET = "One file of the interactive documentation, cacheable for a year when requested with its `?v=`."

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "health", "GET", "health", "Is the app up, and does its database answer?", "health", "anonymous",
        (Answer(200, "The database answered within 2 s.", HealthStatus),
         Answer(503, "The database did not answer within 2 s.", HealthStatus, ("Retry-After",))),
    ),
    Operation(
        "users", "POST", "users_sign_in", "Sign in: create or refresh the caller's user", "users", "user",
        (Answer(201, "The caller's user was created.", UserPublic),
         Answer(200, "The caller's user existed; its name, e-mail and `is_admin` were refreshed from the token.",
                UserPublic)),
        SIGNED_IN,
        description="Takes no body: everything comes from the token. `is_admin` follows the token on every call.",
    ),
    Operation(
        "users/me", "GET", "users_get_me", "The caller's own user", "users", "user",
        (Answer(200, "The caller's user (created on first use).", UserPublic),), SIGNED_IN,
    ),
    Operation(
        "users/{user_id:guid}", "GET", "users_get", "One user, for administrators or that user", "users", "user",
        (Answer(200, "The user.", UserPublic),),
        SIGNED_IN | {403: "The caller is neither an administrator nor this user.", 404: "No user has this id."},
    ),
    Operation(
        "registrations", "POST", "registrations_create", "Submit an endpoint for approval", "registrations", "user",
        (Answer(201, "Created, `Pending`, revision 1, with its URL in `Location`.", RegistrationPublic,
                ("Location", "ETag#revision")),),
        SIGNED_IN | BODY | _NAMESPACE_422 | PENDING_429 | {
            409: "A live registration already has this `endpoint_url` (compared normalised) or `server_name`, as "
                 "its latest or its published revision."},
        request=RegistrationCreate, request_example=_CREATE_EXAMPLE,
        links=_REGISTRATION_LINKS,
        description="""`endpoint_url` must be `https` on a public host and is stored normalised (RFC 3986 section
6: scheme and host lower-cased, trailing dot, default port and a trailing `/` on a non-root path
dropped, percent-encoding normalised, dot-segments removed), so equivalent URLs collide (409); its
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
    ),
    Operation(
        "registrations", "GET", "registrations_list", "List the registrations the caller may see", "registrations",
        "user", (Answer(200, "One page of registrations.", RegistrationList),), SIGNED_IN | QUERY_422 | _FILTER_403,
        query=RegistrationQuery,
        description="An administrator sees every live registration and the caller their own, at their latest "
                    "revision; anyone else's appear only while published, at their published revision "
                    "(`status` `Approved`), and `search`, `status` and `total` apply to what the caller sees."
                    "\n\n" + _LIST_DESCRIPTION,
    ),
    Operation(
        "registrations/my", "GET", "registrations_my", "List the caller's own registrations", "registrations",
        "user", (Answer(200, "One page of the caller's registrations.", RegistrationList),),
        SIGNED_IN | QUERY_422 | _FILTER_403,
        query=RegistrationQuery, description=_LIST_DESCRIPTION,
    ),
    Operation(
        "registrations/{registration_id:guid}", "GET", "registrations_get", "One registration", "registrations",
        "user", (Answer(200, "The registration.", RegistrationPublic, ("ETag#revision",)),),
        SIGNED_IN | {404: "No live registration has this id, or the caller may not see it."},
        description=_REVISIONS_NOTE,
    ),
    Operation(
        "registrations/{registration_id:guid}", "PATCH", "registrations_update", "Edit a registration",
        "registrations", "user",
        (Answer(200, "The registration at its new revision.", RegistrationPublic, ("ETag#revision",)),),
        SIGNED_IN | BODY | _NAMESPACE_422 | STALE_412 | PENDING_429 | {
            403: _VISIBLE_403,
            404: "No live registration has this id, or the caller may not see it.",
            409: "Another live registration already has this `endpoint_url` or `server_name` (latest or "
                 "published)."},
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
    ),
    Operation(
        "registrations/{registration_id:guid}/status", "PATCH", "registrations_decide",
        "Approve or reject a pending revision", "registrations", "admin",
        (Answer(200, "The decided registration.", RegistrationPublic, ("ETag#revision",)),),
        ADMIN | BODY | BODY_422 | STALE_412 | {
            403: "The caller is not an administrator, or submitted this revision themselves (unless "
                 "`REVIEW_ALLOW_SELF_APPROVAL=true`).",
            404: "No live registration has this id.",
            409: "The latest revision is no longer `Pending`: it was already decided.",
            412: "`If-Match` or the body's `revision` names a revision that is no longer the latest (or they "
                 "disagree, or `If-Match` is not a revision number); nothing changed.",
            428: "Neither `If-Match` nor `revision` names the revision, and `REVIEW_REQUIRE_MATCH=true`."},
        request=StatusChange, request_example={"status": "Approved", "reason": "Reviewed by the platform team.",
                                               "revision": 1},
        request_headers=("If-Match",),
        description="""Decides one revision: the one `If-Match: "<revision>"` or the body's `revision` names,
which must be the latest and `Pending`; without either, the latest revision if it is `Pending` (unless
`REVIEW_REQUIRE_MATCH=true`: 428). Sets `status`, `approver_id`, `approved_at` and `status_reason`.
Approving publishes the revision in the feed (a deprecated registration stays deprecated; one
published for the first time is `active`); rejecting leaves the published revision, if any, live.
Audited as `Approved` or `Rejected` with the revision's `endpoint_url`, `server_name` and `version`.""",
    ),
    Operation(
        "registrations/{registration_id:guid}", "DELETE", "registrations_delete", "Delete a registration",
        "registrations", "admin", (Answer(204, _NO_CONTENT),),
        ADMIN | {404: "No live registration has this id (it never existed or is already deleted)."},
        description="Soft delete: the row and its audit trail stay, audited as `Deleted`; the `endpoint_url` "
                    "and `server_name` become free for a new submission. The feed's incremental sync reports "
                    "it as `deleted`.",
    ),
    Operation(
        "registrations/{registration_id:guid}/audit", "GET", "registrations_audit",
        "The audit trail of a registration", "registrations", "user",
        (Answer(200, "Every entry, oldest first.", AuditTrail),),
        SIGNED_IN | {
            403: "The registration is `Approved` but the caller is neither its submitter nor an administrator.",
            404: "No registration has this id, or the caller may not see it."},
        description="For administrators and the submitter. Every entry names the revision it is about. Deleted "
                    "registrations keep their trail and can still be read here.",
    ),
    Operation(
        "registrations/{registration_id:guid}/revisions", "GET", "revisions_list",
        "The revisions of a registration", "registrations", "user",
        (Answer(200, "Every revision, oldest first.", RevisionList),),
        SIGNED_IN | {403: _VISIBLE_403, 404: "No live registration has this id, or the caller may not see it."},
        description="For administrators and the submitter: each revision as submitted, and its decision.",
    ),
    Operation(
        "registrations/{registration_id:guid}/revisions/{revision:int}", "GET", "revisions_get",
        "One revision of a registration", "registrations", "user",
        (Answer(200, "The revision.", Revision),),
        SIGNED_IN | {403: _VISIBLE_403,
                     404: "No live registration has this id, the caller may not see it, or it has no such revision."},
    ),
    Operation(
        "registrations/{registration_id:guid}/revisions/{revision:int}/publish", "POST", "revisions_publish",
        "Publish an earlier approved revision again (rollback)", "registrations", "admin",
        (Answer(200, "The registration, now publishing that revision.", RegistrationPublic, ("ETag#revision",)),),
        ADMIN | {404: "No live registration has this id, or it has no such revision.",
                 409: "The revision was never approved, or another live registration holds its `endpoint_url` or "
                      "`server_name`."},
        description="The feed serves that revision from now on; the latest revision and its status do not change. "
                    "Audited as `Published`.",
    ),
    Operation(
        "registrations/{registration_id:guid}/publication", "PATCH", "registrations_publication",
        "Deprecate or reactivate the published revision", "registrations", "admin",
        (Answer(200, "The registration.", RegistrationPublic, ("ETag#revision",)),),
        ADMIN | BODY | BODY_422 | {404: "No live registration has this id.",
                                   409: "Nothing of this registration is published yet."},
        request=PublicationChange,
        request_example={"publication": "deprecated", "message": "Use com.contoso/weather-v2 instead."},
        description="A deprecated server stays in the feed with `status: deprecated` and `statusMessage` (the "
                    "`message`), which clients show. Audited as `Deprecated` or `Reactivated`.",
    ),
    Operation(
        "v0.1/servers", "GET", "feed_servers", "List published MCP servers", "feed", "feed",
        (Answer(200, "One page of servers.", ServerList, ("ETag",)), Answer(304, _NOT_MODIFIED, None, ("ETag",))),
        QUERY_422 | {503: SIGNED_IN[503]},
        query=FeedQuery, cors=True,
        description=_FEED_NOTE + """

Ordered by `server_name`, paged by an opaque, URL-safe `cursor` (`metadata.nextCursor`, absent on
the last page) that also carries the first page's filters. `search` is a case-insensitive substring
of the server name; one longer than 200 characters matches nothing (an empty page, not an error).
`version=latest` is the same as no `version`: the listing shows each server's published version;
another `version` lists servers whose published version it is. `include_deleted=true` also lists
servers that were published and are now deleted, with status `deleted`. `updated_since` (RFC 3339,
within the years 0001–9999 once converted to UTC) turns the listing into an incremental sync ordered
by the time of public change (publication, deprecation, deletion; never an edit awaiting review),
including entries deleted since then with status `deleted` (`include_deleted` is implied). Unknown
query parameters are ignored.""",
    ),
    Operation(
        _SERVER, "GET", "feed_server", "The versions of one server", "feed", "feed",
        (Answer(200, "Every approved version, one per version string, oldest revision first; `isLatest` marks the "
                     "published one (with `include_deleted=true`, deleted entries after them).", ServerList,
                ("ETag",)),
         Answer(304, _NOT_MODIFIED, None, ("ETag",))),
        QUERY_422 | {404: "No published server has this name.", 503: SIGNED_IN[503]}, cors=True, query=ServerQuery,
        description=_FEED_NOTE + "\n\n" + _SERVER_NAME_NOTE, path=_VERSIONS, name="feed_server_versions",
    ),
    Operation(
        _SERVER, "GET", "feed_server", "One version of one server", "feed", "feed",
        (Answer(200, "The server.", ServerResponse, ("ETag",)), Answer(304, _NOT_MODIFIED, None, ("ETag",))),
        QUERY_422 | {404: "No published server has this name and version.", 503: SIGNED_IN[503]}, cors=True,
        query=ServerQuery,
        description=_FEED_NOTE + "\n\n" + _SERVER_NAME_NOTE + " `version` may be `latest` (the published one); with "
                    "`include_deleted=true`, `latest` is the live entry, else the last one deleted.",
        path=_VERSION, name="feed_server_version",
    ),
    Operation("v0.1/servers", "OPTIONS", "feed_servers", "CORS preflight", "feed", "anonymous",
              (Answer(204, _PREFLIGHT),), cors=True),
    Operation(_SERVER, "OPTIONS", "feed_server", "CORS preflight", "feed", "anonymous",
              (Answer(204, _PREFLIGHT),), cors=True, path=_VERSIONS, name="feed_server_versions"),
    Operation(_SERVER, "OPTIONS", "feed_server", "CORS preflight", "feed", "anonymous",
              (Answer(204, _PREFLIGHT),), cors=True, path=_VERSION, name="feed_server_version"),
    Operation(
        "openapi.json", "GET", "openapi_document", "This OpenAPI document", "docs", "anonymous",
        (Answer(200, "The OpenAPI 3.1 description of every operation.", JSON_DOCUMENT, ("ETag",)),
         Answer(304, _NOT_MODIFIED, None, ("ETag",))),
    ),
    Operation(
        "docs", "GET", "docs_page", "Interactive documentation", "docs", "anonymous",
        (Answer(200, "Swagger UI over this document; every file it loads is served by the app itself.", HTML_PAGE),),
        description="Open it in a browser. **Authorize** takes a bearer access token (or signs in with Entra ID "
                    "where the app registration allows this page's redirect URI), and **Try it out** calls this "
                    "same host.",
    ),
    Operation(
        "docs/{asset}", "GET", "docs_asset", "A file of the interactive documentation", "docs", "anonymous",
        (Answer(200, _DOCS_ASSET, STATIC_FILE, ("ETag",)), Answer(304, _NOT_MODIFIED, None, ("ETag",))),
        {404: "Not one of the documentation's files."},
    ),
    Operation(
        "registrations/{registration_id:guid}/probe", "POST", "probes_request", "Probe a registration's endpoint now",
        "attestation", "user", (Answer(200, "The probe, stored.", ProbePublic),),
        SIGNED_IN | {
            403: "The registration is `Approved` but the caller is neither its submitter nor an administrator.",
            404: "No live registration has this id, or the caller may not see it.",
            409: "Probing is off: `PROBE_SCHEDULE` is not set.",
            429: "A probe of this registration was asked for through this endpoint less than a minute ago; "
                 "`Retry-After` says when the next may be."},
        description="""Speaks MCP to the endpoint of the registration's latest revision (at most 10 s, 1 MiB) through
the egress guard and answers with the stored probe: `outcome` is `ok`, `auth_required` (401/403 with
`WWW-Authenticate`; `auth` then holds the RFC 9728 metadata it names), `wrong_transport` (the endpoint
speaks the other transport; its tools are shown), `not_mcp`, `unreachable` (DNS, connection, TLS),
`timeout` or `refused` (an address the submission rules refuse, or more than 1 MiB). A non-`ok`
outcome is a 200 too: the probe ran. Probes queued after an edit and the timer's do not count
towards the one-a-minute limit.""",
    ),
    Operation(
        "registrations/{registration_id:guid}/probes", "GET", "probes_list", "The probes of a registration",
        "attestation", "user", (Answer(200, "One page of probes, newest first.", ProbeList),),
        SIGNED_IN | QUERY_422 | {
            403: "The registration is `Approved` but the caller is neither its submitter nor an administrator.",
            404: "No live registration has this id, or the caller may not see it."},
        query=ProbeQuery, description="For administrators and the submitter, like the audit trail.",
    ),
    Operation(
        "registrations/{registration_id:guid}/probes/latest", "GET", "probes_latest",
        "The latest probe of a registration", "attestation", "user", (Answer(200, "The latest probe.", ProbePublic),),
        SIGNED_IN | {
            403: "The registration is `Approved` but the caller is neither its submitter nor an administrator.",
            404: "No live registration has this id, the caller may not see it, or it was never probed."},
    ),
    Operation(
        "registrations/{registration_id:guid}/attestation/accept", "POST", "attestation_accept",
        "Accept a drifted tool surface as the new baseline", "attestation", "admin",
        (Answer(200, "The registration, no longer drifted.", RegistrationPublic, ("ETag#revision",)),),
        ADMIN | {403: "The caller is not an administrator, or submitted this registration (another administrator "
                      "must accept).",
                 404: "No live registration has this id.",
                 409: "Nothing to accept: the published revision has not drifted (or has no `ok` probe)."},
        description="""Takes the latest `ok` probe of the published revision as its baseline, clears `drifted` and
writes a `DriftAccepted` audit entry (its metadata names the new and the previous baseline probe and
hash). Where `DRIFT_POLICY=withdraw` deprecated the server because of the drift, it is reactivated
(`reactivated: true` in the entry). No body.""",
    ),
)

TAGS = (
    {"name": "health", "description": "Liveness and database reachability, for probes."},
    {"name": "users", "description": "The signed-in caller's user, and users for administrators."},
    {"name": "registrations", "description": "Submitting, reviewing and auditing MCP endpoints."},
    {"name": "attestation", "description": "Probes: what each registered endpoint really exposes over MCP."},
    {"name": "feed", "description": "The MCP Registry API v0.1 feed of approved servers, read by MCP clients."},
    {"name": "docs", "description": "This document and its interactive documentation."},
)

_INTRO = """An internal registry of MCP (Model Context Protocol) server endpoints. Anyone signed in with
Microsoft Entra ID submits an endpoint; administrators approve or reject it; every decision is
audited; approved endpoints are published in a feed that MCP clients read directly.

**Authentication.** Every operation but health, the feed (unless configured otherwise) and these
docs takes `Authorization: Bearer <access token>` issued by Entra ID for this API. Administrators
hold the app role or group the deployment names.

**Errors.** Every error is `application/problem+json` (RFC 9457) with a string `detail`; a 422 adds
`errors` (`loc`, `msg`, `type`) for every failed field. 401 carries `WWW-Authenticate`; 503 carries
`Retry-After`. A 500 is a bug: its body names only the invocation id under which it was logged.

**Visibility.** An administrator sees every registration and the submitter their own, at the latest
revision; anyone else sees registrations that have a published revision, at that revision. Whatever
the caller may not see answers 404, so existence does not leak.
Deleted registrations are invisible to every read but the audit trail and the feed's incremental
sync.

**Bodies.** JSON objects in UTF-8, at most 64 KiB; an unknown field is 422.

**Answered by the Functions host.** A path that matches no operation, an id that is not a GUID
included, is 404 without a body; a URL over 8 KiB is 414."""

_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "The URL of the created resource.", "required": True,
                 "schema": {"type": "string", "format": "uri"}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "WWW-Authenticate": {"description": "The RFC 6750 challenge: `Bearer`, with `error` when a token was sent.",
                         "required": True, "schema": {"type": "string", "pattern": "^Bearer"}},
    "ETag": {"description": "A strong validator of the body, for `If-None-Match`.", "required": True,
             "schema": {"type": "string"}},
    "ETag#revision": {"description": 'The revision the registration shows, quoted (`"3"`): send it back in '
                                     "`If-Match` to change that revision and no other.", "required": True,
                      "schema": {"type": "string", "pattern": '^"[1-9][0-9]*"$'}},
    "Access-Control-Allow-Origin": {"description": "Any origin may read the feed.", "required": True,
                                    "schema": {"const": "*"}},
}
_REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "If-Match": {"name": "If-Match", "in": "header", "required": False,
                 "description": 'The revision the change is meant for, as the `ETag` named it (`"3"`); a different '
                                "or non-numeric one is 412 and changes nothing; `*` is the same as leaving it out.",
                 "schema": {"type": "string", "examples": ['"3"']}},
}
_PATH_PARAMETERS = {
    "registration_id": "The registration's id.",
    "user_id": "The user's id.",
    "serverName": "The server's name, URL-encoded: `com.example%2Fweather` (a decoded `/` works too).",
    "version": "A version of the server, or `latest`.",
    "asset": "The file's name.",
    "revision": "The revision's number (1, 2, 3 …).",
}
# For query models whose fields carry no description of their own.
_QUERY_PARAMETERS = {
    "status": "Only registrations in this status.",
    "submitter_id": "Only registrations submitted by this user.",
    "search": "Case-insensitive substring of `endpoint_name`, `owner_contact`, `endpoint_url` or `description`; "
              "`%` and `_` match themselves.",
    "limit": "How many results at most.",
    "offset": "How many results to skip.",
}
_ROUTE_PARAMETER = re.compile(r"\{\*?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[a-z]+))?\??\}")
_CONSTRAINT_SCHEMAS: dict[str | None, dict[str, Any]] = {
    "guid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "bool": {"type": "boolean"},
    "alpha": {"type": "string", "pattern": "^[A-Za-z]+$"},
}


@lru_cache(maxsize=1)
def route_prefix() -> str:
    """host.json's `extensions.http.routePrefix` (default `api`); read once, on first use."""
    host = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    prefix: str = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


def openapi_path(route: str) -> str:
    """`registrations/{registration_id:guid}` -> `/registrations/{registration_id}`."""
    return "/" + _ROUTE_PARAMETER.sub(lambda match: "{" + match["name"] + "}", route.strip("/"))


def asset_names() -> tuple[str, ...]:
    """The documentation's files, in the order the path parameter lists them."""
    from shared.routes.docs import ASSETS

    return tuple(ASSETS)


def operation_id(operation: Operation) -> str:
    """The function's name (or the operation's own under a catch-all); a preflight shares its function
    with a GET, and ids must be unique."""
    name = operation.name or operation.function
    return f"{name}_preflight" if operation.method == "OPTIONS" else name


def documented_path(operation: Operation) -> str:
    return operation.path or openapi_path(operation.route)


def _oauth_scope(entra: EntraSettings) -> str:
    return f"api://{entra.api_client_id}/{entra.required_scope or '.default'}"


def _security_schemes(entra: EntraSettings) -> dict[str, Any]:
    endpoint = f"{entra.authority}/{entra.tenant_id}/oauth2/v2.0"
    return {
        "bearer": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": f"An Entra ID access token for this API (audience `{entra.api_client_id}` or "
                           f"`api://{entra.api_client_id}`), pasted as it is.",
        },
        "entra": {
            "type": "oauth2",
            "description": "Sign in with Entra ID (authorization code with PKCE).",
            "flows": {"authorizationCode": {
                "authorizationUrl": f"{endpoint}/authorize",
                "tokenUrl": f"{endpoint}/token",
                "scopes": {_oauth_scope(entra): "Call the MCP Endpoint Registry as the signed-in user."},
            }},
        },
    }


def _strip_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without its `null` branch: a query string has no null."""
    options = schema.get("anyOf")
    result = {key: value for key, value in schema.items() if key not in ("anyOf", "title")}
    if result.get("default", "") is None:
        del result["default"]
    if options is not None:
        kept = [option for option in options if option.get("type") != "null"]
        result.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
    return result


class _Schemas:
    """The component schemas of every model the operations name, built in one pass so that names and
    shared definitions agree; validation schemas for what the API reads, serialization for what it writes."""

    def __init__(self, operations: tuple[Operation, ...]) -> None:
        uses: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for operation in operations:
            if operation.request is not None:
                uses[(operation.request, "validation")] = None
            for answer in operation.answers:
                if isinstance(answer.body, type):
                    uses[(answer.body, "serialization")] = None
        uses[(Problem, "serialization")] = None
        refs, definitions = models_json_schema(list(uses), ref_template=SCHEMA_REF)
        self.refs = refs
        self.components: dict[str, Any] = dict(definitions.get("$defs", {}))

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        self.components.update(schema.get("$defs", {}))
        required = set(schema.get("required", ()))
        parameters = []
        for name, property_schema in schema["properties"].items():
            parameter_schema = _strip_null(property_schema)
            description = parameter_schema.pop("description", None) or _QUERY_PARAMETERS.get(name)
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                         "schema": parameter_schema}
            if name not in required:
                # An empty value is the parameter left out, as on the Functions host (shared.http.parse_query).
                parameter["allowEmptyValue"] = True
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        return parameters


def _media(body: Body, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(body, Raw):
        return {media_type: {"schema": dict(body.schema)} for media_type in body.media_types}
    return {JSON_TYPE: {"schema": schemas.ref(body, "serialization")}}


def _headers(names: tuple[str, ...], cors: bool) -> dict[str, Any]:
    """Response headers by their `_HEADERS` entry; `Name#variant` documents `Name` with another meaning."""
    chosen = (*names, "Access-Control-Allow-Origin") if cors else names
    return {name.split("#", 1)[0]: _HEADERS[name] for name in chosen}


def _problem(status: int, description: str, schemas: _Schemas, cors: bool) -> dict[str, Any]:
    example: dict[str, Any] = {"type": "about:blank", "title": PROBLEM_TITLES[status], "status": status,
                               "detail": PROBLEM_EXAMPLES[status]}
    if status == 422:
        example["errors"] = _VALIDATION_ERRORS
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": schemas.ref(Problem, "serialization"), "example": example}},
    }
    names = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}.get(status, ())
    headers = _headers(names, cors)
    if headers:
        response["headers"] = headers
    return response


def _parameters(operation: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters = []
    for match in _ROUTE_PARAMETER.finditer(operation.path or operation.route):
        name = match["name"]
        schema = dict(_CONSTRAINT_SCHEMAS.get(match["constraint"], {"type": "string"}))
        if name == "asset":
            schema["enum"] = list(asset_names())
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in _PATH_PARAMETERS:
            parameter["description"] = _PATH_PARAMETERS[name]
        parameters.append(parameter)
    if operation.query is not None:
        parameters += schemas.query_parameters(operation.query)
    parameters += [dict(_REQUEST_HEADERS[name]) for name in operation.request_headers]
    return parameters


def _security(auth: Auth, entra: EntraSettings, feed_auth: FeedAuth) -> list[dict[str, list[str]]]:
    if auth == "anonymous" or (auth == "feed" and feed_auth == "anonymous"):
        return []
    return [{"bearer": []}, {"entra": [_oauth_scope(entra)]}]


def _operation(operation: Operation, schemas: _Schemas, entra: EntraSettings, feed_auth: FeedAuth) -> dict[str, Any]:
    security = _security(operation.auth, entra, feed_auth)
    errors = dict(operation.errors)
    if operation.auth == "feed" and security:
        errors.update({401: SIGNED_IN[401], 403: SIGNED_IN[403]})
    errors[500] = "A bug; the body names the invocation id under which it was logged."
    responses: dict[str, Any] = {}
    for answer in operation.answers:
        response: dict[str, Any] = {"description": answer.description}
        if answer.body is not None:
            response["content"] = _media(answer.body, schemas)
        headers = _headers(answer.headers, operation.cors)
        if headers:
            response["headers"] = headers
        if operation.links and answer.status < 300:
            response["links"] = {name: dict(link) for name, link in operation.links.items()}
        responses[str(answer.status)] = response
    for status in sorted(errors):
        responses[str(status)] = _problem(status, errors[status], schemas, operation.cors)
    result: dict[str, Any] = {
        "operationId": operation_id(operation),
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": security,
        "responses": responses,
    }
    if operation.description:
        result["description"] = operation.description
    parameters = _parameters(operation, schemas)
    if parameters:
        result["parameters"] = parameters
    if operation.request is not None:
        media: dict[str, Any] = {"schema": schemas.ref(operation.request, "validation")}
        if operation.request_example is not None:
            media["example"] = dict(operation.request_example)
        result["requestBody"] = {"required": True, "content": {JSON_TYPE: media}}
    return result


def build(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document for these settings (the sign-in endpoints and the feed's authentication)."""
    entra = settings.entra
    schemas = _Schemas(OPERATIONS)
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        item = paths.setdefault(documented_path(operation), {})
        item[operation.method.lower()] = _operation(operation, schemas, entra, settings.feed_auth)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "MCP Endpoint Registry", "version": API_VERSION, "description": _INTRO},
        "servers": [{"url": f"/{route_prefix()}", "description": "This host."}],
        "tags": list(TAGS),
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": _security_schemes(entra)},
    }


@lru_cache(maxsize=4)
def document(settings: Settings) -> bytes:
    """The document as served, built once per settings (they change only on a restart)."""
    return json.dumps(build(settings), ensure_ascii=False, separators=(",", ":")).encode()
