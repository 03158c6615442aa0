"""The MCP Registry v0.1 feed through the dev host over real HTTP, against the official shapes.

Each test names its servers with a marker of its own and searches for it, so registrations
made by other tests never reach its assertions.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from shared.http import parse_query
from shared.schemas.feed import FeedQuery
from tests.registry import assert_problem, decide, submit
from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "server-response.schema.json").read_text())
RESPONSE = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
LIST = Draft202012Validator({**SCHEMA, "$ref": "#/$defs/ServerList"}, format_checker=FormatChecker())
SERVER_SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
OFFICIAL = "io.modelcontextprotocol.registry/official"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type",
}


def new_marker() -> str:
    return f"feedtest{uuid.uuid4().hex[:10]}"


def assert_cors(response: httpx.Response) -> None:
    assert {name: response.headers.get(name) for name in CORS} == CORS


def servers(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v0.1/servers", params=params)
    assert response.status_code == 200, response.text
    assert_cors(response)
    page: dict[str, Any] = response.json()
    LIST.validate(page)
    assert page["metadata"]["count"] == len(page["servers"])
    return page


def names(page: Mapping[str, Any]) -> list[str]:
    return [entry["server"]["name"] for entry in page["servers"]]


def version_path(name: str, version: str = "latest") -> str:
    return f"/v0.1/servers/{quote(name, safe='')}/versions/{quote(version, safe='')}"


def server(client: httpx.Client, name: str, version: str = "latest") -> dict[str, Any]:
    response = client.get(version_path(name, version))
    assert response.status_code == 200, response.text
    assert_cors(response)
    entry: dict[str, Any] = response.json()
    RESPONSE.validate(entry)
    return entry


def approve(client: httpx.Client, user: Caller, admin: Caller, **overrides: Any) -> dict[str, Any]:
    created = submit(client, user, **overrides)
    return decide(client, admin, created["registration_id"], "Approved")


def edit_and_approve(client: httpx.Client, editor: Caller, admin: Caller, registration_id: str,
                     **changes: Any) -> dict[str, Any]:
    edited = client.patch(f"/registrations/{registration_id}", json=changes, headers=editor.headers)
    assert (edited.status_code, edited.json()["status"]) == (200, "Pending"), edited.text
    return decide(client, admin, registration_id, "Approved")


def insert_approved(sql: Sql, marker: str, count: int) -> list[str]:
    """`count` published registrations (revision 1, approved) in one statement, named com.{marker}/s-0001 upwards."""
    submitter = sql.fetchval(
        "INSERT INTO users (entra_id, display_name) VALUES ($1, 'Feed tests') RETURNING user_id", str(uuid.uuid4()))
    rows = sql.fetch(
        """
        WITH source AS (
            SELECT format('https://s-%s.%s.example.com/mcp', n, $1::text) AS url, format('Server %s', n) AS title,
                   format('com.%s/s-%s', $1::text, lpad(n::text, 4, '0')) AS name
            FROM generate_series(1, $3::int) AS n
        ), inserted AS (
            INSERT INTO registrations (endpoint_url, endpoint_name, description, owner_contact, submitter_id,
                                       approver_id, server_name, status, approved_at, published_at,
                                       published_revision, published_endpoint_url, published_endpoint_name,
                                       published_description, published_owner_contact, published_available_tools,
                                       published_server_name, published_transport, published_version,
                                       published_approver_id, published_approved_at, published_updated_at,
                                       publication)
            SELECT url, title, 'Bulk server.', 'owner@example.com', $2, $2, name, 'Approved', now(), now(),
                   1, url, title, 'Bulk server.', 'owner@example.com', '[]', name, 'streamable-http', '1.0.0',
                   $2, now(), now(), 'active'
            FROM source
            RETURNING *
        ), revision AS (
            INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name, description,
                                                owner_contact, server_name, transport, version, status,
                                                submitted_by, decided_by, decided_at)
            SELECT registration_id, 1, endpoint_url, endpoint_name, description, owner_contact, server_name,
                   transport, version, 'Approved', submitter_id, approver_id, approved_at
            FROM inserted
        )
        SELECT server_name FROM inserted
        """,
        marker, submitter, count,
    )
    return sorted(row["server_name"] for row in rows)


def database_now(sql: Sql) -> str:
    now: datetime = sql.fetchval("SELECT clock_timestamp()")
    return now.isoformat()


def test_paging_sees_every_registration_once_while_others_are_approved(
    client: httpx.Client, sql: Sql, user: Caller, admin: Caller
) -> None:
    marker = new_marker()
    initial = insert_approved(sql, marker, 250)
    seen: list[str] = []
    after_cursor: list[str] = []
    before_cursor: list[str] = []
    pages = 1
    # The calls VS Code makes: the first page with the search, the next ones with only the cursor.
    page = servers(client, limit=7, version="latest", search=marker)
    while True:
        seen += names(page)
        if "nextCursor" not in page["metadata"]:
            break
        assert page["metadata"]["count"] == 7
        last = seen[-1]
        for name in (f"{last}x", f"com.{marker}/a-{len(seen):04d}"):
            approve(client, user, admin, server_name=name)
            (after_cursor if name > last else before_cursor).append(name)
        page = servers(client, limit=7, version="latest", cursor=page["metadata"]["nextCursor"])
        pages += 1
    assert seen == sorted(initial + after_cursor)
    assert len(seen) == len(set(seen)) == 250 + len(after_cursor)
    assert len(before_cursor) == len(after_cursor) == pages - 1
    assert not set(before_cursor) & set(seen)


def sync_entries(page: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(entry["server"]["name"], entry["_meta"][OFFICIAL]["status"]) for entry in page["servers"]]


def test_updated_since_pages_in_order_of_change_and_repeats_what_changed_behind_the_cursor(
    client: httpx.Client, sql: Sql, admin: Caller
) -> None:
    marker = new_marker()
    since = database_now(sql)
    insert_approved(sql, marker, 10)
    ids = {row["server_name"]: row["registration_id"] for row in sql.fetch(
        "SELECT server_name, registration_id FROM registrations WHERE server_name LIKE $1", f"com.{marker}/%")}
    # Inserted by one statement, all ten share updated_at: the id breaks the tie.
    by_id = sorted(ids, key=ids.__getitem__)
    first = servers(client, updated_since=since, search=marker, limit=3)
    assert sync_entries(first) == [(name, "active") for name in by_id[:3]]
    read, unread = by_id[0], by_id[-1]
    for name in (read, unread):
        assert client.delete(f"/registrations/{ids[name]}", headers=admin.headers).status_code == 204
    entries = sync_entries(first)
    stamps = [entry["_meta"][OFFICIAL]["updatedAt"] for entry in first["servers"]]
    page = first
    while "nextCursor" in page["metadata"]:
        page = servers(client, updated_since=since, limit=3, cursor=page["metadata"]["nextCursor"])
        entries += sync_entries(page)
        stamps += [entry["_meta"][OFFICIAL]["updatedAt"] for entry in page["servers"]]
    assert entries == [(name, "active") for name in by_id[:-1]] + [(read, "deleted"), (unread, "deleted")]
    assert [datetime.fromisoformat(stamp) for stamp in stamps] == sorted(datetime.fromisoformat(s) for s in stamps)


def test_limits_render_within_the_official_schema(
    client: httpx.Client, user: Caller, admin: Caller, make_caller: Callable[..., Caller]
) -> None:
    marker = new_marker()
    namespace = f"com.{marker}"
    long_name = f"{namespace}/{'n' * (200 - len(namespace) - 1)}"
    host = f"mcp.{marker}.com"
    long_url = f"https://{host}/" + "p" * (2048 - len(f"https://{host}/"))
    words = " ".join(f"word{index:03d}" for index in range(250)) + "."
    long_title = ("Title " * 40)[:200].strip()
    big = approve(client, user, admin, server_name=long_name, endpoint_url=long_url, description=words,
                  endpoint_name=long_title, transport="sse", version="v" * 255)
    tiny_name = f"{uuid.uuid4().hex[0]}/{uuid.uuid4().hex[0]}"
    # A name outside any namespace: only an administrator may give one.
    tiny = approve(client, make_caller(admin=True), admin, server_name=tiny_name, endpoint_name="abc",
                   description=None)
    assert (len(big["server_name"]), len(big["endpoint_url"]), len(big["description"])) == (200, 2048, 2000)

    assert server(client, long_name)["server"] == {
        "$schema": SERVER_SCHEMA_URL,
        "name": long_name,
        "title": " ".join(["Title"] * 16) + "…",
        "description": " ".join(f"word{index:03d}" for index in range(12)) + "…",
        "version": "v" * 255,
        "remotes": [{"type": "sse", "url": long_url}],
    }

    assert server(client, tiny_name) == {
        "server": {
            "$schema": SERVER_SCHEMA_URL,
            "name": tiny_name,
            "title": "abc",
            "description": "abc",
            "version": "1.0.0",
            "remotes": [{"type": "streamable-http", "url": tiny["endpoint_url"]}],
        },
        "_meta": {OFFICIAL: {
            "status": "active",
            "publishedAt": tiny["approved_at"],
            "updatedAt": tiny["updated_at"],
            "isLatest": True,
        }},
    }


def test_one_long_word_is_cut_inside_the_word(client: httpx.Client, user: Caller, admin: Caller) -> None:
    name = f"com.{new_marker()}/word"
    approve(client, user, admin, server_name=name, description="x" * 500)
    assert server(client, name)["server"]["description"] == "x" * 99 + "…"


def test_only_live_approved_registrations_are_listed(client: httpx.Client, user: Caller, admin: Caller) -> None:
    marker = new_marker()
    named = {state: f"com.{marker}/{state}" for state in ("approved", "pending", "rejected", "deleted")}
    approved = approve(client, user, admin, server_name=named["approved"])
    submit(client, user, server_name=named["pending"])
    decide(client, admin, submit(client, user, server_name=named["rejected"])["registration_id"], "Rejected")
    deleted = approve(client, user, admin, server_name=named["deleted"])
    assert client.delete(f"/registrations/{deleted['registration_id']}", headers=admin.headers).status_code == 204

    assert names(servers(client, search=marker)) == [named["approved"]]
    assert names(servers(client, search=marker.upper())) == [named["approved"]]
    for state in ("pending", "rejected", "deleted"):
        assert_problem(client.get(version_path(named[state])), 404, "Server not found.")
        assert_problem(client.get(f"/v0.1/servers/{quote(named[state], safe='')}/versions"), 404, "Server not found.")
    versions = client.get(f"/v0.1/servers/{quote(named['approved'], safe='')}/versions")
    assert versions.status_code == 200
    LIST.validate(versions.json())
    latest = server(client, named["approved"])
    assert versions.json() == {"servers": [latest], "metadata": {"count": 1}}
    assert server(client, named["approved"], approved["version"]) == latest
    assert_problem(client.get(version_path(named["approved"], "9.9.9")), 404, "Server not found.")


def test_a_server_is_found_with_its_slash_decoded_as_azure_delivers_it_or_encoded(
    client: httpx.Client, user: Caller, admin: Caller
) -> None:
    # VS Code sends encodeURIComponent(name); Azure's front end decodes the %2F before routing
    # (azure-functions-host #9290, #3998, #5619) and so does the dev host.
    marker = new_marker()
    name = f"com.{marker}/weather"
    approve(client, user, admin, server_name=name, version="2.1.0")
    latest = server(client, name)
    listed = {"servers": [latest], "metadata": {"count": 1}}
    namespace = f"com.{marker}"
    for spelled in (name, f"{namespace}%2Fweather", f"{namespace}%2fweather"):
        for suffix, expected in (("versions", listed), ("versions/latest", latest), ("versions/2.1.0", latest),
                                 ("VERSIONS/latest", latest)):
            response = client.get(f"/v0.1/servers/{spelled}/{suffix}")
            assert (response.status_code, response.json()) == (200, expected), (spelled, suffix)
            assert_cors(response)
        preflight = client.options(f"/v0.1/servers/{spelled}/versions/latest",
                                   headers={"Origin": "https://vscode.dev", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204
        assert_cors(preflight)


@pytest.mark.parametrize("path", [
    "/v0.1/servers/com.x",
    "/v0.1/servers/com.x/weather",
    "/v0.1/servers/com.x%2Fweather",
    "/v0.1/servers/com.x/weather/other",
    "/v0.1/servers/com.x%2Fweather/other/latest",
])
def test_paths_of_shapes_the_feed_does_not_serve_are_404_problems(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert_problem(response, 404, "Server not found.")
    assert_cors(response)


def test_a_path_the_feed_does_not_serve_is_404_before_its_query_is_read(client: httpx.Client) -> None:
    response = client.get("/v0.1/servers/com.x/weather/other", params={"include_deleted": "perhaps"})
    assert_problem(response, 404, "Server not found.")
    assert_problem(client.get("/v0.1/servers/com.x/weather/versions", params={"include_deleted": "perhaps"}), 422)


def test_path_values_are_decoded_once(client: httpx.Client, user: Caller, admin: Caller) -> None:
    name = f"com.{new_marker()}/percent"
    approve(client, user, admin, server_name=name, version="3.0.0-%41")
    # `%2541` is `%41` once decoded; decoding it again would ask for `3.0.0-A`.
    assert server(client, name, "3.0.0-%41")["server"]["version"] == "3.0.0-%41"
    assert client.get(f"/v0.1/servers/{name}/versions/3.0.0-%2541").status_code == 200
    approve(client, user, admin, server_name=f"{name}-a", version="3.0.0-A")
    assert server(client, f"{name}-a", "3.0.0-A")["server"]["version"] == "3.0.0-A"
    assert_problem(client.get(f"/v0.1/servers/{name}-a/versions/3.0.0-%2541"), 404, "Server not found.")


def test_version_is_latest_or_one_exact_version(client: httpx.Client, user: Caller, admin: Caller) -> None:
    marker = new_marker()
    approve(client, user, admin, server_name=f"com.{marker}/one", version="1.0.0")
    approve(client, user, admin, server_name=f"com.{marker}/two", version="2.0.0-beta+7")
    assert names(servers(client, search=marker, version="latest")) == [f"com.{marker}/one", f"com.{marker}/two"]
    assert names(servers(client, search=marker, version="2.0.0-beta+7")) == [f"com.{marker}/two"]
    assert names(servers(client, search=marker, version="2.0.0")) == []
    assert server(client, f"com.{marker}/two", "2.0.0-beta+7")["server"]["version"] == "2.0.0-beta+7"


def test_search_treats_percent_and_underscore_literally(client: httpx.Client, user: Caller, admin: Caller) -> None:
    marker = new_marker()
    approve(client, user, admin, server_name=f"com.{marker}/a_b")
    approve(client, user, admin, server_name=f"com.{marker}/axb")
    assert names(servers(client, search=f"{marker}/a_b")) == [f"com.{marker}/a_b"]
    assert names(servers(client, search=f"{marker}/a%")) == []


def test_updated_since_reports_deleted_entries_as_they_were_published_and_never_an_edit_under_review(
    client: httpx.Client, sql: Sql, user: Caller, admin: Caller
) -> None:
    marker = new_marker()
    since = database_now(sql)
    kept = approve(client, user, admin, server_name=f"com.{marker}/kept")
    deleted = approve(client, user, admin, server_name=f"com.{marker}/deleted", description="Gone soon.")
    edited = approve(client, user, admin, server_name=f"com.{marker}/edited", description="As approved.")
    submit(client, user, server_name=f"com.{marker}/pending")
    decide(client, admin, submit(client, user, server_name=f"com.{marker}/rejected")["registration_id"], "Rejected")
    assert client.delete(f"/registrations/{deleted['registration_id']}", headers=admin.headers).status_code == 204
    edit = {"description": "Unapproved text.", "endpoint_name": "New Name"}
    pending = client.patch(f"/registrations/{edited['registration_id']}", json=edit, headers=user.headers)
    assert (pending.status_code, pending.json()["status"]) == (200, "Pending")

    page = servers(client, updated_since=since, search=marker)
    by_name = {entry["server"]["name"]: entry for entry in page["servers"]}
    assert names(page) == [f"com.{marker}/kept", f"com.{marker}/edited", f"com.{marker}/deleted"]
    assert {name: entry["_meta"][OFFICIAL]["status"] for name, entry in by_name.items()} == {
        f"com.{marker}/kept": "active", f"com.{marker}/deleted": "deleted", f"com.{marker}/edited": "active"}
    live = by_name[f"com.{marker}/edited"]
    assert (live["server"]["title"], live["server"]["description"]) == (edited["endpoint_name"], "As approved.")
    assert live["_meta"][OFFICIAL]["publishedAt"] == edited["approved_at"]
    # The edit under review changes nothing the public sees, not even the time of the entry.
    assert live["_meta"][OFFICIAL]["updatedAt"] == edited["updated_at"]
    gone = by_name[f"com.{marker}/deleted"]
    assert (gone["server"]["description"], gone["_meta"][OFFICIAL]["publishedAt"]) == (
        "Gone soon.", deleted["approved_at"])
    assert by_name[f"com.{marker}/kept"]["_meta"][OFFICIAL]["updatedAt"] == kept["updated_at"]
    assert "Unapproved" not in json.dumps(page)
    assert names(servers(client, search=marker)) == [f"com.{marker}/edited", f"com.{marker}/kept"]

    approve_again = decide(client, admin, edited["registration_id"], "Approved")
    resynced = servers(client, updated_since=edited["updated_at"], search=marker)
    assert [(entry["server"]["name"], entry["server"]["description"], entry["_meta"][OFFICIAL]["status"])
            for entry in resynced["servers"]] == [
        (f"com.{marker}/deleted", "Gone soon.", "deleted"), (f"com.{marker}/edited", "Unapproved text.", "active")]
    assert resynced["servers"][1]["_meta"][OFFICIAL]["publishedAt"] == approve_again["approved_at"]


def test_a_departed_entry_is_not_announced_under_a_version_another_live_registration_holds(
    client: httpx.Client, sql: Sql, user: Caller, other_user: Caller, admin: Caller,
    make_caller: Callable[..., Caller]
) -> None:
    marker = new_marker()
    since = database_now(sql)
    name = f"com.{marker}/shared-name"
    first = approve(client, user, admin, server_name=name, version="1.0.0")
    assert client.delete(f"/registrations/{first['registration_id']}", headers=admin.headers).status_code == 204

    def versions() -> list[tuple[str, str, str]]:
        page = servers(client, updated_since=since, search=marker)
        return [(entry["server"]["name"], entry["server"]["version"], entry["_meta"][OFFICIAL]["status"])
                for entry in page["servers"]]

    assert versions() == [(name, "1.0.0", "deleted")]
    second = approve(client, other_user, admin, server_name=name, version="2.0.0")
    assert versions() == [(name, "1.0.0", "deleted"), (name, "2.0.0", "active")]
    edit_and_approve(client, make_caller(admin=True), admin, second["registration_id"], version="1.0.0")
    assert versions() == [(name, "1.0.0", "active")]


def test_the_calls_vs_code_makes(client: httpx.Client, user: Caller, admin: Caller) -> None:
    name = f"com.weather{uuid.uuid4().hex[:8]}/forecast"
    approved = approve(client, user, admin, server_name=name, description="Forecasts for any city.")

    probe = servers(client, limit=1)
    assert probe["metadata"]["count"] == 1

    page = servers(client, limit=50, version="latest", search="wea")
    found = names(page)
    while name not in found and "nextCursor" in page["metadata"]:
        page = servers(client, limit=50, version="latest", cursor=page["metadata"]["nextCursor"])
        found += names(page)
    assert name in found
    assert all("wea" in entry.lower() for entry in found)

    detail = server(client, name)["server"]
    assert detail["remotes"] == [{"type": "streamable-http", "url": approved["endpoint_url"]}]
    assert detail["description"] == "Forecasts for any city."


def test_cors_headers_on_every_answer(client: httpx.Client, user: Caller, admin: Caller) -> None:
    name = f"com.{new_marker()}/cors"
    approve(client, user, admin, server_name=name)
    ok = client.get(version_path(name))
    assert ok.status_code == 200
    missing = client.get(version_path(f"com.{new_marker()}/missing"))
    assert_problem(missing, 404, "Server not found.")
    invalid = client.get("/v0.1/servers", params={"limit": 0})
    assert_problem(invalid, 422)
    not_modified = client.get(version_path(name), headers={"If-None-Match": ok.headers["ETag"]})
    assert not_modified.status_code == 304
    for response in (ok, missing, invalid, not_modified):
        assert_cors(response)
    for path in ("/v0.1/servers", f"/v0.1/servers/{quote(name, safe='')}/versions", version_path(name)):
        preflight = client.options(path, headers={"Origin": "https://vscode.dev",
                                                  "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "authorization"})
        assert (preflight.status_code, preflight.content) == (204, b"")
        assert_cors(preflight)
        assert preflight.headers["Access-Control-Max-Age"] == "86400"


def test_etag_answers_304_until_the_entry_changes(client: httpx.Client, user: Caller, admin: Caller) -> None:
    name = f"com.{new_marker()}/etag"
    approved = approve(client, user, admin, server_name=name)
    first = client.get(version_path(name))
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag)
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert client.get(version_path(name)).headers["ETag"] == etag
    for held in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(version_path(name), headers={"If-None-Match": held})
        assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
        assert again.headers["Cache-Control"] == "public, max-age=60"
    assert client.get(version_path(name), headers={"If-None-Match": '"other"'}).status_code == 200

    changed = client.patch(f"/registrations/{approved['registration_id']}", json={"description": "New words."},
                           headers=user.headers)
    assert (changed.status_code, changed.json()["status"]) == (200, "Pending")
    assert client.get(version_path(name), headers={"If-None-Match": etag}).status_code == 304
    decide(client, admin, approved["registration_id"], "Approved")
    fresh = client.get(version_path(name), headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag
    assert fresh.json()["server"]["description"] == "New words."

    listing = client.get("/v0.1/servers", params={"search": name})
    assert listing.headers["Cache-Control"] == "public, max-age=60"
    cached = client.get("/v0.1/servers", params={"search": name}, headers={"If-None-Match": listing.headers["ETag"]})
    assert (cached.status_code, cached.content) == (304, b"")


def forged(*fields: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not a cursor"}, "cursor"),
    ({"cursor": "eyJub3QiOiJhIGN1cnNvciJ9"}, "cursor"),
    ({"cursor": "WyJhIiwibm90LWEtdXVpZCIsbnVsbCxudWxsLG51bGxd"}, "cursor"),
    ({"cursor": "A" * 5000}, "cursor"),
    ({"cursor": forged("com.x/a", str(uuid.uuid4()), "nul\u0000", None, None, False)}, "cursor"),
    ({"cursor": forged("not a name", str(uuid.uuid4()), None, None, None, False)}, "cursor"),
    ({"cursor": forged("com.x/a", str(uuid.uuid4()), None, None, "2025-01-01T00:00:00Z", False)}, "cursor"),
    ({"updated_since": "yesterday"}, "updated_since"),
    ({"updated_since": "2025-01-01"}, "updated_since"),
    ({"updated_since": "2025-01-01T00:00:00"}, "updated_since"),
    ({"updated_since": "2025-13-01T00:00:00Z"}, "updated_since"),
    ({"updated_since": "0001-01-01T00:00:00+14:00"}, "updated_since"),
    ({"updated_since": "9999-12-31T23:59:59-14:00"}, "updated_since"),
    ({"cursor": forged("0001-01-01T00:00:00+14:00", str(uuid.uuid4()), None, None, "2025-01-01T00:00:00Z", False)},
     "cursor"),
    ({"cursor": forged("2025-01-01T00:00:00Z", str(uuid.uuid4()), None, None, "9999-12-31T23:59:59-14:00", False)},
     "cursor"),
    ({"cursor": forged("2025-01-01T00:00:00", str(uuid.uuid4()), None, None, "2025-01-01T00:00:00Z", False)},
     "cursor"),
    ({"cursor": forged("com.x/a", str(uuid.uuid4()), None, None, None)}, "cursor"),
    ({"include_deleted": "maybe"}, "include_deleted"),
    ({"version": "1.0\u0000"}, "version"),
    ({"search": "nul\u0000"}, "search"),
])
def test_bad_parameters_are_422(client: httpx.Client, params: dict[str, str], field: str) -> None:
    response = client.get("/v0.1/servers", params=params)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["query", field]
    assert_cors(response)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", [
    "/v0.1/servers/com.x%00%2Fa/versions",
    "/v0.1/servers/com.x%00%2Fa/versions/latest",
    "/v0.1/servers/com.x%2Fa/versions/1.0%00",
    "/v0.1/servers/no-slash/versions/latest",
    f"/v0.1/servers/com.x%2F{'a' * 200}/versions/latest",
    "/v0.1/servers/com.x%2F%ED%A0%80/versions/latest",
])
def test_names_and_versions_that_cannot_exist_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert_problem(response, 404, "Server not found.")
    assert_cors(response)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00Z", "0001-01-01T14:00:00+14:00", "9999-12-31T09:59:59-14:00"])
def test_the_earliest_and_latest_times_with_a_utc_form_are_accepted(client: httpx.Client, since: str) -> None:
    assert servers(client, updated_since=since, search=new_marker())["servers"] == []


def test_an_empty_query_value_is_absent(client: httpx.Client, user: Caller, admin: Caller) -> None:
    marker = new_marker()
    approve(client, user, admin, server_name=f"com.{marker}/empty")
    assert names(servers(client, search=marker)) == [f"com.{marker}/empty"]
    empty = client.get(f"/v0.1/servers?search={marker}&limit=&version=&updated_since=&cursor=&include_deleted=")
    assert empty.status_code == 200, empty.text
    assert names(empty.json()) == [f"com.{marker}/empty"]
    detail = client.get(f"/v0.1/servers/com.{marker}/empty/versions/latest?include_deleted=")
    assert detail.status_code == 200, detail.text


def test_a_search_longer_than_any_name_is_an_empty_page(client: httpx.Client) -> None:
    assert servers(client, search="s" * 201) == {"servers": [], "metadata": {"count": 0}}
    assert servers(client, search="s" * 5000) == {"servers": [], "metadata": {"count": 0}}


def test_cursors_are_url_safe_as_they_are_returned(client: httpx.Client, sql: Sql) -> None:
    marker = new_marker()
    insert_approved(sql, marker, 6)
    # VS Code appends nextCursor to its URL as it is, without encoding it.
    search = f"{marker}/s-0"
    seen: list[str] = []
    page = servers(client, search=search, limit=1, version="latest")
    while True:
        seen += names(page)
        cursor = page["metadata"].get("nextCursor")
        if cursor is None:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
        response = client.get(f"/v0.1/servers?limit=1&version=latest&cursor={cursor}")
        assert response.status_code == 200, response.text
        page = response.json()
    assert seen == [f"com.{marker}/s-{index:04d}" for index in range(1, 7)]


def test_include_deleted_lists_deleted_servers_on_every_operation(
    client: httpx.Client, sql: Sql, user: Caller, admin: Caller
) -> None:
    marker = new_marker()
    kept = approve(client, user, admin, server_name=f"com.{marker}/b-kept")
    gone = approve(client, user, admin, server_name=f"com.{marker}/a-gone", version="1.2.0")
    submit(client, user, server_name=f"com.{marker}/c-never-approved")
    assert client.delete(f"/registrations/{gone['registration_id']}", headers=admin.headers).status_code == 204

    def entries(page: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(entry["server"]["name"], entry["_meta"][OFFICIAL]["status"]) for entry in page["servers"]]

    assert entries(servers(client, search=marker)) == [(kept["server_name"], "active")]
    assert entries(servers(client, search=marker, include_deleted="false")) == [(kept["server_name"], "active")]
    everything = [(gone["server_name"], "deleted"), (kept["server_name"], "active")]
    assert entries(servers(client, search=marker, include_deleted="true")) == everything
    first = servers(client, search=marker, include_deleted="true", limit=1)
    # The cursor carries include_deleted, as it does the other filters.
    second = servers(client, cursor=first["metadata"]["nextCursor"], limit=1)
    assert entries(first) + entries(second) == everything
    mismatch = client.get("/v0.1/servers", params={"cursor": first["metadata"]["nextCursor"],
                                                   "include_deleted": "false"})
    assert "different include_deleted" in assert_problem(mismatch, 422)["detail"]
    # With updated_since it is implied, whatever is sent.
    since = gone["approved_at"]
    for sent in ({}, {"include_deleted": "false"}):
        assert (gone["server_name"], "deleted") in entries(servers(client, search=marker, updated_since=since, **sent))

    name = gone["server_name"]
    assert_problem(client.get(version_path(name)), 404, "Server not found.")
    assert_problem(client.get(f"/v0.1/servers/{name}/versions"), 404, "Server not found.")
    for path in (f"/v0.1/servers/{name}/versions/latest", f"/v0.1/servers/{name}/versions/1.2.0"):
        detail = client.get(path, params={"include_deleted": "true"})
        assert detail.status_code == 200, detail.text
        RESPONSE.validate(detail.json())
        assert (detail.json()["server"]["version"], detail.json()["_meta"][OFFICIAL]["status"]) == ("1.2.0", "deleted")
    listed = client.get(f"/v0.1/servers/{name}/versions", params={"include_deleted": "True"})
    assert listed.status_code == 200, listed.text
    assert entries(listed.json()) == [(name, "deleted")]
    assert_problem(client.get(f"/v0.1/servers/{name}/versions", params={"include_deleted": "maybe"}), 422)
    # A live server is listed first; a departed one under the same name and another version follows.
    again = approve(client, user, admin, server_name=name, version="2.0.0")
    both = client.get(f"/v0.1/servers/{name}/versions", params={"include_deleted": "true"}).json()
    assert [(entry["server"]["version"], entry["_meta"][OFFICIAL]["status"]) for entry in both["servers"]] == [
        ("2.0.0", "active"), ("1.2.0", "deleted")]
    assert server(client, name) == server(client, name, "2.0.0")
    assert again["server_name"] == name


def test_the_app_itself_reads_an_empty_query_value_as_absent() -> None:
    # Under a host that passes `?limit=&version=` on (the Functions host drops them), the answer is the same.
    request = func.HttpRequest(method="GET", url="/api/v0.1/servers", body=b"",
                               params={"limit": "", "version": "", "updated_since": "", "search": "", "cursor": ""})
    assert parse_query(request, FeedQuery) == FeedQuery()


def test_undecodable_query_text_is_no_server_error(client: httpx.Client) -> None:
    response = client.get("/v0.1/servers?search=%ED%A0%80%FF&version=%FF")
    assert response.status_code == 200, response.text
    assert response.json()["servers"] == []


def test_a_cursor_belongs_to_its_listing(client: httpx.Client, user: Caller, admin: Caller) -> None:
    marker = new_marker()
    for index in range(2):
        approve(client, user, admin, server_name=f"com.{marker}/s-{index}")
    cursor = servers(client, search=marker, limit=1)["metadata"]["nextCursor"]
    response = client.get("/v0.1/servers", params={"cursor": cursor, "search": "something else"})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["query", "cursor"]
    assert "different search" in problem["detail"]


def test_entra_mode_requires_a_signed_in_user(
    database_url: str, authority: DevAuthority, host_factory: Callable[[Mapping[str, str]], RunningHost],
    user: Caller,
) -> None:
    host = host_factory(app_environment(database_url, authority, REGISTRY_FEED_AUTH="entra"))
    with httpx.Client(base_url=host.base_url, timeout=30) as entra:
        anonymous = entra.get("/v0.1/servers", params={"limit": 1})
        assert_problem(anonymous, 401)
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert_cors(anonymous)
        bad = entra.get(version_path("com.example/x"), headers={"Authorization": "Bearer not.a.jwt"})
        assert_problem(bad, 401)
        preflight = entra.options("/v0.1/servers", headers={"Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204
        assert_cors(preflight)
        signed_in = entra.get("/v0.1/servers", params={"limit": 1}, headers=user.headers)
        assert signed_in.status_code == 200, signed_in.text
        LIST.validate(signed_in.json())
        assert signed_in.headers["Cache-Control"] == "private, max-age=60"
