"""One round trip per request: every endpoint's SQL statements, counted.

The function handlers are called in process with `func.HttpRequest` objects, on a pool whose
connections report every statement to a `shared.db.database.query_observers` entry. Each
caller is warmed by one request first, so a count covers the endpoint's own work and shows
that a known caller costs nothing to resolve. Type-introspection statements that asyncpg may
run on a connection's first use of a type are the driver's, not the app's: they are counted
apart (`StatementLog.driver_statements`) and must not occur once the pool is warm either.

A statement is what the app sends, not a network round trip: the first use of a statement
text on a connection also costs asyncpg a Parse/Describe exchange before it (the prepared
statement cache makes later uses a single exchange).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest

from bench.harness import InProcessApp, StatementLog, app_environment, configure, settle
from shared import auth
from shared.config import reset_settings
from shared.db import database
from tests import mcp_fixtures
from tools.authority import DevAuthority


@dataclass(frozen=True)
class Count:
    status: int
    statements: list[str]
    driver_statements: int


@dataclass(frozen=True)
class Expected:
    statements: int
    why: str


# What each endpoint costs once its caller is known, and why.
EXPECTED: dict[str, Expected] = {
    "health": Expected(1, "SELECT 1"),
    "users_sign_in (first)": Expected(1, "the upsert that creates the caller"),
    "users_sign_in (repeat)": Expected(0, "the caller's row is remembered and the token says nothing new"),
    "users_get_me": Expected(0, "the caller's row is the answer, remembered from sign-in"),
    "users_get": Expected(1, "select by id"),
    "registrations_create": Expected(1, "insert + audit in one CTE"),
    "registrations_list": Expected(1, "count and page in one statement"),
    "registrations_my": Expected(1, "count and page in one statement"),
    "registrations_get": Expected(1, "select with the visibility rule"),
    "registrations_update": Expected(1, "lock, update + audit in one CTE"),
    "registrations_decide": Expected(1, "update + audit in one CTE"),
    "registrations_audit": Expected(1, "registration and its entries in one join"),
    "registrations_update (decided, If-Match)": Expected(1, "lock, admit, revision, update + audit in one CTE"),
    "registrations_decide (If-Match)": Expected(1, "lock, decide the revision, publish + audit in one CTE"),
    "revisions_list": Expected(1, "registration and its revisions in one join"),
    "revisions_get": Expected(1, "registration and one revision in one join"),
    "registrations_publication": Expected(1, "lock, update + audit in one CTE"),
    "revisions_publish": Expected(1, "lock, publish the revision + audit in one CTE"),
    "registrations_delete": Expected(1, "soft delete + audit in one CTE"),
    "probes_request": Expected(2, "target and the one-a-minute reservation in one CTE; the probe runs outside any "
                                  "statement; then the probe and its queue row in one CTE"),
    "probes_list": Expected(1, "registration and a page of its probes in one join"),
    "probes_latest": Expected(1, "registration and its latest probe in one join"),
    "registrations_list (attestation filters)": Expected(1, "count and page in one statement, EXISTS on attestations"),
    "attestation_accept": Expected(1, "lock, new baseline, reactivation + audit in one CTE"),
    "feed_servers": Expected(1, "the process's first feed request: the conditional snapshot statement loads it"),
    "feed_servers (between checks)": Expected(0, "answered from the snapshot confirmed within FEED_SNAPSHOT_MAX_AGE"),
    "feed_server (versions)": Expected(0, "from the snapshot, between checks"),
    "feed_server (version)": Expected(0, "from the snapshot, between checks"),
    "feed_server (decoded slash)": Expected(0, "from the snapshot, between checks"),
    "feed_server (unknown name)": Expected(0, "a 404 from the snapshot, counted in memory until a flush is due"),
    "demand_list": Expected(1, "the window's page, each name's state beside it, in one statement"),
    "openapi_document": Expected(0, "built from the models, no database"),
    "docs_page": Expected(0, "a page built from the settings, no database"),
    "docs_asset": Expected(0, "a static file, no database"),
    "new caller, registrations_get": Expected(2, "the caller's upsert, then the endpoint's statement"),
    "new token of a known caller, registrations_get": Expected(1, "the token is checked; the row is remembered"),
}


def _body(tag: str) -> dict[str, Any]:
    return {
        "endpoint_url": f"https://mcp-{tag}.round-trips.example.com/tools",
        "endpoint_name": f"Round Trip {tag}",
        "owner_contact": "team@example.com",
        "available_tools": ["lookup"],
    }


async def _scenario(app: InProcessApp, log: StatementLog, authority: DevAuthority, mcp_url: str,
                    ) -> dict[str, Count]:
    counts: dict[str, Count] = {}
    user_oid, admin_oid = str(uuid.uuid4()), str(uuid.uuid4())
    user = authority.mint(oid=user_oid, name="Round Trip User", email="round.trip.user@example.com")
    admin = authority.mint(oid=admin_oid, name="Round Trip Admin", email="round.trip.admin@example.com", admin=True)

    async def count(label: str, name: str, **request: Any) -> func.HttpResponse:
        await settle()
        log.clear()
        response = await app.call(name, app.request(name, **request))
        await settle()
        counts[label] = Count(response.status_code, log.texts, log.driver_statements)
        return response

    # The pool's first connection and the signing keys, then the admin's row: nothing counted.
    await app.call("users_sign_in", app.request("users_sign_in", token=admin))
    await count("users_sign_in (first)", "users_sign_in", token=user)
    await count("users_sign_in (repeat)", "users_sign_in", token=user)
    await count("users_get_me", "users_get_me", token=user)
    me = (await app.call("users_get_me", app.request("users_get_me", token=user))).get_body()
    user_id = json.loads(me)["user_id"]
    await count("users_get", "users_get", token=admin, route_params={"user_id": user_id})
    await count("health", "health")

    created = await count("registrations_create", "registrations_create", token=user, body=_body(user_oid[:8]))
    registration_id = json.loads(created.get_body())["registration_id"]
    by_id = {"registration_id": registration_id}
    await count("registrations_list", "registrations_list", token=user)
    await count("registrations_my", "registrations_my", token=user)
    await count("registrations_get", "registrations_get", token=user, route_params=by_id)
    await count("registrations_update", "registrations_update", token=user, route_params=by_id,
                body={"description": "Now with a description."})
    approved = await count("registrations_decide", "registrations_decide", token=admin, route_params=by_id,
                           body={"status": "Approved", "revision": 2})
    server_name = json.loads(approved.get_body())["server_name"]
    await count("registrations_audit", "registrations_audit", token=user, route_params=by_id)
    await count("registrations_update (decided, If-Match)", "registrations_update", token=user, route_params=by_id,
                body={"version": "1.1.0"}, headers={"If-Match": '"2"'})
    await count("registrations_decide (If-Match)", "registrations_decide", token=admin, route_params=by_id,
                body={"status": "Approved"}, headers={"If-Match": '"3"'})
    await count("revisions_list", "revisions_list", token=user, route_params=by_id)
    await count("revisions_get", "revisions_get", token=user, route_params={**by_id, "revision": "2"})
    await count("registrations_publication", "registrations_publication", token=admin, route_params=by_id,
                body={"publication": "deprecated", "message": "Use the new one."})
    await count("revisions_publish", "revisions_publish", token=admin, route_params={**by_id, "revision": "2"})
    await count("feed_servers", "feed_servers", params={"search": server_name})
    await count("feed_servers (between checks)", "feed_servers", params={"limit": "5"})
    encoded = server_name.replace("/", "%2F")
    await count("feed_server (versions)", "feed_server", route_params={"serverName": encoded, "rest": "versions"})
    await count("feed_server (version)", "feed_server",
                route_params={"serverName": encoded, "rest": "versions/latest"})
    namespace, name = server_name.split("/")
    await count("feed_server (decoded slash)", "feed_server",
                route_params={"serverName": namespace, "rest": f"{name}/versions/latest"})
    await count("feed_server (unknown name)", "feed_server",
                route_params={"serverName": "com.example%2Fnobody-has-this", "rest": "versions/latest"})
    await count("demand_list", "demand_list", token=admin)
    await count("registrations_delete", "registrations_delete", token=admin, route_params=by_id)
    # Probed: an MCP server on a loopback address the settings admit (no name is looked up).
    probed = await app.call("registrations_create", app.request("registrations_create", token=user, body={
        **_body(f"{user_oid[:8]}-probed"), "endpoint_url": mcp_url}))
    probed_id = {"registration_id": json.loads(probed.get_body())["registration_id"]}
    probe = await count("probes_request", "probes_request", token=user, route_params=probed_id)
    await count("probes_list", "probes_list", token=user, route_params=probed_id)
    await count("probes_latest", "probes_latest", token=user, route_params=probed_id)
    await count("registrations_list (attestation filters)", "registrations_list", token=admin,
                params={"outcome": "ok", "findings": "medium", "drifted": "false"})
    await app.call("registrations_decide", app.request("registrations_decide", token=admin, route_params=probed_id,
                                                       body={"status": "Approved"}))
    # A drift of the published revision, as a later probe would record it, for the accept to take back.
    await database.fetch("UPDATE attestations SET drifted = true, baseline_revision = 1 WHERE registration_id = $1",
                         uuid.UUID(probed_id["registration_id"]))
    await count("attestation_accept", "attestation_accept", token=admin, route_params=probed_id,
                body={"probe_id": json.loads(probe.get_body())["probe_id"]})
    for name, route_params in (("openapi_document", {}), ("docs_page", {}), ("docs_asset", {"asset": "docs.js"})):
        if app.has(name):
            await count(name, name, route_params=route_params)

    other = await app.call("registrations_create", app.request("registrations_create", token=user,
                                                                 body=_body(f"{user_oid[:8]}-other")))
    other_id = {"registration_id": json.loads(other.get_body())["registration_id"]}
    await app.call("registrations_decide", app.request("registrations_decide", token=admin, route_params=other_id,
                                                       body={"status": "Approved"}))
    newcomer = authority.mint(oid=str(uuid.uuid4()), name="Round Trip Newcomer", email="newcomer@example.com")
    await count("new caller, registrations_get", "registrations_get", token=newcomer, route_params=other_id)
    # Same person and claims, a different token (another `exp`): a token cache miss, a row cache hit.
    second_token = authority.mint(oid=user_oid, name="Round Trip User", email="round.trip.user@example.com",
                                  lifetime=7200)
    await count("new token of a known caller, registrations_get", "registrations_get", token=second_token,
                route_params=other_id)
    return counts


@pytest.fixture(scope="module")
def counts(database_url: str, authority: DevAuthority) -> Iterator[dict[str, Count]]:
    saved = dict(os.environ)
    servers = mcp_fixtures.LoopbackServers()
    servers.add("weather", mcp_fixtures.streamable(mcp_fixtures.weather_server()))
    servers.start()
    mcp_url = f"http://127.0.0.1:{servers.port('weather')}/mcp"
    configure(app_environment(database_url, authority, LOG_LEVEL="INFO", PROBE_ENABLED="true",
                              PROBE_SCHEDULE="0 0 0 1 1 *", ALLOWED_ENDPOINT_NETWORKS="127.0.0.0/8",
                              ALLOW_HTTP_ENDPOINTS="true", FEED_SNAPSHOT_MAX_AGE="3600"))
    log = StatementLog()
    database.query_observers.append(log)

    async def run() -> dict[str, Count]:
        try:
            return await _scenario(InProcessApp(), log, authority, mcp_url)
        finally:
            await database.close()

    try:
        yield asyncio.run(run())
    finally:
        database.query_observers.remove(log)
        servers.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        auth.reset()


@pytest.mark.parametrize("label", list(EXPECTED))
def test_statements_per_request(counts: dict[str, Count], label: str) -> None:
    if label not in counts:
        pytest.skip(f"the app has no function for {label}")
    measured, expected = counts[label], EXPECTED[label]
    assert measured.status < 400 or label.endswith("(unknown name)"), f"{label} answered {measured.status}"
    assert len(measured.statements) == expected.statements, (
        f"{label}: expected {expected.statements} ({expected.why}), ran {measured.statements}"
    )
    assert measured.driver_statements == 0, f"{label}: asyncpg introspected types on a warm pool"
