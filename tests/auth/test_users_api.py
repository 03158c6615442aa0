"""/api/users over real HTTP through the dev host, with tokens from the session's authority."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROBLEM = "application/problem+json"


def problem(response: httpx.Response) -> tuple[int, str, str | None]:
    assert response.headers["Content-Type"].startswith(PROBLEM)
    return response.status_code, response.json()["detail"], response.headers.get("WWW-Authenticate")


def test_post_users_creates_then_finds_the_caller(client: httpx.Client, user: Caller) -> None:
    created = client.post("/users", headers=user.headers)
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"user_id", "entra_id", "email", "display_name", "is_admin", "created_at", "updated_at"}
    assert (body["entra_id"], body["email"], body["display_name"], body["is_admin"]) == (
        user.oid, user.email, user.name, False
    )
    assert RFC3339_UTC.match(body["created_at"])
    assert RFC3339_UTC.match(body["updated_at"])
    again = client.post("/users", headers=user.headers)
    assert (again.status_code, again.json()) == (200, body)


def test_get_me_returns_the_callers_row(client: httpx.Client, user: Caller) -> None:
    me = client.get("/users/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["entra_id"] == user.oid
    assert client.post("/users", headers=user.headers).json() == me.json()


def test_a_user_reads_their_own_row_by_id(client: httpx.Client, user: Caller) -> None:
    me = client.get("/users/me", headers=user.headers).json()
    by_id = client.get(f"/users/{me['user_id']}", headers=user.headers)
    assert (by_id.status_code, by_id.json()) == (200, me)


def test_another_users_row_is_403_for_a_non_admin(client: httpx.Client, user: Caller, other_user: Caller) -> None:
    theirs = client.get("/users/me", headers=other_user.headers).json()["user_id"]
    for user_id in (theirs, str(uuid.uuid4())):
        response = client.get(f"/users/{user_id}", headers=user.headers)
        assert problem(response) == (403, "Only administrators may read another user.", None)


def test_an_admin_reads_any_row_and_gets_404_for_unknown_ids(
    client: httpx.Client, user: Caller, admin: Caller
) -> None:
    theirs = client.get("/users/me", headers=user.headers).json()
    assert client.get(f"/users/{theirs['user_id']}", headers=admin.headers).json() == theirs
    missing = client.get(f"/users/{uuid.uuid4()}", headers=admin.headers)
    assert problem(missing) == (404, "No user has this id.", None)


def test_a_non_guid_id_is_not_routed_to_the_user_handler(client: httpx.Client, admin: Caller) -> None:
    assert client.get("/users/not-a-guid", headers=admin.headers).status_code == 404


def test_is_admin_in_the_database_follows_the_token(
    client: httpx.Client, make_caller: Callable[..., Caller], authority: DevAuthority, sql: Sql
) -> None:
    oid = str(uuid.uuid4())
    as_admin = authority.mint(oid=oid, name="Grace", admin=True)
    as_user = authority.mint(oid=oid, name="Grace", admin=False)
    assert client.post("/users", headers={"Authorization": f"Bearer {as_admin}"}).json()["is_admin"] is True
    assert client.get("/users/me", headers={"Authorization": f"Bearer {as_user}"}).json()["is_admin"] is False
    assert sql.fetchval("SELECT is_admin FROM users WHERE entra_id = $1", oid) is False


def test_no_token_is_401_with_a_bare_challenge(client: httpx.Client) -> None:
    for method, path in (("POST", "/users"), ("GET", "/users/me"), ("GET", f"/users/{uuid.uuid4()}")):
        response = client.request(method, path)
        assert problem(response) == (
            401, "Sign in: send an Authorization header with a Bearer access token.", "Bearer"
        )


def test_a_bad_token_is_401_invalid_token(client: httpx.Client, authority: DevAuthority) -> None:
    expired = authority.mint(lifetime=-300)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "The Authorization header must hold 'Bearer <access token>'."),
        ({"Authorization": "Bearer not.a.token"}, "The token is malformed."),
        ({"Authorization": f"Bearer {expired}"}, "The token has expired."),
    ]
    for headers, detail in cases:
        assert problem(client.get("/users/me", headers=headers)) == (401, detail, 'Bearer error="invalid_token"')


def test_an_app_only_token_is_403(client: httpx.Client, authority: DevAuthority) -> None:
    app_token = authority.mint(scopes=None, roles=("Registry.Read",), email=None, name="Nightly job")
    response = client.get("/users/me", headers={"Authorization": f"Bearer {app_token}"})
    assert problem(response) == (
        403, "App-only tokens are not accepted here: call this API on behalf of a signed-in user.", None
    )


def test_a_cold_start_with_the_authority_down_is_503(
    database_url: str, host_factory: Callable[[Mapping[str, str]], RunningHost]
) -> None:
    down = DevAuthority(keys=[], available=False)
    down.start()
    try:
        host = host_factory(app_environment(database_url, down))
        response = httpx.get(f"{host.base_url}/users/me", headers={"Authorization": f"Bearer {_any_token()}"})
    finally:
        down.stop()
    assert problem(response) == (503, "The sign-in keys cannot be loaded right now. Try again shortly.", None)
    assert 1 <= int(response.headers["Retry-After"]) <= 5


def _any_token() -> str:
    return DevAuthority(base_url="http://127.0.0.1:1").mint()
