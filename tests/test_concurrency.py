"""Races: duplicate submissions, two administrators deciding at once, edits racing decisions, the pending cap."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.registry import body, submit, unique_host
from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority


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
    # The winner is stored as it was sent, so with or without its trailing slash; both are one URL to uniqueness.
    rows = sql.fetch("SELECT registration_id FROM registrations WHERE endpoint_url = ANY ($1::text[])",
                     [f"https://{host}/mcp", f"https://{host}/mcp/"])
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


def test_an_edit_racing_a_stale_approval_never_publishes_the_edit(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    for _ in range(20):
        created = submit(client, user)
        registration_id = created["registration_id"]

        def act(which: str, registration_id: str = registration_id, created: dict[str, str] = created) -> int:
            if which == "edit":
                return client.patch(f"/registrations/{registration_id}", headers=user.headers,
                                    json={"endpoint_url": created["endpoint_url"] + "/swapped"}).status_code
            return client.patch(f"/registrations/{registration_id}/status", json={"status": "Approved"},
                                headers={**admin.headers, "If-Match": '"1"'}).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            edited, approved = pool.map(act, ["edit", "approve"])
        outcomes[(edited, approved)] += 1
        assert edited == 200
        row = sql.fetchrow("SELECT published_revision, published_endpoint_url, revision FROM registrations "
                           "WHERE registration_id = $1", uuid.UUID(registration_id))
        assert row is not None
        assert row["revision"] == 2
        if approved == 200:
            assert (row["published_revision"], row["published_endpoint_url"]) == (1, created["endpoint_url"])
        else:
            assert approved in (409, 412)
            assert row["published_revision"] is None
        decisions = sql.fetchval("SELECT count(*) FROM audit_log WHERE registration_id = $1 AND action = 'Approved'",
                                 uuid.UUID(registration_id))
        assert decisions == (1 if approved == 200 else 0)
    assert sum(outcomes.values()) == 20


def test_racing_edits_to_one_url_leave_one_holder(
    client: httpx.Client, admin: Caller, make_caller: Callable[..., Caller], sql: Sql
) -> None:
    submitter = make_caller()
    ids = [submit(client, submitter)["registration_id"] for _ in range(10)]
    target = f"https://{unique_host()}/mcp"

    def move(registration_id: str) -> int:
        return client.patch(f"/registrations/{registration_id}", json={"endpoint_url": target},
                            headers=admin.headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = Counter(pool.map(move, ids))
    assert statuses == Counter({200: 1, 409: 9})
    holders = sql.fetch("SELECT registration_id FROM registration_claims WHERE field = 'endpoint_url' AND value = $1",
                        target)
    assert len(holders) == 1
    assert str(holders[0]["registration_id"]) in ids
    assert sql.fetchval("SELECT count(*) FROM registrations WHERE endpoint_url = $1", target) == 1
    assert sql.fetchval("SELECT count(*) FROM audit_log WHERE action = 'Updated' AND registration_id = $1",
                        holders[0]["registration_id"]) == 1


@pytest.fixture(scope="module")
def capped(database_url: str, authority: DevAuthority,
           host_factory: Callable[[Mapping[str, str]], RunningHost]) -> Iterator[httpx.Client]:
    host = host_factory(app_environment(database_url, authority, MAX_PENDING_PER_USER="3"))
    with httpx.Client(base_url=host.base_url, timeout=30) as http_client:
        yield http_client


def test_racing_submissions_stop_exactly_at_the_pending_cap(
    capped: httpx.Client, make_caller: Callable[..., Caller], sql: Sql
) -> None:
    submitter = make_caller()

    def post(index: int) -> int:
        return capped.post("/registrations", json=body(endpoint_name=f"Capped {index}"),
                           headers=submitter.headers).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = Counter(pool.map(post, range(12)))
    assert statuses == Counter({201: 3, 429: 9})
    submitter_id = sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", submitter.oid)
    assert sql.fetchval("SELECT count(*) FROM registrations WHERE submitter_id = $1", submitter_id) == 3
    assert sql.fetchval("SELECT pending FROM review_queue WHERE submitter_id = $1", submitter_id) == 3


def test_racing_edits_of_one_registration_leave_one_pending_revision(
    client: httpx.Client, user: Caller, sql: Sql
) -> None:
    registration_id = submit(client, user)["registration_id"]

    def edit(index: int) -> int:
        return client.patch(f"/registrations/{registration_id}", json={"description": f"Edit {index}."},
                            headers=user.headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(edit, range(10))) == [200] * 10
    revisions = sql.fetch("SELECT revision, status FROM registration_revisions WHERE registration_id = $1 "
                          "ORDER BY revision", uuid.UUID(registration_id))
    assert [(row["revision"], row["status"]) for row in revisions] == [
        *((number, "Superseded") for number in range(1, 11)), (11, "Pending")]
    latest = sql.fetchrow("SELECT revision, description FROM registrations WHERE registration_id = $1",
                          uuid.UUID(registration_id))
    assert latest is not None
    assert latest["revision"] == 11
    edits = sql.fetch("SELECT revision FROM audit_log WHERE registration_id = $1 AND action = 'Updated' "
                      "ORDER BY log_id", uuid.UUID(registration_id))
    assert [row["revision"] for row in edits] == list(range(2, 12))
