"""Registrations through the dev host over real HTTP, checked against the database rows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.registry import assert_problem, body, decide, submit, unique_host
from tests.support import Caller, Sql

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_answers_201_with_location_and_writes_row_and_audit(
    client: httpx.Client, user: Caller, sql: Sql
) -> None:
    host = unique_host()
    response = client.post("/registrations", headers=user.headers, json={
        "endpoint_url": f"HTTPS://{host.upper()}:443/Weather/",
        "endpoint_name": "  Weather Tools  ",
        "owner_contact": "weather@contoso.com",
        "available_tools": [" forecast ", "alerts"],
    })
    assert response.status_code == 201, response.text
    created = response.json()
    registration_id = created["registration_id"]
    assert response.headers["Location"] == f"{str(client.base_url).rstrip('/')}/registrations/{registration_id}"
    submitter_id = sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", user.oid)
    labels = ".".join(reversed(host.split(".")))
    assert created == {
        "registration_id": registration_id,
        "endpoint_url": f"https://{host}/Weather/",
        "endpoint_name": "Weather Tools",
        "description": None,
        "owner_contact": "weather@contoso.com",
        "available_tools": ["forecast", "alerts"],
        "status": "Pending",
        "submitter_id": str(submitter_id),
        "approver_id": None,
        "approved_at": None,
        "status_reason": None,
        "server_name": f"{labels}/weather-tools",
        "transport": "streamable-http",
        "version": "1.0.0",
        "created_at": created["created_at"],
        "updated_at": created["updated_at"],
        "revision": 1,
        "published_revision": None,
        "published_version": None,
        "publication": None,
        "publication_message": None,
        "attestation": None,
    }
    assert response.headers["ETag"] == '"1"'
    assert RFC3339_UTC.match(created["created_at"])
    assert RFC3339_UTC.match(created["updated_at"])
    row = sql.fetchrow("SELECT * FROM registrations WHERE registration_id = $1", uuid.UUID(registration_id))
    assert row is not None
    assert (row["endpoint_url"], row["status"], row["deleted_at"]) == (f"https://{host}/Weather/", "Pending", None)
    entries = sql.fetch("SELECT action, previous_status, new_status, user_id, revision FROM audit_log "
                        "WHERE registration_id = $1", uuid.UUID(registration_id))
    assert [tuple(entry) for entry in entries] == [("Created", None, "Pending", submitter_id, 1)]


def test_server_name_clash_takes_the_next_suffix(client: httpx.Client, user: Caller) -> None:
    host = unique_host()
    first = submit(client, user, endpoint_url=f"https://{host}/a", endpoint_name="Same Name")
    second = submit(client, user, endpoint_url=f"https://{host}/b", endpoint_name="Same Name")
    third = submit(client, user, endpoint_url=f"https://{host}/c", endpoint_name="Same Name")
    base = ".".join(reversed(host.split("."))) + "/same-name"
    assert [first["server_name"], second["server_name"], third["server_name"]] == [base, f"{base}-2", f"{base}-3"]


def test_explicit_fields_are_kept(client: httpx.Client, user: Caller) -> None:
    name = f"com.example/{uuid.uuid4().hex[:8]}"
    created = submit(client, user, server_name=name, transport="sse", version="2.1.0-beta", description=" d ")
    assert (created["server_name"], created["transport"], created["version"], created["description"]) == (
        name, "sse", "2.1.0-beta", "d")


@pytest.mark.parametrize(("field", "value"), [
    ("endpoint_url", "ftp://example.com/x"),
    ("endpoint_url", "/relative/path"),
    ("endpoint_url", "https://user:pw@example.com/x"),
    ("endpoint_url", "https://example.com/x#frag"),
    ("endpoint_url", "https://example.com/" + "a" * 2040),
    ("endpoint_url", "https://exa mple.com/"),
    ("endpoint_url", "https://example.com:99999/"),
    ("endpoint_url", 42),
    ("endpoint_name", "  ab  "),
    ("endpoint_name", "x" * 201),
    ("endpoint_name", "bad\x07name"),
    ("description", "d" * 2001),
    ("owner_contact", "not-an-email"),
    ("owner_contact", "a@" + "b" * 250 + ".com"),
    ("available_tools", ["a", "a"]),
    ("available_tools", ["  "]),
    ("available_tools", ["t" * 129]),
    ("available_tools", [f"t{i}" for i in range(101)]),
    ("available_tools", "alpha"),
    ("available_tools", [1]),
    ("server_name", "no-slash"),
    ("server_name", "bad name/x"),
    ("server_name", "a/" + "b" * 199),
    ("transport", "stdio"),
    ("version", "latest"),
    ("version", ""),
    ("version", "v" * 256),
    ("surprise", "field"),
])
def test_create_refuses_invalid_fields_with_422(
    client: httpx.Client, user: Caller, field: str, value: Any
) -> None:
    response = client.post("/registrations", json=body(**{field: value}), headers=user.headers)
    problem = assert_problem(response, 422)
    assert problem["errors"], problem
    assert problem["errors"][0]["loc"][:2] == ["body", field]
    assert set(problem["errors"][0]) == {"loc", "msg", "type"}


@pytest.mark.parametrize("missing", ["endpoint_url", "endpoint_name", "owner_contact"])
def test_create_requires_fields(client: httpx.Client, user: Caller, missing: str) -> None:
    fields = body()
    del fields[missing]
    problem = assert_problem(client.post("/registrations", json=fields, headers=user.headers), 422)
    assert problem["errors"][0]["loc"] == ["body", missing]
    assert problem["errors"][0]["type"] == "missing"


def test_body_errors_400_413_415(client: httpx.Client, user: Caller) -> None:
    json_headers = {**user.headers, "Content-Type": "application/json"}
    assert_problem(client.post("/registrations", content=b"{not json", headers=json_headers), 400,
                   "The request body is not valid JSON.")
    assert_problem(client.post("/registrations", content=b"", headers=json_headers), 400,
                   "The request body is not valid JSON.")
    assert_problem(client.post("/registrations", content=b"[1, 2]", headers=json_headers), 400,
                   "The request body must be a JSON object.")
    assert_problem(client.post("/registrations", content=b"\xff\xfe", headers=json_headers), 400,
                   "The request body is not valid JSON.")
    lone_surrogate = b'{"endpoint_url": "https://a.example.com", "endpoint_name": "x\\ud800yz"}'
    assert_problem(client.post("/registrations", content=lone_surrogate, headers=json_headers), 400,
                   "The request body is not valid JSON.")
    assert_problem(client.post("/registrations", content=b"[" * 50_000, headers=json_headers), 400,
                   "The request body is not valid JSON.")
    big = body(description="x" * (70 * 1024))
    assert_problem(client.post("/registrations", json=big, headers=user.headers), 413,
                   "The request body must not exceed 65536 bytes.")
    plain = {**user.headers, "Content-Type": "text/plain"}
    assert_problem(client.post("/registrations", content=b"{}", headers=plain), 415,
                   "The request body must be sent as application/json.")


def test_requests_without_a_token_are_401(client: httpx.Client) -> None:
    response = client.post("/registrations", json=body())
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.get("/registrations", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("variant", [
    "https://{host}/mcp", "HTTPS://{HOST}/mcp", "https://{host}/mcp/", "https://{host}:443/mcp",
])
def test_duplicate_endpoint_url_is_409_naming_the_field(
    client: httpx.Client, user: Caller, other_user: Caller, variant: str
) -> None:
    host = unique_host()
    submit(client, user, endpoint_url=f"https://{host}/mcp")
    response = client.post("/registrations", headers=other_user.headers,
                           json=body(endpoint_url=variant.format(host=host, HOST=host.upper())))
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")


def test_duplicate_server_name_is_409(client: httpx.Client, user: Caller) -> None:
    name = f"com.example/{uuid.uuid4().hex[:8]}"
    submit(client, user, server_name=name)
    response = client.post("/registrations", json=body(server_name=name), headers=user.headers)
    assert_problem(response, 409, "A registration with this server_name already exists.")


def test_visibility_by_id(client: httpx.Client, user: Caller, other_user: Caller, admin: Caller) -> None:
    pending = submit(client, user)
    approved = submit(client, user)
    rejected = submit(client, user)
    decide(client, admin, approved["registration_id"], "Approved")
    decide(client, admin, rejected["registration_id"], "Rejected", "no")
    for registration in (pending, approved, rejected):
        path = f"/registrations/{registration['registration_id']}"
        assert client.get(path, headers=user.headers).status_code == 200
        assert client.get(path, headers=admin.headers).status_code == 200
    assert client.get(f"/registrations/{approved['registration_id']}", headers=other_user.headers).json()[
        "status"] == "Approved"
    for hidden in (pending, rejected):
        assert_problem(client.get(f"/registrations/{hidden['registration_id']}", headers=other_user.headers), 404,
                       "Registration not found.")
    assert_problem(client.get(f"/registrations/{uuid.uuid4()}", headers=admin.headers), 404)


def test_non_guid_ids_do_not_reach_the_handler(client: httpx.Client, user: Caller) -> None:
    assert client.get("/registrations/not-a-guid", headers=user.headers).status_code == 404
    assert client.get("/registrations/my", headers=user.headers).status_code == 200


def test_every_guid_form_the_host_routes_finds_the_registration(client: httpx.Client, user: Caller) -> None:
    registration_id = submit(client, user)["registration_id"]
    fields = uuid.UUID(registration_id).hex
    bytes_part = ",".join(f"0x{fields[i:i + 2]}" for i in range(16, 32, 2))
    hex_fields = f"{{0x{fields[:8]},0x{fields[8:12]},0x{fields[12:16]},{{{bytes_part}}}}}"
    for spelled in (fields, "{" + registration_id + "}", "(" + registration_id.upper() + ")", hex_fields):
        response = client.get(f"/registrations/{quote(spelled, safe='{},()')}", headers=user.headers)
        assert response.status_code == 200, spelled
        assert response.json()["registration_id"] == registration_id


def test_lists_show_only_what_the_caller_may_see(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    marker = uuid.uuid4().hex[:12]
    mine_pending = submit(client, user, description=f"{marker} p")
    mine_approved = submit(client, user, description=f"{marker} a")
    mine_rejected = submit(client, user, description=f"{marker} r")
    decide(client, admin, mine_approved["registration_id"], "Approved")
    decide(client, admin, mine_rejected["registration_id"], "Rejected")
    theirs = submit(client, other_user, description=f"{marker} o")

    def ids(caller: Caller, path: str = "/registrations", **params: Any) -> list[str]:
        response = client.get(path, params={"search": marker, **params}, headers=caller.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["results"])
        return [item["registration_id"] for item in page["results"]]

    newest_first = [theirs, mine_rejected, mine_approved, mine_pending]
    assert ids(admin) == [r["registration_id"] for r in newest_first]
    assert ids(other_user) == [theirs["registration_id"], mine_approved["registration_id"]]
    assert ids(user) == [r["registration_id"] for r in newest_first[1:]]
    assert ids(other_user, submitter_id=mine_pending["submitter_id"]) == [mine_approved["registration_id"]]
    assert ids(other_user, status="Pending") == [theirs["registration_id"]]
    assert ids(other_user, status="Rejected") == []
    assert ids(admin, status="Rejected") == [mine_rejected["registration_id"]]
    assert ids(user, "/registrations/my") == [r["registration_id"] for r in newest_first[1:]]
    assert ids(other_user, "/registrations/my") == [theirs["registration_id"]]


@pytest.mark.parametrize("needle", ["100%", "a_b", "it's", 'say "hi"', "back\\slash", "Zürich", "日本語", "ÜBER"])
def test_search_is_a_literal_case_insensitive_substring(
    client: httpx.Client, admin: Caller, user: Caller, needle: str
) -> None:
    marker = uuid.uuid4().hex[:8]
    target = submit(client, user, description=f"{marker} before {needle} after")
    # Near misses: what a wildcard or a shorter match would wrongly find.
    wildcard_matches = needle.replace("%", "x").replace("_", "y")
    for decoy in {wildcard_matches, needle[:-1] + " after"} - {needle}:
        submit(client, user, description=f"{marker} before {decoy}")
    response = client.get("/registrations", params={"search": f"{marker} before {needle.lower()}"},
                          headers=admin.headers)
    assert response.status_code == 200
    assert [item["registration_id"] for item in response.json()["results"]] == [target["registration_id"]]


def test_search_matches_each_field(client: httpx.Client, user: Caller) -> None:
    marker = uuid.uuid4().hex[:10]
    by_name = submit(client, user, endpoint_name=f"Name {marker}")
    by_contact = submit(client, user, owner_contact=f"{marker}@example.com")
    by_url = submit(client, user, endpoint_url=f"https://{marker}.example.com/x")
    by_description = submit(client, user, description=f"about {marker.upper()}")
    response = client.get("/registrations/my", params={"search": marker}, headers=user.headers)
    found = {item["registration_id"] for item in response.json()["results"]}
    assert found == {r["registration_id"] for r in (by_name, by_contact, by_url, by_description)}


def test_paging_is_stable_and_complete(client: httpx.Client, make_caller: Callable[..., Caller]) -> None:
    owner = make_caller()
    created = [submit(client, owner)["registration_id"] for _ in range(23)]
    seen: list[str] = []
    for offset in range(0, 30, 5):
        page = client.get("/registrations/my", params={"limit": 5, "offset": offset}, headers=owner.headers).json()
        assert (page["total"], page["limit"], page["offset"]) == (23, 5, offset)
        seen += [item["registration_id"] for item in page["results"]]
    assert seen == list(reversed(created))
    beyond = client.get("/registrations/my", params={"offset": 1000}, headers=owner.headers).json()
    assert beyond == {"total": 23, "limit": 20, "offset": 1000, "results": []}


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"offset": "-1"}, {"offset": "99999999999"},
    {"status": "Deleted"}, {"submitter_id": "nope"}, {"search": "s" * 201}, {"search": "tab\x01"},
])
def test_bad_list_queries_are_422(client: httpx.Client, user: Caller, params: dict[str, str]) -> None:
    problem = assert_problem(client.get("/registrations", params=params, headers=user.headers), 422)
    assert problem["errors"][0]["loc"][:2] == ["query", next(iter(params))]


def test_submitter_edit_returns_registration_to_pending(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user)
    registration_id = created["registration_id"]
    decide(client, admin, registration_id, "Approved", "fine")
    response = client.patch(f"/registrations/{registration_id}", headers=user.headers,
                            json={"endpoint_name": "Renamed Tools", "description": None})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["endpoint_name"], updated["description"], updated["status"]) == ("Renamed Tools", None, "Pending")
    assert (updated["approver_id"], updated["approved_at"], updated["status_reason"]) == (None, None, None)
    assert updated["endpoint_url"] == created["endpoint_url"]
    assert (updated["revision"], updated["published_revision"], response.headers["ETag"]) == (2, 1, '"2"')
    entries = sql.fetch("SELECT action, previous_status, new_status, revision, metadata FROM audit_log "
                        "WHERE registration_id = $1 ORDER BY log_id", uuid.UUID(registration_id))
    decided = {"endpoint_url": created["endpoint_url"], "server_name": created["server_name"], "version": "1.0.0"}
    assert [tuple(entry) for entry in entries] == [
        ("Created", None, "Pending", 1,
         {"endpoint_url": created["endpoint_url"], "server_name": created["server_name"]}),
        ("Approved", "Pending", "Approved", 1, {**decided, "reason": "fine"}),
        ("Updated", "Approved", "Pending", 2, {"changes": {
            "description": {"old": "Example tools for tests.", "new": None},
            "endpoint_name": {"old": created["endpoint_name"], "new": "Renamed Tools"},
        }}),
    ]


def test_admin_edit_is_a_pending_revision_too(client: httpx.Client, user: Caller, admin: Caller) -> None:
    created = submit(client, user)
    decide(client, admin, created["registration_id"], "Approved")
    response = client.patch(f"/registrations/{created['registration_id']}", headers=admin.headers,
                            json={"available_tools": ["gamma"]})
    assert response.status_code == 200
    edited = response.json()
    assert (edited["status"], edited["available_tools"], edited["revision"]) == ("Pending", ["gamma"], 2)
    assert (edited["published_revision"], edited["publication"]) == (1, "active")


def test_edit_rules(client: httpx.Client, user: Caller, other_user: Caller, admin: Caller) -> None:
    pending = submit(client, user)
    approved = submit(client, user)
    decide(client, admin, approved["registration_id"], "Approved")
    change = {"endpoint_name": "Not Yours"}
    assert_problem(client.patch(f"/registrations/{pending['registration_id']}", json=change,
                                headers=other_user.headers), 404)
    assert_problem(client.patch(f"/registrations/{approved['registration_id']}", json=change,
                                headers=other_user.headers), 403)
    assert_problem(client.patch(f"/registrations/{uuid.uuid4()}", json=change, headers=admin.headers), 404)
    assert_problem(client.patch(f"/registrations/{pending['registration_id']}", json={},
                                headers=user.headers), 422)
    assert_problem(client.patch(f"/registrations/{pending['registration_id']}", json={"status": "Approved"},
                                headers=user.headers), 422)
    assert_problem(client.patch(f"/registrations/{pending['registration_id']}", json={"endpoint_name": None},
                                headers=user.headers), 422)
    namespace = approved["server_name"].split("/")[0]
    response = client.patch(f"/registrations/{pending['registration_id']}", headers=user.headers,
                            json={"endpoint_url": approved["endpoint_url"] + "/", "server_name": f"{namespace}/moved"})
    assert_problem(response, 409, "A registration with this endpoint_url already exists.")


def test_decisions(client: httpx.Client, user: Caller, admin: Caller, sql: Sql) -> None:
    created = submit(client, user)
    path = f"/registrations/{created['registration_id']}/status"
    assert_problem(client.patch(path, json={"status": "Approved"}, headers=user.headers), 403)
    assert_problem(client.patch(path, json={"status": "Pending"}, headers=admin.headers), 422)
    assert_problem(client.patch(path, json={"status": "Rejected", "reason": "r" * 1001}, headers=admin.headers), 422)
    assert_problem(client.patch(path, json={"status": "Rejected", "reason": "nul\x00"}, headers=admin.headers), 422)
    assert_problem(client.patch(f"/registrations/{uuid.uuid4()}/status", json={"status": "Approved"},
                                headers=admin.headers), 404)
    decided = decide(client, admin, created["registration_id"], "Rejected", "Plain HTTP")
    admin_id = sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", admin.oid)
    assert (decided["status"], decided["approver_id"], decided["status_reason"]) == (
        "Rejected", str(admin_id), "Plain HTTP")
    assert RFC3339_UTC.match(decided["approved_at"])
    assert_problem(client.patch(path, json={"status": "Approved"}, headers=admin.headers), 409)


def test_delete_hides_everywhere_frees_the_url_and_keeps_the_trail(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user)
    registration_id = created["registration_id"]
    assert_problem(client.delete(f"/registrations/{registration_id}", headers=user.headers), 403)
    response = client.delete(f"/registrations/{registration_id}", headers=admin.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert_problem(client.delete(f"/registrations/{registration_id}", headers=admin.headers), 404)
    assert_problem(client.get(f"/registrations/{registration_id}", headers=admin.headers), 404)
    assert_problem(client.patch(f"/registrations/{registration_id}", json={"endpoint_name": "Again"},
                                headers=admin.headers), 404)
    assert_problem(client.patch(f"/registrations/{registration_id}/status", json={"status": "Approved"},
                                headers=admin.headers), 404)
    listed = client.get("/registrations/my", headers=user.headers).json()["results"]
    assert registration_id not in [item["registration_id"] for item in listed]
    again = submit(client, user, endpoint_url=created["endpoint_url"], server_name=created["server_name"])
    assert again["registration_id"] != registration_id
    trail = client.get(f"/registrations/{registration_id}/audit", headers=user.headers)
    assert trail.status_code == 200
    assert [entry["action"] for entry in trail.json()["results"]] == ["Created", "Deleted"]
    assert sql.fetchval("SELECT deleted_at IS NOT NULL FROM registrations WHERE registration_id = $1",
                        uuid.UUID(registration_id)) is True


def test_audit_trail_access(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller, sql: Sql
) -> None:
    pending = submit(client, user)
    approved = submit(client, user)
    decide(client, admin, approved["registration_id"], "Approved", "ok")
    response = client.get(f"/registrations/{approved['registration_id']}/audit", headers=admin.headers)
    assert response.status_code == 200
    entries = response.json()["results"]
    admin_id = sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", admin.oid)
    assert [(e["action"], e["previous_status"], e["new_status"]) for e in entries] == [
        ("Created", None, "Pending"), ("Approved", "Pending", "Approved")]
    assert entries[1]["user_id"] == str(admin_id)
    assert entries[1]["metadata"] == {"endpoint_url": approved["endpoint_url"], "server_name": approved["server_name"],
                                      "version": "1.0.0", "reason": "ok"}
    assert [entry["revision"] for entry in entries] == [1, 1]
    assert entries[0]["log_id"] < entries[1]["log_id"]
    assert all(RFC3339_UTC.match(entry["timestamp"]) for entry in entries)
    assert client.get(f"/registrations/{pending['registration_id']}/audit", headers=user.headers).status_code == 200
    assert_problem(client.get(f"/registrations/{pending['registration_id']}/audit", headers=other_user.headers), 404)
    assert_problem(client.get(f"/registrations/{approved['registration_id']}/audit", headers=other_user.headers), 403)
    assert_problem(client.get(f"/registrations/{uuid.uuid4()}/audit", headers=admin.headers), 404)


def test_total_is_counted_up_to_ten_thousand(client: httpx.Client, make_caller: Callable[..., Caller], sql: Sql
                                             ) -> None:
    prolific = make_caller()
    first = submit(client, prolific)
    sql.execute(
        """INSERT INTO registrations (endpoint_url, endpoint_name, owner_contact, submitter_id, server_name)
           SELECT 'https://bulk-' || $2 || '.example.com/' || n, 'Bulk ' || n, 'bulk@example.com', $1,
                  'com.example.bulk-' || $2 || '/s-' || n
           FROM generate_series(1, 10000) AS n""",
        uuid.UUID(first["submitter_id"]), uuid.uuid4().hex[:8],
    )
    capped = client.get("/registrations/my", params={"limit": 1}, headers=prolific.headers).json()
    assert (capped["total"], capped["total_exact"], len(capped["results"])) == (10_000, False, 1)
    sql.execute("UPDATE registrations SET deleted_at = now() WHERE submitter_id = $1 AND endpoint_name LIKE 'Bulk %'",
                uuid.UUID(first["submitter_id"]))
    exact = client.get("/registrations/my", headers=prolific.headers).json()
    assert exact == {"total": 1, "limit": 20, "offset": 0, "results": [exact["results"][0]]}
    assert exact["results"][0]["registration_id"] == first["registration_id"]
