"""GET /api/demand: what developers configure by hand, seen as the feed's unknown-name lookups."""

from __future__ import annotations

import azure.functions as func

from shared import texts
from shared.db import database
from shared.declare import Answer, Routes, SignedIn
from shared.http import json_response
from shared.schemas.demand import DemandEntry, DemandList, DemandQuery
from shared.services import demand

routes = Routes("demand")
blueprint = routes.blueprint


@routes.declare(
    "GET", "demand", access="admin", summary="Server names clients asked for that are not published",
    answers=(Answer(200, "Most asked first.", DemandList),), errors=texts.QUERY_422, query=DemandQuery,
    description="""Each `GET …/v0.1/servers/{name}/versions…` the feed answers 404 because no registration by
that name is published is counted per name and UTC day: what a client sends for a server a developer
configured by hand ("shadow MCP"). Only names the `server_name` rule admits are counted, at most 10,000
distinct names a day. Each instance writes its counts at most every `DEMAND_FLUSH_SECONDS` (default 60),
so the latest lookups may not be here yet. `count` sums the window of `days` (default 30, at most 90);
names published since are left out.""",
)
async def demand_list(call: SignedIn[None, DemandQuery]) -> func.HttpResponse:
    rows = await demand.page(db=database, days=call.query.days, limit=call.query.limit, offset=call.query.offset)
    return json_response(DemandList(results=[DemandEntry.model_validate(dict(row)) for row in rows]))
