"""The MCP Registry v0.1 feed that VS Code and GitHub Copilot read: `GET /api/v0.1/servers...`.

Anonymous unless REGISTRY_FEED_AUTH=entra (the `feed` access rule). Browsers may call it from
any origin, so the operations are declared with `cors`: every answer carries CORS headers (errors
included) and preflights are answered before any sign-in. Answers are cacheable for a minute and
carry a strong ETag of their body.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass

import azure.functions as func
from pydantic import BaseModel

from shared import texts
from shared.config import get_settings
from shared.declare import NOT_MODIFIED, Answer, Call, Routes, Shape
from shared.errors import NotFound
from shared.http import client_holds, empty_response, encoded_json_response
from shared.schemas.feed import FeedQuery, ServerList, ServerQuery, ServerResponse, server_list, server_response
from shared.services import feed
from shared.services.demand import demand
from shared.services.feed_snapshot import snapshots

routes = Routes("feed")
blueprint = routes.blueprint

SERVERS = "v0.1/servers"
# One catch-all serves `{serverName}/versions` and `{serverName}/versions/{version}`, whether the
# name's slash arrives encoded or decoded (see _server_path). It takes at least one segment after
# `servers`, so it never competes with SERVERS itself.
SERVER = f"{SERVERS}/{{serverName}}/{{*rest}}"
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)
MAX_AGE_SECONDS = 60
# Demand flushes running beside their answers; the loop keeps only weak references to tasks.
_flushes: set[asyncio.Task[int]] = set()
_ERRORS = texts.QUERY_422 | {503: texts.SIGNED_IN[503]}
FEED_NOTE = """Part of the MCP Registry API v0.1 (use `https://<host>/api` as the registry URL in VS Code or
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

SERVER_NAME_NOTE = """`serverName` is sent URL-encoded (`com.example%2Fweather`); Azure's front end decodes the
`%2F` before the app sees it, so the name may equally arrive as two segments (`com.example/weather`):
both are served."""


def _cached(req: func.HttpRequest, body: BaseModel, age: int | None) -> func.HttpResponse:
    """200 with the body, or 304 without it when the client already holds this exact body.

    `age`: seconds since a snapshot that could not be confirmed current was (RFC 9111 `Age`).
    """
    payload = body.model_dump_json(by_alias=True, exclude_none=True).encode()
    etag = f'"{hashlib.sha256(payload).hexdigest()}"'
    scope = "private" if get_settings().feed_auth == "entra" else "public"
    headers = {"ETag": etag, "Cache-Control": f"{scope}, max-age={MAX_AGE_SECONDS}"}
    if age is not None:
        headers["Age"] = str(age)
    if client_holds(req, etag):
        return empty_response(304, headers)
    return encoded_json_response(payload, headers=headers)


@dataclass(frozen=True, slots=True)
class ServerPath:
    """What a path under `v0.1/servers/` asks for: every version of a server (`version` None) or one."""

    name: str
    version: str | None


def _server_path(head: str, rest: str) -> ServerPath | None:
    """`{serverName}/versions[/{version}]` from the first segment after `v0.1/servers/` and the rest.

    Clients send the name URL-encoded (`com.example%2Fweather`). Core Tools and the Functions host
    keep that `%2F` inside the segment, but Azure's front end decodes it before the host routes the
    request (azure-functions-host #9290, #3998 and #5619, open), so there the name spans two segments.
    A name holds exactly one `/`, which tells the two apart. The host has decoded every other escape
    once already: nothing else is decoded here, so a version sent as `3.0.0-%2541` is `3.0.0-%41`.
    None for a shape the feed does not serve.
    """
    if _ENCODED_SLASH.search(head):
        name, tail = _ENCODED_SLASH.sub("/", head), rest
    else:
        second, _, tail = rest.partition("/")
        name = f"{head}/{second}"
    # Route literals match case-insensitively on the Functions host, as `versions` did in a route of its own.
    kind, _, version = tail.partition("/")
    if kind.lower() != "versions":
        return None
    return ServerPath(name, version or None)


@routes.declare(
    "GET", SERVERS, access="feed", cors=True, summary="List published MCP servers",
    answers=(Answer(200, "One page of servers.", ServerList, ("ETag",)), NOT_MODIFIED), errors=_ERRORS,
    query=FeedQuery,
    description=FEED_NOTE + """

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
)
async def feed_servers(call: Call[None, FeedQuery]) -> func.HttpResponse:
    snapshot, age = await snapshots.current()
    rows, next_cursor = snapshot.list_servers(call.query)
    return _cached(call.req, server_list(rows, next_cursor, get_settings().meta_namespace), age)


@routes.declare(
    "GET", SERVER, access="feed", cors=True, query=ServerQuery, summary="", answers=(),
    shapes=(
        Shape("/v0.1/servers/{serverName}/versions", "feed_server_versions", "The versions of one server",
              (Answer(200, "Every approved version, one per version string, oldest revision first; `isLatest` marks "
                           "the published one (with `include_deleted=true`, deleted entries after them).", ServerList,
                      ("ETag",)), NOT_MODIFIED),
              _ERRORS | {404: "No published server has this name."}, FEED_NOTE + "\n\n" + SERVER_NAME_NOTE),
        Shape("/v0.1/servers/{serverName}/versions/{version}", "feed_server_version", "One version of one server",
              (Answer(200, "The server.", ServerResponse, ("ETag",)), NOT_MODIFIED),
              _ERRORS | {404: "No published server has this name and version."},
              FEED_NOTE + "\n\n" + SERVER_NAME_NOTE + " `version` may be `latest` (the published one); with "
              "`include_deleted=true`, `latest` is the live entry, else the last one deleted."),
    ),
)
async def feed_server(call: Call[None, ServerQuery]) -> func.HttpResponse:
    """`/versions` (a list) or `/versions/{version}` (one entry, `latest` allowed) of one server."""
    params = call.req.route_params
    target = _server_path(params.get("serverName", ""), params.get("rest", ""))
    if target is None:
        raise NotFound(feed.SERVER_NOT_FOUND)
    deleted = bool(call.query.include_deleted)
    snapshot, age = await snapshots.current()
    try:
        if target.version is None:
            rows = snapshot.server_versions(name=target.name, include_deleted=deleted)
            return _cached(call.req, server_list(rows, None, get_settings().meta_namespace), age)
        row = snapshot.server_version(name=target.name, version=target.version, include_deleted=deleted)
        return _cached(call.req, server_response(row, get_settings().meta_namespace), age)
    except NotFound:
        if not snapshot.publishes(target.name):
            _count_demand(target.name)
        raise


def _count_demand(name: str) -> None:
    """Count a lookup of a name nothing publishes; a due flush runs beside the answer, never before it."""
    if demand.count(name) and demand.due():
        flush = asyncio.ensure_future(demand.flush())
        _flushes.add(flush)
        flush.add_done_callback(_flushes.discard)
