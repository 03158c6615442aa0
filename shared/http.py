"""The HTTP edge: JSON and problem+json responses, body and query parsing, and the one place
where errors become statuses (`endpoint`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import logs
from shared.config import ConfigError
from shared.db import UNAVAILABLE_ERRORS
from shared.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from shared.schemas.registrations import RegistrationPublic

log = logging.getLogger(__name__)

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
MAX_BODY_BYTES = 64 * 1024
JSON_TYPE = "application/json"
PROBLEM_TYPE = "application/problem+json"
# On every answer; a handler's own Cache-Control replaces the default.
STANDARD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A revision number as the registration's ETag carries it ("3"); the quotes may be left out.
_REVISION_TAG = re.compile(r'^("?)([1-9][0-9]{0,9})\1$')
_MAX_REVISION = 2_147_483_647
# One entity tag of a list (RFC 9110 section 8.8.3): `W/` when weak, then the quoted opaque tag.
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
FunctionEntry = Callable[[func.HttpRequest, func.Context], Awaitable[func.HttpResponse]]


@lru_cache(maxsize=1)
def route_prefix() -> str:
    """host.json's `extensions.http.routePrefix` (default `api`); read once, on first use."""
    host = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    prefix: str = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return prefix.strip("/")


def _encode_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True)
    return json.dumps(value, default=_encode_default, ensure_ascii=False, separators=(",", ":"))


def standard_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of an answer: ours first, so that the handler's win."""
    return {**STANDARD_HEADERS, **headers} if headers else dict(STANDARD_HEADERS)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None, *, content_type: str = JSON_TYPE
) -> func.HttpResponse:
    return encoded_json_response(dumps(body).encode(), status, headers, content_type=content_type)


def encoded_json_response(
    payload: bytes, status: int = 200, headers: Mapping[str, str] | None = None, *, content_type: str = JSON_TYPE
) -> func.HttpResponse:
    """An answer whose JSON is already serialised (for one that hashes its body, say)."""
    return func.HttpResponse(
        body=payload, status_code=status, headers=standard_headers(headers), mimetype=content_type, charset="utf-8"
    )


def empty_response(status: int = 204, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(status_code=status, headers=standard_headers(headers))


def problem_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status, "detail": error.detail}
    if isinstance(error, ValidationFailed):
        body["errors"] = error.errors
    return body


def problem_response(error: ApiError) -> func.HttpResponse:
    return json_response(problem_body(error), error.status, error.headers, content_type=PROBLEM_TYPE)


def validation_failed(error: ValidationError, location: str) -> ValidationFailed:
    errors = [
        {"loc": [location, *error_item["loc"]], "msg": error_item["msg"], "type": error_item["type"]}
        for error_item in error.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"][1:]) or location
    return ValidationFailed(f"Invalid {location}: {where}: {first['msg']}", errors)


def read_json_object(req: func.HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, enforcing size, content type and syntax."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body must not exceed {MAX_BODY_BYTES} bytes.")
    content_type = (req.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type and content_type != JSON_TYPE and not content_type.endswith("+json"):
        raise UnsupportedMediaType("The request body must be sent as application/json.")
    try:
        value = json.loads(body)
        # A lone surrogate escape parses, but is no text PostgreSQL (or UTF-8) can hold.
        if _SURROGATE_ESCAPE.search(body):
            json.dumps(value, ensure_ascii=False).encode()
    except (ValueError, UnicodeError, RecursionError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object.")
    return value


def body_is_optional(model: type[BaseModel]) -> bool:
    """Whether the operation taking `model` may be called without a body (then it is `{}`): a
    model says so with `BODY_OPTIONAL = True`, and the OpenAPI document follows."""
    return bool(getattr(model, "BODY_OPTIONAL", False))


def parse_body(req: func.HttpRequest, model: type[Model], context: Mapping[str, Any] | None = None) -> Model:
    """The body as `model`, validated under `context` (what validators are given instead of reading
    settings themselves, such as `shared.schemas.urls.validation_context`)."""
    data = {} if not req.get_body() and body_is_optional(model) else read_json_object(req)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise validation_failed(error, "body") from None


def parse_query(req: func.HttpRequest, model: type[Model]) -> Model:
    """The query string as `model`; a parameter with an empty value is absent. The Functions host
    drops such parameters before a Python function sees them (see tools/devhost.py), and Core Tools
    or another host may not: this keeps the app's answer the same under each."""
    try:
        return model.model_validate({name: value for name, value in req.params.items() if value != ""})
    except ValidationError as error:
        raise validation_failed(error, "query") from None


def if_match_revision(req: func.HttpRequest) -> int | None:
    """The revision `If-Match` names; None when absent or `*` (any revision). 412 when it names none."""
    raw = (req.headers.get("If-Match") or "").strip()
    if not raw or raw == "*":
        return None
    match = _REVISION_TAG.match(raw)
    if match is None or int(match.group(2)) > _MAX_REVISION:
        raise PreconditionFailed('If-Match must name one revision as the ETag does, such as "3".')
    return int(match.group(2))


def client_holds(req: func.HttpRequest, etag: str) -> bool:
    """Whether `If-None-Match` says the client already holds the representation tagged `etag`, so
    that a GET answers 304 (RFC 9110 section 13.1.2): the field is `*` (any current representation),
    or lists a tag equal to `etag` under the weak comparison, which ignores `W/` on either side."""
    raw = (req.headers.get("If-None-Match") or "").strip()
    if not raw:
        return False
    if raw == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag == opaque for tag in _ENTITY_TAG.findall(raw))


def registration_response(registration: RegistrationPublic, status: int = 200,
                          headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """A registration, with the revision it shows as its ETag (for `If-Match` on the next change)."""
    return json_response(registration, status, {"ETag": f'"{registration.revision}"', **(headers or {})})


def _internal_error(invocation_id: str) -> func.HttpResponse:
    error = ApiError(f"An unexpected error occurred. It was logged with invocation id {invocation_id}.")
    return problem_response(error)


def endpoint(handler: Handler) -> FunctionEntry:
    """Wrap a handler so every failure becomes its problem+json answer, in this one place.

    The wrapper takes the worker's `context` for the invocation id; it is not marked with
    functools.wraps because the worker reads the signature to decide whether to pass it.
    """

    async def entry(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        with logs.invocation(context.invocation_id):
            return await _answer(req, context)

    async def _answer(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        try:
            return await handler(req)
        except ApiError as error:
            return problem_response(error)
        except UNAVAILABLE_ERRORS as error:
            log.warning("database unavailable in %s: %s", handler.__name__, type(error).__name__)
            return problem_response(ServiceUnavailable("The database is unavailable. Try again shortly."))
        except ConfigError as error:
            log.error("configuration error in %s (invocation %s): %s", handler.__name__, context.invocation_id, error)
            return _internal_error(context.invocation_id)
        except Exception:
            log.exception("unhandled error in %s (invocation %s)", handler.__name__, context.invocation_id)
            return _internal_error(context.invocation_id)

    entry.__name__ = handler.__name__
    entry.__qualname__ = handler.__qualname__
    entry.__doc__ = handler.__doc__
    entry.__module__ = handler.__module__
    return entry


# .NET's Guid.TryParse, which matches `{x:guid}` routes on the Functions host, also takes
# `(…)` and the hex-field form `{0x…,0x…,0x…,{0x…,…}}` that Python's UUID refuses.
_HEX_FIELD_WIDTHS = (8, 4, 4) + (2,) * 8


def guid_value(text: str) -> UUID:
    """The GUID in a `{x:guid}` route value, in any form the host routes; ValueError otherwise."""
    text = text.strip()
    fields = re.findall(r"0x([0-9a-fA-F]+)", text)
    if len(fields) == len(_HEX_FIELD_WIDTHS) and all(
            len(value) <= width for value, width in zip(fields, _HEX_FIELD_WIDTHS, strict=True)):
        return UUID("".join(value.zfill(width) for value, width in zip(fields, _HEX_FIELD_WIDTHS, strict=True)))
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return UUID(text)
