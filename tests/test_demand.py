"""Demand: the feed's lookups of names nothing publishes, counted, bounded and listed for administrators.

Over real HTTP through a dev host of its own database (so the listing holds only this module's
names), with DEMAND_FLUSH_SECONDS=1; the bound is exercised on the counter itself against a real
database, two instances of it filling one day.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shared.config import DatabaseSettings
from shared.db import Database
from shared.services.demand import DAILY_NAMES, DemandCounter
from tests.registry import assert_problem, decide, submit
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

HostFactory = Callable[[Mapping[str, str]], RunningHost]
# Only a guard for polling: when a flush happens depends on the machine, the counts do not.
GUARD_SECONDS = 90.0
TRIGGER = "com.demand-trigger/poll"


def lookup(client: httpx.Client, name: str, rest: str = "versions/latest") -> httpx.Response:
    return client.get(f"/v0.1/servers/{quote(name, safe='')}/{rest}")


def listed(client: httpx.Client, admin: Caller, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/demand", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


@pytest.fixture(scope="module")
def own_database(postgres: PostgresCluster) -> str:
    return postgres.migrated_database("registry_demand")


@pytest.fixture(scope="module")
def demand_client(own_database: str, authority: DevAuthority, host_factory: HostFactory) -> httpx.Client:
    host = host_factory(app_environment(own_database, authority, DEMAND_FLUSH_SECONDS="1"))
    return httpx.Client(base_url=host.base_url, timeout=30)


def test_unknown_names_are_counted_per_name_and_listed_with_their_state_here(
    demand_client: httpx.Client, user: Caller, admin: Caller
) -> None:
    client = demand_client
    published = decide(client, admin, submit(client, user, server_name="com.demand/published")["registration_id"],
                       "Approved")["server_name"]
    submit(client, user, server_name="com.demand/pending")
    decide(client, admin, submit(client, user, server_name="com.demand/rejected")["registration_id"], "Rejected")
    gone = decide(client, admin, submit(client, user, server_name="com.demand/deleted")["registration_id"],
                  "Approved")["registration_id"]
    assert client.delete(f"/registrations/{gone}", headers=admin.headers).status_code == 204

    for name, rest, times in (
        ("com.demand/asked-most", "versions/latest", 3), ("com.demand/asked-once", "versions", 1),
        ("com.demand/pending", "versions/1.0.0", 1), ("com.demand/rejected", "versions/latest", 1),
        ("com.demand/deleted", "versions/latest", 1),
        # Not counted: a published name with an unknown version, and names the server_name rule refuses.
        (published, "versions/9.9.9", 2), ("com.demand/bad name", "versions/latest", 2),
        ("com.demand/" + "x" * 300, "versions/latest", 1),
    ):
        for _ in range(times):
            assert_problem(lookup(client, name, rest), 404)
    # The one 404 that is a lookup of a published server's version is an answer about that server.
    assert lookup(client, published).status_code == 200

    def flushed() -> list[dict[str, Any]]:
        deadline = time.monotonic() + GUARD_SECONDS
        while True:
            # Lookups keep coming, as in life: one of them finds the flush due.
            assert_problem(lookup(client, TRIGGER), 404)
            results = listed(client, admin, limit=100)
            counts = {entry["name"]: entry["count"] for entry in results}
            if counts.get("com.demand/asked-most") == 3 and len(counts) >= 6:
                return results
            assert time.monotonic() < deadline, "gave up waiting for a flush (a guard, not a time window)"
            time.sleep(0.2)

    results = [entry for entry in flushed() if entry["name"] != TRIGGER]
    assert [(entry["name"], entry["count"], entry["state"]) for entry in results] == [
        ("com.demand/asked-most", 3, None),
        ("com.demand/asked-once", 1, None),
        ("com.demand/deleted", 1, "deleted"),
        ("com.demand/pending", 1, "pending"),
        ("com.demand/rejected", 1, "rejected"),
    ]
    for entry in results:
        assert datetime.fromisoformat(entry["last_seen"]).tzinfo is not None
    assert [entry["name"] for entry in listed(client, admin, limit=1, offset=1, days=1)] == [
        entry["name"] for entry in listed(client, admin, limit=100)][1:2]


def test_demand_is_for_administrators_and_checks_its_query(
    demand_client: httpx.Client, user: Caller, admin: Caller
) -> None:
    assert demand_client.get("/demand", headers=user.headers).status_code == 403
    assert demand_client.get("/demand").status_code == 401
    for params in ({"days": "0"}, {"days": "91"}, {"limit": "101"}, {"offset": "-1"}):
        assert_problem(demand_client.get("/demand", params=params, headers=admin.headers), 422)


def _random_name(rng: random.Random) -> str:
    letters = string.ascii_lowercase + string.digits
    return f"com.flood-{''.join(rng.choices(letters, k=8))}/{''.join(rng.choices(letters + '._-', k=12))}"


def test_a_flood_of_random_names_stays_within_the_daily_bound_across_instances(own_database: str) -> None:
    rng = random.Random(24)
    sql = Sql(own_database)

    async def flood() -> None:
        db = Database(lambda: DatabaseSettings.from_env({"DATABASE_URL": own_database}))
        first, second = DemandCounter(db, lambda: 3600.0), DemandCounter(db, lambda: 3600.0)
        try:
            now = datetime.now(UTC)
            already = await db.fetchval("SELECT count(*) FROM feed_demand WHERE day = $1", now.date())
            counted = sum(first.count(_random_name(rng), now) for _ in range(DAILY_NAMES + 2_000))
            assert counted == DAILY_NAMES
            assert (first.pending, first.refused) == (DAILY_NAMES, 2_000)
            assert await first.flush() == DAILY_NAMES
            # Another instance's names find the day full: only the names already there are added to.
            kept = await db.fetchval("SELECT name FROM feed_demand WHERE day = $1 AND name LIKE 'com.flood-%' "
                                     "ORDER BY name LIMIT 1", now.date())
            for _ in range(500):
                second.count(_random_name(rng), now)
            second.count(kept, now)
            await second.flush()
            assert await db.fetchval("SELECT count(*) FROM feed_demand WHERE day = $1", now.date()) == DAILY_NAMES
            assert already < DAILY_NAMES
            assert await db.fetchval("SELECT count FROM feed_demand WHERE day = $1 AND name = $2",
                                     now.date(), kept) == 2
        finally:
            await db.close()

    asyncio.run(flood())
    assert sql.fetchval("SELECT count(*) FROM feed_demand WHERE name LIKE 'com.flood-%'") <= DAILY_NAMES


@pytest.mark.parametrize("name", ["not a name", "noslash", "com.example/", "/x", "com.example/a/b",
                                  "com.example/" + "x" * 200, "com.exämple/x", "com.example/x\x00"])
def test_a_malformed_name_is_not_counted(name: str) -> None:
    counter = DemandCounter(Database(lambda: DatabaseSettings.from_env({"DATABASE_URL": "postgresql://unused"})),
                            lambda: 60.0)
    assert counter.count(name) is False
    assert counter.pending == 0
    assert counter.count("com.example/weather") is True
