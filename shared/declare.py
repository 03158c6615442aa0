"""One declaration per HTTP operation, beside its handler, in the manner of FastAPI's path operations.

    routes = Routes("users")        # a Functions blueprint, and the tag of its operations

    @routes.declare("GET", "users/me", access="user", summary="The caller's own user",
                    answers=(Answer(200, "The caller's user.", UserPublic),))
    async def users_get_me(call: SignedIn[None, None]) -> func.HttpResponse:
        return json_response(UserPublic.model_validate(call.account))

The declaration is the single source of the Functions trigger (it calls `blueprint.route` itself,
so the host indexes a plain HTTP trigger named after the handler), of the access rule that is
enforced before the handler runs, of the body and query models the handler receives parsed, and of
what the OpenAPI document says (the 401, 403 and 503 of a signed-in operation follow from its
access rule; `errors` adds the rest): `shared.openapi` builds the document by walking every
module's `routes.operations`.

Access rules: `anonymous`; `user` (a signed-in user, whose users row is created or refreshed);
`admin` (a signed-in administrator, 403 otherwise); `feed` (anonymous unless
`REGISTRY_FEED_AUTH=entra`, then a valid user token, without the users row).

CORS is the app's own, never the platform's (infra/README.md, "CORS"): an operation declared with
`cors` (the feed) answers every origin with `*` (`cors_edge`); every other operation answers only
the origins listed in CORS_ORIGINS (`api_cors_edge`). The first operation declared on a route also
takes its preflights (`OPTIONS`), answered before any sign-in: the Functions host routes a request
to one function, so two triggers of one route may not both take OPTIONS.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, Generic, Literal, NamedTuple, TypeVar, cast, overload
from uuid import UUID

import azure.functions as func
from azure.functions.decorators.function_app import FunctionBuilder
from pydantic import BaseModel

from shared import texts
from shared.auth import NOT_ADMIN, CurrentUser, authenticate, sign_in
from shared.config import ConfigError, get_settings
from shared.errors import Forbidden, NotFound
from shared.http import FunctionEntry, empty_response, endpoint, guid_value, parse_body, parse_query
from shared.schemas.urls import validation_context
from shared.services.registrations import Actor
from shared.services.users import UserRow

Access = Literal["anonymous", "user", "admin", "feed"]
# One registration's route: the registrations, revisions and attestation modules declare under it.
REGISTRATION_ROUTE = "registrations/{registration_id:guid}"
Body = TypeVar("Body")
Query = TypeVar("Query")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
}
PREFLIGHT_MAX_AGE = "86400"
# The request headers the API reads beyond the CORS-safelisted ones, and the answer headers a
# frontend reads (Fetch standard: only the safelisted response headers are exposed without
# `Access-Control-Expose-Headers`). No `Allow-Credentials`: tokens travel in `Authorization`.
API_REQUEST_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match"
API_EXPOSED_HEADERS = "ETag, Location, Retry-After, WWW-Authenticate"
# Each route's methods in the order declared, filled as the route modules are imported: a preflight
# names all of them, whichever of the route's functions the host chose (it chose the first).
_ROUTE_METHODS: dict[str, list[str]] = {}
_NONE: Mapping[Any, Any] = MappingProxyType({})
_UNREAD = object()


class Deferred(NamedTuple):
    """A model named by module and class, imported on first use: the attestation models (and what
    they pull in) stay out of `import function_app`."""

    module: str
    name: str

    def resolve(self) -> type[BaseModel]:
        return _imported(self.module, self.name)


@functools.cache
def _imported(module: str, name: str) -> type[BaseModel]:
    model = getattr(importlib.import_module(module), name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{module}.{name} is not a pydantic model")
    return model


Model = type[BaseModel] | Deferred


def resolve(model: Model) -> type[BaseModel]:
    return model.resolve() if isinstance(model, Deferred) else model


class Raw(NamedTuple):
    """A body that no model describes: the media types it comes in and one JSON Schema for all."""

    media_types: tuple[str, ...]
    schema: Mapping[str, Any]


class Answer(NamedTuple):
    """One documented non-error answer of an operation."""

    status: int
    description: str
    body: Model | Raw | None = None
    headers: tuple[str, ...] = ()


# The answer of an operation whose `ETag` the client sent back in `If-None-Match`.
NOT_MODIFIED = Answer(304, texts.NOT_MODIFIED, None, ("ETag",))


class Shape(NamedTuple):
    """One shape of path that a catch-all trigger serves, documented as an operation of its own."""

    path: str
    name: str
    summary: str
    answers: tuple[Answer, ...]
    errors: Mapping[int, str]
    description: str = ""


class Operation(NamedTuple):
    """One documented operation: its Functions route, method and function name, who may call it, and
    what it takes and answers. `errors` maps each problem+json status it can answer to what it means."""

    route: str
    method: str
    function: str
    summary: str
    tag: str
    access: Access
    answers: tuple[Answer, ...]
    errors: Mapping[int, str] = _NONE
    request: type[BaseModel] | None = None
    request_example: Mapping[str, Any] | None = None
    query: Model | None = None
    description: str = ""
    cors: bool = False
    links: Mapping[str, Mapping[str, Any]] = _NONE
    # Values a path parameter takes, listed in the document.
    path_values: Mapping[str, tuple[str, ...]] = _NONE
    # Request headers the operation reads, by their `texts.REQUEST_HEADERS` entry.
    request_headers: tuple[str, ...] = ()
    # Under a catch-all trigger: the documented path (OpenAPI form) and operationId of this shape.
    path: str | None = None
    name: str | None = None



# Slots and no freezing: a handler's argument is built on every request, and a frozen dataclass
# takes about three times as long to build.
class Call(Generic[Body, Query]):
    """What a handler receives: the request, and its body and query parsed by the declared models
    (None where none is declared)."""

    # A plain slotted class: built on every request, and a class made by `dataclass` costs the
    # app's import a millisecond each.
    __slots__ = ("_query", "body", "query_model", "req")

    def __init__(self, req: func.HttpRequest, body: Body, *, query_model: Model | None = None) -> None:
        self.req = req
        self.body = body
        self.query_model = query_model
        self._query: Any = _UNREAD

    @property
    def query(self) -> Query:
        """Parsed on first read, where the handler reads it: a catch-all that first finds its path is
        not one it serves answers 404 before a bad query value's 422, as the feed always has."""
        if self._query is _UNREAD:
            model = self.query_model
            self._query = None if model is None else parse_query(self.req, resolve(model))
        return cast(Query, self._query)

    def path_id(self, name: str) -> UUID:
        """A `{name:guid}` route parameter, in any form the host routes there."""
        try:
            return guid_value(self.req.route_params[name])
        except (KeyError, ValueError):
            raise NotFound(texts.UNKNOWN_ID[name]) from None


class SignedIn(Call[Body, Query]):
    """What a `user` or `admin` handler receives: also the caller, and their users row (`created`:
    whether this request created it)."""

    __slots__ = ("account", "created", "user")

    def __init__(self, req: func.HttpRequest, body: Body, user: CurrentUser, account: UserRow, created: bool, *,
                 query_model: Model | None = None) -> None:
        super().__init__(req, body, query_model=query_model)
        self.user = user
        self.account = account
        self.created = created

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user.user_id, is_admin=self.user.is_admin)


Handler = Callable[[Any], Awaitable[func.HttpResponse]]
SignedInHandler = Callable[[SignedIn[Any, Any]], Awaitable[func.HttpResponse]]
AnonymousHandler = Callable[[Call[Any, Any]], Awaitable[func.HttpResponse]]


def cors_edge(entry: FunctionEntry) -> FunctionEntry:
    """Answer preflights without calling the handler, and put CORS headers on every answer."""

    @functools.wraps(entry)
    async def cors_entry(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        if req.method.upper() == "OPTIONS":
            response = empty_response(204, {"Access-Control-Max-Age": PREFLIGHT_MAX_AGE})
        else:
            response = await entry(req, context)
        for name, value in CORS_HEADERS.items():
            response.headers[name] = value
        return response

    return cors_entry


def _listed_origin(req: func.HttpRequest) -> str | None:
    """The request's `Origin` when CORS_ORIGINS lists it (exactly; `*` lists every origin)."""
    origin = req.headers.get("Origin")
    if not origin:
        return None
    try:
        listed = get_settings().cors_origins
    except ConfigError:
        # The actual request answers 500 and logs why; a preflight stays a plain 204.
        return None
    return origin if origin in listed or "*" in listed else None


def _vary_origin(headers: MutableMapping[str, str]) -> None:
    vary = headers.get("Vary")
    headers["Vary"] = f"{vary}, Origin" if vary else "Origin"


def api_cors_edge(entry: FunctionEntry, route: str) -> FunctionEntry:
    """CORS for the listed origins on every answer of an API operation, and its route's OPTIONS: a
    preflight (`Access-Control-Request-Method`) from a listed origin is 204 with what the API
    allows; from any other origin 204 without CORS headers, so the browser refuses the call. Any
    OPTIONS answers `Allow` (RFC 9110, section 9.3.7)."""

    @functools.wraps(entry)
    async def api_cors_entry(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        origin = _listed_origin(req)
        if req.method.upper() == "OPTIONS":
            methods = ", ".join(_ROUTE_METHODS[route])
            response = empty_response(204, {"Allow": f"{methods}, OPTIONS"})
            if origin is not None and "Access-Control-Request-Method" in req.headers:
                response.headers["Access-Control-Allow-Methods"] = methods
                response.headers["Access-Control-Allow-Headers"] = API_REQUEST_HEADERS
                response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            response = await entry(req, context)
            if origin is not None:
                response.headers["Access-Control-Expose-Headers"] = API_EXPOSED_HEADERS
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
        # Whether CORS headers come depends on `Origin`, so a cache must key on it (Fetch standard,
        # "CORS protocol and HTTP caches"), on answers without them too.
        _vary_origin(response.headers)
        return response

    return api_cors_entry


def _invoker(operation: Operation, handler: Handler) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
    """The access check, then the parsing the declaration promises, then the handler."""
    access, request, query = operation.access, operation.request, operation.query

    def body(req: func.HttpRequest) -> Any:
        # The endpoint rules of the settings, for the validators of the body's endpoint URL.
        return parse_body(req, request, validation_context(get_settings().endpoints)) if request else None

    async def invoke(req: func.HttpRequest) -> func.HttpResponse:
        if access == "user" or access == "admin":
            user, account, created = await sign_in(req)
            if access == "admin" and not user.is_admin:
                raise Forbidden(NOT_ADMIN)
            return await handler(SignedIn(req, body(req), user, account, created, query_model=query))
        if access == "feed" and get_settings().feed_auth == "entra":
            await authenticate(req)
        return await handler(Call(req, body(req), query_model=query))

    invoke.__name__, invoke.__qualname__ = handler.__name__, handler.__qualname__
    invoke.__module__, invoke.__doc__ = handler.__module__, handler.__doc__
    return invoke


def _documented(operation: Operation, shapes: tuple[Shape, ...], takes_preflights: bool) -> list[Operation]:
    """The operations the document lists for one declaration: each shape (or the declaration itself),
    then, where its trigger takes the route's preflights, the preflight of each."""
    main = [operation._replace(path=shape.path, name=shape.name, summary=shape.summary, answers=shape.answers,
                    errors=shape.errors, description=shape.description) for shape in shapes] or [operation]
    if operation.cors:
        preflight = Answer(204, "CORS preflight answered for any origin, without authentication.")
    elif takes_preflights:
        preflight = Answer(204, "CORS preflight, without authentication: answered with CORS headers for an origin "
                                "listed in CORS_ORIGINS, without them for any other.")
    else:
        return main
    # A preflight reads none of the operation's headers (If-Match and the like): none are documented.
    return [*main, *(item._replace(method="OPTIONS", summary="CORS preflight", access="anonymous",
                             answers=(preflight,), errors={}, request=None, request_example=None, query=None,
                             description="", links={}, request_headers=()) for item in main)]


class MissingText(LookupError):
    """A declaration names a shared text (shared/texts.py) that does not exist."""


_GUID_PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):guid\}")


def _missing_texts(operation: Operation, shapes: tuple[Shape, ...]) -> list[str]:
    """What the OpenAPI document (and `Call.path_id`) would look up in shared/texts.py for this
    declaration and not find: checked as it is declared, so that the module fails at import rather
    than the first GET /openapi.json."""
    answers = [*operation.answers, *(answer for shape in shapes for answer in shape.answers)]
    headers = {name for answer in answers for name in answer.headers}
    statuses = {*operation.errors, *(status for shape in shapes for status in shape.errors), *texts.SIGNED_IN, 500}
    headers |= {name for status in statuses for name in texts.PROBLEM_HEADERS.get(status, ())}
    if operation.cors:
        headers.add("Access-Control-Allow-Origin")
    missing = [f"response header {name!r} (texts.HEADERS)" for name in sorted(headers - set(texts.HEADERS))]
    missing += [f"request header {name!r} (texts.REQUEST_HEADERS)"
                for name in operation.request_headers if name not in texts.REQUEST_HEADERS]
    missing += [f"problem status {status} (texts.PROBLEM_TITLES, texts.PROBLEM_EXAMPLES)" for status in sorted(statuses)
                if status not in texts.PROBLEM_TITLES or status not in texts.PROBLEM_EXAMPLES]
    missing += [f"route parameter {name!r} (texts.UNKNOWN_ID)"
                for name in _GUID_PARAMETER.findall(operation.route) if name not in texts.UNKNOWN_ID]
    return missing


class Routes:
    """A Functions blueprint whose HTTP triggers are declared with `declare`, one tag for all."""

    def __init__(self, tag: str) -> None:
        if tag not in {known["name"] for known in texts.TAGS}:
            raise MissingText(f"the tag {tag!r} is not in texts.TAGS, which gives each tag its description and place")
        self.blueprint = func.Blueprint()
        self.tag = tag
        # What the document lists for the declarations so far, in their order.
        self.operations: list[Operation] = []

    @overload
    def declare(self, method: str, route: str, *, access: Literal["user", "admin"], summary: str,
                answers: tuple[Answer, ...], errors: Mapping[int, str] = ..., request: type[BaseModel] | None = ...,
                request_example: Mapping[str, Any] | None = ..., query: Model | None = ..., description: str = ...,
                links: Mapping[str, Mapping[str, Any]] = ..., path_values: Mapping[str, tuple[str, ...]] = ...,
                request_headers: tuple[str, ...] = ..., cors: bool = ..., shapes: tuple[Shape, ...] = ...,
                ) -> Callable[[SignedInHandler], FunctionBuilder]: ...

    @overload
    def declare(self, method: str, route: str, *, access: Literal["anonymous", "feed"], summary: str,
                answers: tuple[Answer, ...], errors: Mapping[int, str] = ..., request: type[BaseModel] | None = ...,
                request_example: Mapping[str, Any] | None = ..., query: Model | None = ..., description: str = ...,
                links: Mapping[str, Mapping[str, Any]] = ..., path_values: Mapping[str, tuple[str, ...]] = ...,
                request_headers: tuple[str, ...] = ..., cors: bool = ..., shapes: tuple[Shape, ...] = ...,
                ) -> Callable[[AnonymousHandler], FunctionBuilder]: ...

    def declare(self, method: str, route: str, *, access: Access, summary: str, answers: tuple[Answer, ...],
                errors: Mapping[int, str] = _NONE, request: type[BaseModel] | None = None,
                request_example: Mapping[str, Any] | None = None, query: Model | None = None, description: str = "",
                links: Mapping[str, Mapping[str, Any]] = _NONE, path_values: Mapping[str, tuple[str, ...]] = _NONE,
                request_headers: tuple[str, ...] = (), cors: bool = False, shapes: tuple[Shape, ...] = (),
                ) -> Callable[[Handler], FunctionBuilder]:
        """The trigger of `method route`, served by the decorated handler under the access rule, and
        documented as declared; with `cors`, preflights too, answered before any sign-in."""

        def register(handler: Handler) -> FunctionBuilder:
            operation = Operation(
                route=route, method=method, function=handler.__name__, summary=summary, tag=self.tag, access=access,
                answers=answers, errors=errors, request=request, request_example=request_example, query=query,
                description=description, cors=cors, links=links, path_values=path_values,
                request_headers=request_headers)
            missing = _missing_texts(operation, shapes)
            if missing:
                raise MissingText(f"{handler.__module__}.{handler.__name__} ({method} {route}) names texts that "
                                  f"shared/texts.py lacks: {'; '.join(missing)}")
            entry = endpoint(_invoker(operation, handler))
            # The feed's triggers each take their own preflights; of an API route's triggers, the first.
            takes_preflights = cors or route not in _ROUTE_METHODS
            if not cors:
                _ROUTE_METHODS.setdefault(route, []).append(method)
            methods = [method, "OPTIONS"] if takes_preflights else [method]
            self.operations.extend(_documented(operation, shapes, takes_preflights))
            builder: FunctionBuilder = self.blueprint.route(route=route, methods=methods)(
                cors_edge(entry) if cors else api_cors_edge(entry, route))
            return builder

        return register

