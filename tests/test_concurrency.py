"""Races: duplicate submissions and two administrators deciding at once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.registry import body, submit, unique_host
from tests.support import Caller, Sql


def test_fifty_concurrent_duplicates_make_one_row(
    client: httpx.Client, user: Caller, other_user: Caller, sql: Sql
) -> None:
    host = unique_host()
    variants = [f"https://{host}/mcp", f"https://{host.upper()}/mcp", f"https://{host}/mcp/",
                f"HTTPS://{host}:443/mcp"]
    callers = [user, other_user]

    def post(index: int) -> int:
        payload = body(endpoint_url=variants[index % len(variants)], endpoint_name=f"Racer {index}")
        return client.post("/registrations", json=payload, headers=callers[index % 2].headers).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = Counter(pool.map(post, range(50)))
    assert statuses == Counter({201: 1, 409: 49})
    rows = sql.fetch("SELECT registration_id FROM registrations WHERE endpoint_url = $1", f"https://{host}/mcp")
    assert len(rows) == 1
    audit = sql.fetch("SELECT action FROM audit_log WHERE registration_id = $1", rows[0]["registration_id"])
    assert [entry["action"] for entry in audit] == ["Created"]


def test_concurrent_derived_names_never_collide(client: httpx.Client, user: Caller) -> None:
    host = unique_host()

    def post(index: int) -> httpx.Response:
        payload = body(endpoint_url=f"https://{host}/p{index}", endpoint_name="Shared Name")
        return client.post("/registrations", json=payload, headers=user.headers)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))
    assert [response.status_code for response in responses] == [201] * 10
    base = ".".join(reversed(host.split("."))) + "/shared-name"
    assert sorted(response.json()["server_name"] for response in responses) == sorted(
        [base] + [f"{base}-{n}" for n in range(2, 11)])


def test_two_admins_deciding_at_once_make_exactly_one_decision(
    client: httpx.Client, user: Caller, admin: Caller, make_caller: Callable[..., Caller], sql: Sql
) -> None:
    second_admin = make_caller(admin=True)
    for _ in range(50):
        registration_id = submit(client, user)["registration_id"]

        def decide(args: tuple[Caller, str], path: str = f"/registrations/{registration_id}/status") -> tuple[str, int]:
            caller, status = args
            return status, client.patch(path, json={"status": status}, headers=caller.headers).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(decide, [(admin, "Approved"), (second_admin, "Rejected")]))
        winners = [status for status, code in outcomes if code == 200]
        assert sorted(code for _, code in outcomes) == [200, 409]
        row = sql.fetchrow("SELECT status FROM registrations WHERE registration_id = $1", uuid.UUID(registration_id))
        assert row is not None
        assert row["status"] == winners[0]
        decisions = sql.fetch("SELECT action, new_status FROM audit_log WHERE registration_id = $1 "
                              "AND action IN ('Approved', 'Rejected')", uuid.UUID(registration_id))
        assert [tuple(entry) for entry in decisions] == [(winners[0], winners[0])]
