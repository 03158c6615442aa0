"""GET /api/health: is the app up, and does the database answer within 2 s."""

from __future__ import annotations

import asyncio

import azure.functions as func

from shared.db import UNAVAILABLE_ERRORS, database
from shared.errors import ServiceUnavailable
from shared.http import endpoint, json_response

HEALTH_TIMEOUT_SECONDS = 2.0

blueprint = func.Blueprint()


@blueprint.route(route="health", methods=["GET"])
@endpoint
async def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        await asyncio.wait_for(database.fetchval("SELECT 1"), HEALTH_TIMEOUT_SECONDS)
    except (ServiceUnavailable, *UNAVAILABLE_ERRORS):
        return json_response({"status": "unhealthy", "database": "disconnected"}, 503, {"Retry-After": "5"})
    return json_response({"status": "healthy", "database": "connected"})
