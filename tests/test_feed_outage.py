"""The feed through a database outage, over real HTTP: PostgreSQL is stopped under feed load.

While an instance holds a snapshot, no feed request answers 5xx; once its snapshot can no longer
be confirmed the answers carry `Age`; an instance with no snapshot answers 503 problem+json with
`Retry-After`; after the database returns, the feed follows it again by itself. No assertion
depends on how fast the machine is: loads are bounded by count, waits poll with a generous guard.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shared.config import DatabaseSettings
from tests.registry import assert_problem, decide, submit
from tests.support import Caller, RunningHost, app_environment, throwaway_server
from tools.authority import DevAuthority
from tools.migrate import migrate
from tools.pgserver import PgServer

HostFactory = Callable[[Mapping[str, str]], RunningHost]
# Feed requests made while the database is down: enough to cross several checks and retries.
LOAD = 150
# Only a guard for polling: how fast a busy machine recovers is not the feature.
GUARD_SECONDS = 90.0


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgServer]:
    """A migrated PostgreSQL these tests may stop and start without disturbing the others."""
    with throwaway_server("registry-feed-outage-") as server:
        server.start()
        asyncio.run(migrate(DatabaseSettings.from_env({"DATABASE_URL": server.url}), quiet=True))
        yield server


def _publish(client: httpx.Client, user: Caller, admin: Caller) -> str:
    name = f"com.outage{uuid.uuid4().hex[:10]}/weather"
    created = submit(client, user, server_name=name)
    decide(client, admin, created["registration_id"], "Approved")
    return name


def _names(response: httpx.Response) -> list[str]:
    return [entry["server"]["name"] for entry in response.json()["servers"]]


def _poll(check: Callable[[], httpx.Response | None]) -> httpx.Response:
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        answer = check()
        if answer is not None:
            return answer
        assert time.monotonic() < deadline, "gave up waiting (a guard, not a time window)"
        time.sleep(0.2)


def _feed_health(base_url: str) -> dict[str, Any]:
    feed: dict[str, Any] = httpx.get(f"{base_url}/health", timeout=30).json()["feed"]
    return feed


def test_feed_answers_from_memory_while_postgres_is_down_and_follows_it_again_after(
    own_server: PgServer, authority: DevAuthority, host_factory: HostFactory, user: Caller, admin: Caller
) -> None:
    if not own_server.running():
        own_server.start()
    host = host_factory(app_environment(own_server.url, authority, FEED_SNAPSHOT_MAX_AGE="1"))
    with httpx.Client(base_url=host.base_url, timeout=30) as client:
        before = _publish(client, user, admin)
        listed = client.get("/v0.1/servers", params={"search": before})
        assert (listed.status_code, _names(listed), listed.headers.get("Age")) == (200, [before], None)
        paths = [("/v0.1/servers", {"search": before}), ("/v0.1/servers", {"limit": "2"}),
                 (f"/v0.1/servers/{quote(before, safe='')}/versions/latest", {}),
                 (f"/v0.1/servers/{quote(before, safe='')}/versions", {}),
                 ("/v0.1/servers/com.example%2Fnobody-has-this/versions/latest", {})]
        reference = {path: client.get(path, params=params).content for path, params in paths}

        own_server.stop()
        statuses = []
        for index in range(LOAD):
            path, params = paths[index % len(paths)]
            response = client.get(path, params=params)
            statuses.append(response.status_code)
            # Answered from the snapshot: the same bytes as before the outage.
            assert response.content == reference[path], (index, response.status_code, response.text)
        assert max(statuses) < 500
        assert statuses.count(404) == LOAD // len(paths)

        # Once a check has failed, the snapshot is served as what it is: unconfirmed, with its age.
        listing, query = paths[0]
        aged = _poll(lambda: (answer if "Age" in (answer := client.get(listing, params=query)).headers else None))
        assert aged.status_code == 200
        assert aged.headers["Age"].isdigit()
        assert _names(aged) == [before]
        health = httpx.get(f"{host.base_url}/health", timeout=30)
        assert health.status_code == 503
        assert health.json()["feed"]["source"] == "memory"
        assert health.json()["feed"]["snapshot_age_s"] >= 0

        own_server.start()
        after = _publish(client, user, admin)
        # The database path resumes by itself: the new publication appears, confirmed current (no Age).
        found = _poll(lambda: (answer if _names(answer := client.get("/v0.1/servers", params={"search": after}))
                               == [after] and "Age" not in answer.headers else None))
        assert found.status_code == 200
        assert _feed_health(host.base_url)["source"] == "database"
        assert host.process.poll() is None


def test_an_instance_with_no_snapshot_and_no_database_answers_503_until_the_database_returns(
    own_server: PgServer, authority: DevAuthority, host_factory: HostFactory
) -> None:
    if own_server.running():
        own_server.stop()
    host = host_factory(app_environment(own_server.url, authority, FEED_SNAPSHOT_MAX_AGE="1"))
    response = httpx.get(f"{host.base_url}/v0.1/servers", timeout=30)
    problem = assert_problem(response, 503)
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "Age" not in response.headers
    assert problem["status"] == 503
    assert _feed_health(host.base_url) == {"source": "none", "snapshot_age_s": None}

    own_server.start()
    _poll(lambda: (answer if (answer := httpx.get(f"{host.base_url}/v0.1/servers", timeout=30)).status_code == 200
                   else None))
    assert _feed_health(host.base_url)["source"] == "database"
