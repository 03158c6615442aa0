"""The MCP Registry v0.1 feed that VS Code and GitHub Copilot read: `GET /api/v0.1/servers...`.

Anonymous unless REGISTRY_FEED_AUTH=entra. Browsers may call it from any origin, so every
answer carries CORS headers (errors included) and preflights are answered here, before any
sign-in. Answers are cacheable for a minute and carry a strong ETag of their body.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import azure.functions as func
from pydantic import BaseModel

from shared.auth import authenticate
from shared.config import get_settings
from shared.db import database
from shared.errors import NotFound
from shared.http import FunctionEntry, empty_response, encoded_json_response, endpoint, parse_query
from shared.schemas.feed import FeedQuery, ServerQuery, server_list, server_response
from shared.services import feed

blueprint = func.Blueprint()

SERVERS = "v0.1/servers"
# One catch-all serves `{serverName}/versions` and `{serverName}/versions/{version}`, whether the
# name's slash arrives encoded or decoded (see _server_path). It takes at least one segment after
# `servers`, so it never competes with SERVERS itself.
SERVER = f"{SERVERS}/{{serverName}}/{{*rest}}"
METHODS = ["GET", "OPTIONS"]
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
}
PREFLIGHT_MAX_AGE = "86400"
MAX_AGE_SECONDS = 60


def feed_edge(entry: FunctionEntry) -> FunctionEntry:
    """Answer preflights without calling the handler, and put CORS headers on every answer."""

    @functools.wraps(entry)
    async def feed_entry(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        if req.method.upper() == "OPTIONS":
            response = empty_response(204, {"Access-Control-Max-Age": PREFLIGHT_MAX_AGE})
        else:
            response = await entry(req, context)
        for name, value in CORS_HEADERS.items():
            response.headers[name] = value
        return response

    return feed_entry


async def _authorise(req: func.HttpRequest) -> None:
    if get_settings().feed_auth == "entra":
        await authenticate(req)


def _cached(req: func.HttpRequest, body: BaseModel) -> func.HttpResponse:
    """200 with the body, or 304 without it when the client already holds this exact body."""
    payload = body.model_dump_json(by_alias=True, exclude_none=True).encode()
    etag = f'"{hashlib.sha256(payload).hexdigest()}"'
    scope = "private" if get_settings().feed_auth == "entra" else "public"
    headers = {"ETag": etag, "Cache-Control": f"{scope}, max-age={MAX_AGE_SECONDS}"}
    held = {tag.strip().removeprefix("W/") for tag in (req.headers.get("If-None-Match") or "").split(",")}
    if etag in held or "*" in held:
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


@blueprint.route(route=SERVERS, methods=METHODS)
@feed_edge
@endpoint
async def feed_servers(req: func.HttpRequest) -> func.HttpResponse:
    await _authorise(req)
    query = parse_query(req, FeedQuery)
    rows, next_cursor = await feed.list_servers(db=database, query=query)
    return _cached(req, server_list(rows, next_cursor, get_settings().meta_namespace))


@blueprint.route(route=SERVER, methods=METHODS)
@feed_edge
@endpoint
async def feed_server(req: func.HttpRequest) -> func.HttpResponse:
    """`/versions` (a list) or `/versions/{version}` (one entry, `latest` allowed) of one server."""
    await _authorise(req)
    target = _server_path(req.route_params.get("serverName", ""), req.route_params.get("rest", ""))
    if target is None:
        raise NotFound(feed.SERVER_NOT_FOUND)
    deleted = bool(parse_query(req, ServerQuery).include_deleted)
    if target.version is None:
        rows = await feed.server_versions(db=database, name=target.name, include_deleted=deleted)
        return _cached(req, server_list(rows, None, get_settings().meta_namespace))
    row = await feed.server_version(db=database, name=target.name, version=target.version, include_deleted=deleted)
    return _cached(req, server_response(row, get_settings().meta_namespace))
