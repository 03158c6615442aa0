"""The API: every route module's declarations, in the order the app registers them, and
GET /openapi.json, which describes them all."""

from __future__ import annotations

import json
from functools import lru_cache

import azure.functions as func

from shared.config import Settings, get_settings
from shared.declare import NOT_MODIFIED, Answer, Call, Raw, Routes
from shared.http import JSON_TYPE
from shared.routes import attestation, demand, docs, feed, health, registrations, revisions, subscriptions, users

routes = Routes("docs")


@routes.declare(
    "GET", "openapi.json", access="anonymous", summary="This OpenAPI document",
    answers=(Answer(200, "The OpenAPI 3.1 description of every operation.",
                    Raw((JSON_TYPE,), {"type": "object", "description": "An OpenAPI 3.1 document."}), ("ETag",)),
             NOT_MODIFIED),
)
async def openapi_document(call: Call[None, None]) -> func.HttpResponse:
    settings = get_settings()
    return docs.send(call.req, docs.Content(document(settings), JSON_TYPE), docs.REVALIDATE, settings)


@lru_cache(maxsize=4)
def document(settings: Settings) -> bytes:
    """The document as served, built once per settings (they change only on a restart)."""
    # The builder and pydantic's JSON Schema machinery load on the first request for the document.
    from shared import openapi

    return json.dumps(openapi.build(settings, OPERATIONS), ensure_ascii=False, separators=(",", ":")).encode()


ROUTES = (health.routes, users.routes, registrations.routes, revisions.routes, feed.routes, docs.routes,
          attestation.routes, demand.routes, subscriptions.routes, routes)
OPERATIONS = tuple(operation for declared in ROUTES for operation in declared.operations)
