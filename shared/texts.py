"""The texts the OpenAPI document shares between operations: what each problem status means,
its example, the standard headers and parameters, the tags and the introduction."""

from __future__ import annotations

from typing import Any

from shared.http import MAX_BODY_BYTES
from shared.policy import NOT_FOUND

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
    404: NOT_FOUND,
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
# The headers every problem answer of a status carries, by their `HEADERS` entry.
PROBLEM_HEADERS: dict[int, tuple[str, ...]] = {401: ("WWW-Authenticate",), 429: ("Retry-After",),
                                               503: ("Retry-After",)}
VALIDATION_ERRORS = [{"loc": ["body", "endpoint_url"], "type": "value_error",
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
NAMESPACE_422 = {422: "The body fails validation, an unknown field included, or (for anyone but an administrator) "
                      "`server_name` is outside the namespace of the endpoint host; `errors` lists every failure."}
BODY_422 = {422: "The body fails validation, an unknown field included; `errors` lists every failure."}

BUG = "A bug; the body names the invocation id under which it was logged."
INVISIBLE = "No live registration has this id, or the caller may not see it."
NOT_SUBMITTER = "The registration is `Approved` but the caller is neither its submitter nor an administrator."
VISIBLE_403 = "The registration is published (so visible) but the caller is neither its submitter nor an administrator."
NO_CONTENT = "No content."
# A `{name:guid}` route parameter that the host routed and Python cannot read is an unknown id.
UNKNOWN_ID = {"registration_id": NOT_FOUND, "user_id": "No user has this id.",
              "probe_id": "This registration has no probe with this id.",
              "subscription_id": "Subscription not found."}
NOT_MODIFIED = "Not modified: the `ETag` sent in `If-None-Match` is still current."

TAGS = (
    {"name": "health", "description": "Liveness, database reachability and the feed's snapshot, for probes."},
    {"name": "users", "description": "The signed-in caller's user, and users for administrators."},
    {"name": "registrations", "description": "Submitting, reviewing and auditing MCP endpoints."},
    {"name": "attestation", "description": "Probes: what each registered endpoint really exposes over MCP."},
    {"name": "notifications", "description": "Webhook and Teams subscriptions to the registry's events, and their "
                                             "delivery log, for administrators."},
    {"name": "feed", "description": "The MCP Registry API v0.1 feed of approved servers, read by MCP clients."},
    {"name": "demand", "description": "Server names clients asked the feed for that are not published here."},
    {"name": "docs", "description": "This document and its interactive documentation."},
)

INTRO = """An internal registry of MCP (Model Context Protocol) server endpoints. Anyone signed in with
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

HEADERS: dict[str, dict[str, Any]] = {
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
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "If-Match": {"name": "If-Match", "in": "header", "required": False,
                 "description": 'The revision the change is meant for, as the `ETag` named it (`"3"`); a different '
                                "or non-numeric one is 412 and changes nothing; `*` is the same as leaving it out.",
                 "schema": {"type": "string", "examples": ['"3"']}},
}
PATH_PARAMETERS = {
    "registration_id": "The registration's id.",
    "user_id": "The user's id.",
    "subscription_id": "The subscription's id.",
    "serverName": "The server's name, URL-encoded: `com.example%2Fweather` (a decoded `/` works too).",
    "version": "A version of the server, or `latest`.",
    "asset": "The file's name.",
    "revision": "The revision's number (1, 2, 3 …).",
}
# For query models whose fields carry no description of their own.
QUERY_PARAMETERS = {
    "status": "Only registrations in this status.",
    "submitter_id": "Only registrations submitted by this user.",
    "search": "Case-insensitive substring of `endpoint_name`, `owner_contact`, `endpoint_url` or `description`; "
              "`%` and `_` match themselves.",
    "limit": "How many results at most.",
    "offset": "How many results to skip.",
}
