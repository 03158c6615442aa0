"""A development host for the HTTP triggers of `function_app.app`.

    python -m tools.devhost [--host 127.0.0.1] [--port 7071]

Core Tools (`func start`) stays the documented way to run the app where it is installed; this
host exists because Core Tools downloads a binary at install, which some machines cannot do.
It serves the same triggers over real HTTP the way the Functions host does: the route prefix
from host.json, each trigger's route and methods, route constraints (`{id:guid}`, `{n:int}`,
`{s:alpha}`, optional `{x?}` and catch-all `{*rest}`). Settings come from the environment, then
from `Values` in local.settings.json. It refuses to start when two routes can match the same
request. Timer triggers run on their schedule (`tools/timers.py`).

Where Azure differs from what would be kind, it does what Azure does, so that tests see it:
- the path is decoded once, `%2F` included, before routing (`split_path`);
- route literals and the route prefix match case-insensitively;
- a query parameter with an empty value is dropped, a repeated one is joined with `,`
  (`function_params`);
- the body reaches the function only with a `Content-Length` above 0 (a chunked body is empty);
- `{x:guid}` takes every format .NET's `Guid.TryParse` takes (`GUID`);
- no platform CORS: every request, OPTIONS included, reaches the routing, and an OPTIONS to a
  route whose trigger does not take it is a 404 from the host (`DevHost.handle`);
- `Content-Type` carries a charset only for `text/*` answers (`_content_type`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import re
import sys
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web
from multidict import MultiMapping

from shared import logs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024

log = logging.getLogger("devhost")

# ASP.NET Core's GuidRouteConstraint, which the Functions host routes with, is Guid.TryParse: the
# formats N (32 digits), D (hyphens), B (braces), P (parentheses) and X (hex fields), surrounding
# white space allowed (Microsoft Learn: "Routing in ASP.NET Core", route constraints; "Guid.TryParse").
_HYPHENATED = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HEX_FIELDS = r"\{0x[0-9a-f]{1,8},0x[0-9a-f]{1,4},0x[0-9a-f]{1,4},\{0x[0-9a-f]{1,2}(?:,0x[0-9a-f]{1,2}){7}\}\}"
GUID = re.compile(rf"^\s*(?:[0-9a-f]{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|\({_HYPHENATED}\)|{_HEX_FIELDS})\s*$",
                  re.IGNORECASE)
_CONSTRAINTS: dict[str, re.Pattern[str]] = {
    "guid": GUID,
    "int": re.compile(r"^-?[0-9]+$"),
    "long": re.compile(r"^-?[0-9]+$"),
    "alpha": re.compile(r"^[a-zA-Z]+$"),
    "bool": re.compile(r"^(?i:true|false)$"),
}
_PARAMETER = re.compile(
    r"^\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[a-z]+))?(?P<optional>\?)?\}$"
)


class RouteError(Exception):
    """A trigger's route cannot be served, or two routes overlap."""


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    constraint: str | None = None
    optional: bool = False
    catch_all: bool = False

    @classmethod
    def parse(cls, text: str, route: str) -> Segment:
        if "{" not in text:
            return cls(literal=text)
        match = _PARAMETER.match(text)
        if match is None:
            raise RouteError(f"route {route!r}: segment {text!r} is not supported by the development host")
        constraint = match.group("constraint")
        if constraint is not None and constraint not in _CONSTRAINTS:
            raise RouteError(f"route {route!r}: constraint {constraint!r} is not supported by the development host")
        return cls(name=match.group("name"), constraint=constraint, optional=bool(match.group("optional")),
                   catch_all=bool(match.group("star")))

    def accepts(self, value: str) -> bool:
        if self.literal is not None:
            return value.lower() == self.literal.lower()
        return self.constraint is None or bool(_CONSTRAINTS[self.constraint].match(value))

    def may_overlap(self, other: Segment) -> bool:
        if self.literal is not None and other.literal is not None:
            return self.literal.lower() == other.literal.lower()
        if self.literal is not None:
            return other.accepts(self.literal)
        if other.literal is not None:
            return self.accepts(other.literal)
        constraints = {self.constraint, other.constraint} - {None}
        return len(constraints) <= 1 or constraints == {"int", "long"}


@dataclass
class Route:
    function_name: str
    template: str
    methods: frozenset[str]
    handler: Callable[..., Awaitable[func.HttpResponse]]
    segments: list[Segment] = field(default_factory=list)
    wants_context: bool = False

    def __post_init__(self) -> None:
        self.segments = [Segment.parse(part, self.template) for part in self.template.strip("/").split("/") if part]
        self.wants_context = "context" in inspect.signature(self.handler).parameters

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                values[segment.name or ""] = "/".join(parts[index:])
                return values
            if index >= len(parts):
                if segment.optional:
                    continue
                return None
            if not segment.accepts(parts[index]):
                return None
            if segment.name is not None:
                values[segment.name] = parts[index]
        return values if len(parts) <= len(self.segments) else None

    def lengths(self) -> tuple[int, float]:
        """The fewest and most segments this route can match."""
        required = sum(1 for segment in self.segments if not segment.optional and not segment.catch_all)
        if any(segment.catch_all for segment in self.segments):
            return required, float("inf")
        return required, float(len(self.segments))

    def overlaps(self, other: Route) -> bool:
        if not self.methods & other.methods:
            return False
        low, high = self.lengths()
        other_low, other_high = other.lengths()
        if max(low, other_low) > min(high, other_high):
            return False
        for mine, theirs in zip(self.segments, other.segments, strict=False):
            if mine.catch_all or theirs.catch_all:
                return True
            if not mine.may_overlap(theirs):
                return False
        return True


@dataclass
class InvocationContext:
    """What the worker hands a function that takes a `context` argument."""

    function_name: str
    invocation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_directory: str = str(PROJECT_ROOT)
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = None


def route_prefix(root: Path = PROJECT_ROOT) -> str:
    host = json.loads((root / "host.json").read_text())
    prefix: str = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


def load_local_settings(root: Path = PROJECT_ROOT, environ: dict[str, str] | None = None) -> None:
    """Copy `Values` of local.settings.json into the environment where it is silent."""
    target = os.environ if environ is None else environ
    path = root / "local.settings.json"
    if not path.exists():
        return
    values = json.loads(path.read_text()).get("Values", {})
    for name, value in values.items():
        if name not in target and isinstance(value, str | int | float | bool):
            target[name] = str(value).lower() if isinstance(value, bool) else str(value)


_indexed: weakref.WeakKeyDictionary[func.FunctionApp, list[Any]] = weakref.WeakKeyDictionary()


def indexed_functions(app: func.FunctionApp) -> list[Any]:
    """`app.get_functions()`, once per app: a second call on the same app raises a duplicate-name
    error (the worker indexes an app exactly once), so every tool and test asks here."""
    if app not in _indexed:
        _indexed[app] = app.get_functions()
    return _indexed[app]


def collect_routes(app: func.FunctionApp) -> list[Route]:
    routes: list[Route] = []
    for function in indexed_functions(app):
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        declared: list[Any] = getattr(trigger, "methods", None) or []
        methods = frozenset(str(getattr(method, "value", method)).upper() for method in declared)
        name = function.get_function_name() or function.get_user_function().__name__
        routes.append(Route(
            function_name=name,
            template=str(getattr(trigger, "route", None) or name),
            methods=methods or frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}),
            handler=function.get_user_function(),
        ))
    for index, route in enumerate(routes):
        for other in routes[index + 1:]:
            if route.overlaps(other):
                raise RouteError(f"routes {route.template!r} ({route.function_name}) and {other.template!r} "
                                 f"({other.function_name}) can match the same request")
    return routes


def split_path(path: str) -> list[str]:
    """Path segments as a function on Azure sees them: the path percent-decoded once, `%2F` included,
    and only then split. Azure's front end decodes an encoded slash before the Functions host routes
    the request, so `servers/{name}/versions` never matches `servers/a%2Fb/versions` there
    (azure-functions-host issues #9290, #3998 and #5619, open; Core Tools alone keeps `%2F` in the
    segment). Doing the same here makes a route that works only with an encoded slash fail locally."""
    return [part for part in unquote(path).split("/") if part]


class DevHost:
    def __init__(self, app: func.FunctionApp, *, prefix: str) -> None:
        self.routes = collect_routes(app)
        self.prefix_parts = [part for part in prefix.split("/") if part]

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = split_path(path)
        # Literals, the prefix included, match case-insensitively (ASP.NET Core routing; Microsoft
        # Learn, "Routing in ASP.NET Core": "Text matching is case-insensitive").
        if [part.lower() for part in parts[: len(self.prefix_parts)]] != [part.lower() for part in self.prefix_parts]:
            return None
        parts = parts[len(self.prefix_parts):]
        for route in self.routes:
            if method in route.methods:
                values = route.match(parts)
                if values is not None:
                    return route, values
        return None

    async def handle(self, request: web.Request) -> web.Response:
        # Azure as deployed: no platform CORS (`siteConfig.cors` is left out), so nothing answers a
        # preflight before the Functions host routes it, and the app answers CORS itself. Platform
        # CORS would answer every preflight before routing, and the app's own CORS headers would have
        # no effect (Microsoft Learn, "Host a RESTful API with CORS in Azure App Service"); on Flex
        # Consumption it is not to be relied on (Microsoft Learn, "Azure Functions Flex Consumption
        # plan hosting", the preview's limits; azure-functions-dotnet-worker #2524). infra/README.md,
        # "CORS", has the detail.
        found = self.find(request.method, request.raw_path.split("?", 1)[0])
        if found is None:
            return web.Response(status=404)
        route, route_params = found
        try:
            # The host hands a body to the worker only when Content-Length is above 0: a chunked
            # body arrives empty (azure-functions-host, GrpcMessageConversionExtensions.ToRpcHttp).
            body = await request.read() if (request.content_length or 0) > 0 else b""
        except web.HTTPRequestEntityTooLarge:
            problem = {"type": "about:blank", "title": "Content Too Large", "status": 413,
                       "detail": "The request body must not exceed 65536 bytes."}
            return web.json_response(problem, status=413, content_type="application/problem+json")
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=function_params(request.query),
            route_params=route_params,
            body=body,
        )
        context = InvocationContext(route.function_name)
        arguments: dict[str, Any] = {"req": http_request}
        if route.wants_context:
            arguments["context"] = cast(func.Context, context)
        # Like the worker, which ties every record a function logs to its invocation.
        with logs.invocation(context.invocation_id):
            response = await route.handler(**arguments)
        return self._to_aiohttp(response, request)

    def _to_aiohttp(self, response: func.HttpResponse, request: web.Request) -> web.Response:
        headers = {name: value for name, value in response.headers.items() if name.lower() != "content-length"}
        if response.mimetype and "content-type" not in {name.lower() for name in headers}:
            headers["Content-Type"] = _content_type(response)
        body = response.get_body() if response.status_code not in (204, 304) else None
        if request.method == "HEAD":
            body = None
        return web.Response(status=response.status_code, headers=headers, body=body)


def function_params(query: MultiMapping[str]) -> dict[str, str]:
    """The query as a Python function on Azure gets it. ASP.NET Core groups a key's values
    case-insensitively under its first spelling; the host joins them with `,` and drops a key whose
    joined value is empty (azure-functions-host, GrpcMessageConversionExtensions.ToRpcHttp:
    `pair.Value.ToString()`, then `if (!string.IsNullOrEmpty(value))`)."""
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for key in dict.fromkeys(query):
        grouped.setdefault(spelling.setdefault(key.lower(), key), []).extend(query.getall(key))
    joined = {key: ",".join(values) for key, values in grouped.items()}
    return {key: value for key, value in joined.items() if value}


def _content_type(response: func.HttpResponse) -> str:
    # The worker's HttpResponseConverter names a charset for text/* only (azure-functions Python
    # library, azure/functions/http.py): a JSON answer is plain `application/json`, which RFC 8259
    # defines as UTF-8 without a charset parameter.
    mimetype = str(response.mimetype)
    return f"{mimetype}; charset={response.charset}" if mimetype.startswith("text/") else mimetype


def load_app(module: str = "function_app") -> func.FunctionApp:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    app = importlib.import_module(module).app
    if not isinstance(app, func.FunctionApp):
        raise RouteError(f"{module}.app is not an azure.functions.FunctionApp")
    return app


def build_application(host: DevHost, on_cleanup: Callable[[], Awaitable[None]] | None = None) -> web.Application:
    # Headers up to 64 KiB reach the app, which refuses an oversized token itself; aiohttp's own
    # refusal of a long header would quote its first bytes (a token) in the answer and the log.
    application = web.Application(client_max_size=MAX_REQUEST_BYTES,
                                  handler_args={"max_field_size": MAX_HEADER_BYTES, "max_line_size": MAX_HEADER_BYTES})
    application.router.add_route("*", r"/{tail:[\s\S]*}", host.handle)
    if on_cleanup is not None:
        cleanup = on_cleanup

        async def close(_: web.Application) -> None:
            await cleanup()

        application.on_cleanup.append(close)
    return application


def describe(routes: Iterable[Route], base_url: str, prefix: str) -> str:
    lines = ["", "Functions:", ""]
    for route in sorted(routes, key=lambda item: item.template):
        methods = ",".join(sorted(route.methods))
        lines.append(f"        {route.function_name}: [{methods}] {base_url}/{prefix}/{route.template}")
    return "\n".join(lines) + "\n"


def serve(host: str, port: int) -> None:
    load_local_settings()
    logs.log_json_to(sys.stderr, os.environ.get("LOG_LEVEL", "INFO").upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from shared.config import get_settings
    from shared.db import database
    from tools.timers import TimerRunner, collect_timers

    get_settings()  # a bad setting stops the start, before any request
    prefix = route_prefix()
    app = load_app()
    dev_host = DevHost(app, prefix=prefix)
    timers = TimerRunner(collect_timers(indexed_functions(app)))
    print(describe(dev_host.routes, f"http://{host}:{port}", prefix), flush=True)
    application = build_application(dev_host, database.close)
    application.on_startup.append(lambda _: timers.start())
    application.on_shutdown.append(lambda _: timers.stop())
    web.run_app(application, host=host, port=port, print=None, handle_signals=True, shutdown_timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.devhost",
                                     description="Serve the HTTP triggers of function_app.app for development.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port to listen on (default 7071)")
    args = parser.parse_args(argv)
    from shared.config import ConfigError
    from tools.timers import ScheduleError

    try:
        serve(args.host, args.port)
    except (ConfigError, RouteError, ScheduleError) as error:
        print(f"devhost: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
