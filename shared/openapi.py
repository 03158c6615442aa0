"""The OpenAPI 3.1 description of the API, served at GET /api/openapi.json, built by walking the
operations every route module declares beside its handlers (`shared.declare`) and the pydantic
models they parse and answer with, so the document cannot drift from them.

`build(settings, operations)` turns the declarations (`shared.api.OPERATIONS`) into paths relative to
the server `/{routePrefix}` of host.json. Only `shared.api.document` imports this module, on the
first request for the document: the app's cold start does not carry the builder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared import texts
from shared.config import EntraSettings, FeedAuth, Settings
from shared.declare import Access, Model, Operation, Raw, resolve
from shared.http import JSON_TYPE, PROBLEM_TYPE, body_is_optional
from shared.http import route_prefix as route_prefix  # where the document's paths are relative to
from shared.schemas.common import Problem

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
SCHEMA_REF = "#/components/schemas/{model}"
_TAG_ORDER = {tag["name"]: index for index, tag in enumerate(texts.TAGS)}
# What an operation's access rule may answer, beside what it declares itself.
_ACCESS_ERRORS: dict[Access, Mapping[int, str]] = {
    "anonymous": {}, "feed": {}, "user": texts.SIGNED_IN, "admin": texts.ADMIN}

_ROUTE_PARAMETER = re.compile(r"\{\*?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[a-z]+))?\??\}")
_CONSTRAINT_SCHEMAS: dict[str | None, dict[str, Any]] = {
    "guid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "bool": {"type": "boolean"},
    "alpha": {"type": "string", "pattern": "^[A-Za-z]+$"},
}


def openapi_path(route: str) -> str:
    """`registrations/{registration_id:guid}` -> `/registrations/{registration_id}`."""
    return "/" + _ROUTE_PARAMETER.sub(lambda match: "{" + match["name"] + "}", route.strip("/"))




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

    def __init__(self, operations: Iterable[Operation]) -> None:
        uses: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for operation in operations:
            if operation.request is not None:
                uses[(operation.request, "validation")] = None
            for answer in operation.answers:
                if answer.body is not None and not isinstance(answer.body, Raw):
                    uses[(resolve(answer.body), "serialization")] = None
        uses[(Problem, "serialization")] = None
        refs, definitions = models_json_schema(list(uses), ref_template=SCHEMA_REF)
        self.refs = refs
        self.components: dict[str, Any] = dict(definitions.get("$defs", {}))

    def ref(self, model: Model, mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(resolve(model), mode)])

    def query_parameters(self, model: Model) -> list[dict[str, Any]]:
        schema = resolve(model).model_json_schema(ref_template=SCHEMA_REF)
        self.components.update(schema.get("$defs", {}))
        required = set(schema.get("required", ()))
        parameters = []
        for name, property_schema in schema["properties"].items():
            parameter_schema = _strip_null(property_schema)
            description = parameter_schema.pop("description", None) or texts.QUERY_PARAMETERS.get(name)
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                         "schema": parameter_schema}
            if name not in required:
                # An empty value is the parameter left out, as on the Functions host (shared.http.parse_query).
                parameter["allowEmptyValue"] = True
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        return parameters


def _media(body: Model | Raw, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(body, Raw):
        return {media_type: {"schema": dict(body.schema)} for media_type in body.media_types}
    return {JSON_TYPE: {"schema": schemas.ref(body, "serialization")}}


def _headers(names: tuple[str, ...], cors: bool) -> dict[str, Any]:
    """Response headers by their `texts.HEADERS` entry; `Name#variant` documents `Name` with another meaning."""
    chosen = (*names, "Access-Control-Allow-Origin") if cors else names
    return {name.split("#", 1)[0]: texts.HEADERS[name] for name in chosen}


def _problem(status: int, description: str, schemas: _Schemas, cors: bool) -> dict[str, Any]:
    example: dict[str, Any] = {"type": "about:blank", "title": texts.PROBLEM_TITLES[status], "status": status,
                               "detail": texts.PROBLEM_EXAMPLES[status]}
    if status == 422:
        example["errors"] = texts.VALIDATION_ERRORS
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": schemas.ref(Problem, "serialization"), "example": example}},
    }
    names = texts.PROBLEM_HEADERS.get(status, ())
    headers = _headers(names, cors)
    if headers:
        response["headers"] = headers
    return response


def _parameters(operation: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters = []
    for match in _ROUTE_PARAMETER.finditer(operation.path or operation.route):
        name = match["name"]
        schema = dict(_CONSTRAINT_SCHEMAS.get(match["constraint"], {"type": "string"}))
        if name in operation.path_values:
            schema["enum"] = list(operation.path_values[name])
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in texts.PATH_PARAMETERS:
            parameter["description"] = texts.PATH_PARAMETERS[name]
        parameters.append(parameter)
    if operation.query is not None:
        parameters += schemas.query_parameters(operation.query)
    parameters += [dict(texts.REQUEST_HEADERS[name]) for name in operation.request_headers]
    return parameters


def _security(auth: Access, entra: EntraSettings, feed_auth: FeedAuth) -> list[dict[str, list[str]]]:
    if auth == "anonymous" or (auth == "feed" and feed_auth == "anonymous"):
        return []
    return [{"bearer": []}, {"entra": [_oauth_scope(entra)]}]


def _operation(operation: Operation, schemas: _Schemas, entra: EntraSettings, feed_auth: FeedAuth) -> dict[str, Any]:
    security = _security(operation.access, entra, feed_auth)
    errors = {**_ACCESS_ERRORS[operation.access], **operation.errors}
    if operation.access == "feed" and security:
        errors.update({401: texts.SIGNED_IN[401], 403: texts.SIGNED_IN[403]})
    errors[500] = texts.BUG
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
        result["requestBody"] = {"required": not body_is_optional(operation.request), "content": {JSON_TYPE: media}}
    return result


def build(settings: Settings, operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI document for these settings (the sign-in endpoints and the feed's authentication),
    of every declared operation, grouped in the order of the tags."""
    entra = settings.entra
    ordered = sorted(operations, key=lambda operation: _TAG_ORDER[operation.tag])
    schemas = _Schemas(ordered)
    paths: dict[str, dict[str, Any]] = {}
    for operation in ordered:
        item = paths.setdefault(documented_path(operation), {})
        item[operation.method.lower()] = _operation(operation, schemas, entra, settings.feed_auth)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "MCP Endpoint Registry", "version": API_VERSION, "description": texts.INTRO},
        "servers": [{"url": f"/{route_prefix()}", "description": "This host."}],
        "tags": list(texts.TAGS),
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": _security_schemes(entra)},
    }
