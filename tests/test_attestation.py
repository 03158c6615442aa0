"""Attestation over real HTTP through the dev host: asking for a probe, reading probes, the queue.

The probed endpoint is an MCP server (the official SDK's) on a loopback IP literal, admitted by
the host's ALLOWED_ENDPOINT_NETWORKS and ALLOW_HTTP_ENDPOINTS: an IP literal is never looked up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests import mcp_fixtures as fx
from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

HostFactory = Callable[[Mapping[str, str]], RunningHost]


@pytest.fixture(scope="module")
def mcp_port() -> Iterator[int]:
    servers = fx.LoopbackServers()
    servers.add("weather", fx.streamable(fx.weather_server()))
    servers.start()
    yield servers.port("weather")
    servers.stop()


@pytest.fixture(scope="module")
def probing(database_url: str, authority: DevAuthority, host_factory: HostFactory) -> RunningHost:
    return host_factory(app_environment(database_url, authority, PROBE_SCHEDULE="0 0 0 1 1 *",
                                        ALLOWED_ENDPOINT_NETWORKS="127.0.0.0/8", ALLOW_HTTP_ENDPOINTS="true"))


def _register(api: str, caller: Caller, url: str) -> dict[str, Any]:
    # The name's namespace is the URL host's labels reversed, as the namespace rule asks of submitters.
    namespace = ".".join(reversed((urlsplit(url).hostname or "").split(".")))
    answer = httpx.post(f"{api}/registrations", headers=caller.headers, timeout=30, json={
        "endpoint_url": url, "endpoint_name": "Loopback weather", "owner_contact": "team@contoso.com",
        "available_tools": ["get_forecast"], "server_name": f"{namespace}/loopback-weather-{caller.oid[:8]}"})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_probing_is_off_without_a_schedule(api: str, user: Caller) -> None:
    registration = _register(api, user, f"https://mcp.contoso.com/off-{user.oid[:8]}")
    answer = httpx.post(f"{api}/registrations/{registration['registration_id']}/probe", headers=user.headers)
    assert answer.status_code == 409
    assert answer.json()["detail"] == "Probing is off: PROBE_SCHEDULE is not set."


def test_a_requested_probe_is_stored_and_limited_to_one_a_minute(probing: RunningHost, mcp_port: int, user: Caller,
                                                                 other_user: Caller, sql: Sql) -> None:
    api = probing.base_url
    registration = _register(api, user, f"http://127.0.0.1:{mcp_port}/mcp?team={user.oid[:8]}")
    registration_id = registration["registration_id"]
    # The create queued a probe for the timer's round; the POST answered at once without one.
    assert sql.fetchval("SELECT queued FROM probe_queue WHERE registration_id = $1", registration_id) is True
    assert sql.fetchval("SELECT count(*) FROM probes WHERE registration_id = $1", registration_id) == 0

    first = httpx.post(f"{api}/registrations/{registration_id}/probe", headers=user.headers, timeout=30)
    assert first.status_code == 200, first.text
    probe = first.json()
    assert (probe["registration_id"], probe["revision"], probe["outcome"], probe["error"]) == (
        registration_id, 1, "ok", None)
    assert [tool["name"] for tool in probe["tools"]] == ["get_alerts", "get_forecast"]
    assert (probe["prompts"], probe["resources"]) == (["forecast_prompt"], ["cities"])
    assert probe["findings"] == [{"rule": "undeclared_tool", "severity": "medium", "pointer": "/tools/0/name",
                                  "excerpt": "get_alerts"}]
    assert len(probe["tools_hash"]) == 64

    again = httpx.post(f"{api}/registrations/{registration_id}/probe", headers=user.headers, timeout=30)
    assert again.status_code == 429
    assert again.json()["detail"] == "A probe of this registration was asked for less than a minute ago."
    assert 1 <= int(again.headers["Retry-After"]) <= 60

    listed = httpx.get(f"{api}/registrations/{registration_id}/probes", headers=user.headers, timeout=30)
    assert listed.status_code == 200
    assert listed.json() == {"results": [probe]}
    latest = httpx.get(f"{api}/registrations/{registration_id}/probes/latest", headers=user.headers, timeout=30)
    assert (latest.status_code, latest.json()) == (200, probe)
    hidden = httpx.get(f"{api}/registrations/{registration_id}/probes", headers=other_user.headers, timeout=30)
    assert hidden.status_code == 404
    row = sql.fetchrow("SELECT trigger, requested_by, outcome FROM probes WHERE registration_id = $1",
                       registration_id)
    assert row is not None
    assert (row["trigger"], row["outcome"]) == ("requested", "ok")
    # The requested probe of this revision did what the queued one would have; a pending registration is
    # not due again until an edit or an approval.
    assert sql.fetchval("SELECT due_at FROM probe_queue WHERE registration_id = $1", registration_id) is None


def test_latest_is_404_before_the_first_probe(probing: RunningHost, user: Caller) -> None:
    registration = _register(probing.base_url, user, f"https://mcp.contoso.com/never-{user.oid[:8]}")
    answer = httpx.get(f"{probing.base_url}/registrations/{registration['registration_id']}/probes/latest",
                       headers=user.headers, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["detail"] == "This registration has not been probed yet."


def test_racing_requests_get_one_probe(probing: RunningHost, mcp_port: int, user: Caller, sql: Sql) -> None:
    registration = _register(probing.base_url, user, f"http://127.0.0.1:{mcp_port}/mcp?race={user.oid[:8]}")
    url = f"{probing.base_url}/registrations/{registration['registration_id']}/probe"

    async def race() -> list[int]:
        async with httpx.AsyncClient(headers=user.headers, timeout=30) as http:
            answers = await asyncio.gather(*(http.post(url) for _ in range(4)))
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(race()) == [200, 429, 429, 429]
    assert sql.fetchval("SELECT count(*) FROM probes WHERE registration_id = $1",
                        registration["registration_id"]) == 1
