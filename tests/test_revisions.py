"""Revisions through the dev host: what an administrator approved is exactly what clients get,
and an edit never takes a live server away (API.md, *Revisions*)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.registry import assert_problem, decide, submit, unique_host
from tests.support import Caller, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

OFFICIAL = "io.modelcontextprotocol.registry/official"


def latest(client: httpx.Client, name: str) -> httpx.Response:
    """VS Code's lookup of one server."""
    return client.get(f"/v0.1/servers/{quote(name, safe='')}/versions/latest")


def feed_description(client: httpx.Client, name: str) -> str:
    response = latest(client, name)
    assert response.status_code == 200, response.text
    description: str = response.json()["server"]["description"]
    return description


def edit(client: httpx.Client, caller: Caller, registration_id: str, if_match: str | None = None,
         **changes: Any) -> httpx.Response:
    headers = {**caller.headers, **({} if if_match is None else {"If-Match": if_match})}
    return client.patch(f"/registrations/{registration_id}", json=changes, headers=headers)


def status(client: httpx.Client, caller: Caller, registration_id: str, decision: str = "Approved",
           if_match: str | None = None, **body: Any) -> httpx.Response:
    headers = {**caller.headers, **({} if if_match is None else {"If-Match": if_match})}
    return client.patch(f"/registrations/{registration_id}/status", json={"status": decision, **body},
                        headers=headers)


def audit(sql: Sql, registration_id: str) -> list[tuple[str, int]]:
    rows = sql.fetch("SELECT action, revision FROM audit_log WHERE registration_id = $1 ORDER BY log_id",
                     uuid.UUID(registration_id))
    return [(row["action"], row["revision"]) for row in rows]


@pytest.fixture
def second_admin(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller(admin=True)


def test_a_stale_approval_is_412_and_publishes_nothing(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user, description="Reviewed text.")
    registration_id = created["registration_id"]
    reviewed = client.get(f"/registrations/{registration_id}", headers=admin.headers)
    assert reviewed.headers["ETag"] == '"1"'
    swapped = edit(client, user, registration_id, endpoint_url=created["endpoint_url"] + "/swapped")
    assert (swapped.status_code, swapped.json()["revision"], swapped.headers["ETag"]) == (200, 2, '"2"')

    problem = assert_problem(status(client, admin, registration_id, if_match=reviewed.headers["ETag"]), 412)
    assert "newer revision" in problem["detail"]
    assert_problem(status(client, admin, registration_id, revision=1), 412)
    assert_problem(status(client, admin, registration_id, if_match='"2"', revision=1), 412)
    assert_problem(status(client, admin, registration_id, if_match='"two"'), 412)
    assert_problem(status(client, admin, registration_id, if_match='W/"2"'), 412)
    assert_problem(status(client, admin, registration_id, revision=0), 422)

    row = sql.fetchrow("SELECT status, revision, published_revision, publication FROM registrations "
                       "WHERE registration_id = $1", uuid.UUID(registration_id))
    assert row is not None
    assert tuple(row) == ("Pending", 2, None, None)
    revisions = sql.fetch("SELECT revision, status, decided_by FROM registration_revisions "
                          "WHERE registration_id = $1 ORDER BY revision", uuid.UUID(registration_id))
    assert [tuple(revision) for revision in revisions] == [(1, "Superseded", None), (2, "Pending", None)]
    assert audit(sql, registration_id) == [("Created", 1), ("Updated", 2)]
    assert latest(client, created["server_name"]).status_code == 404

    # Reviewed again, the decision names what was seen.
    approved = status(client, admin, registration_id, if_match='"2"')
    assert (approved.status_code, approved.json()["published_revision"], approved.headers["ETag"]) == (200, 2, '"2"')
    assert latest(client, created["server_name"]).json()["server"]["remotes"][0]["url"] == swapped.json()[
        "endpoint_url"]
    assert_problem(status(client, admin, registration_id, if_match='"2"'), 409)


def test_a_typo_fix_keeps_the_approved_server_live_throughout(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user, description="Forecasts for any ctiy.")
    approved = decide(client, admin, created["registration_id"], "Approved")
    name = approved["server_name"]
    assert feed_description(client, name) == "Forecasts for any ctiy."

    fixed = edit(client, user, created["registration_id"], if_match='"1"', description="Forecasts for any city.")
    assert fixed.status_code == 200
    assert (fixed.json()["status"], fixed.json()["revision"], fixed.json()["published_revision"],
            fixed.json()["published_version"], fixed.json()["publication"]) == ("Pending", 2, 1, "1.0.0", "active")
    assert feed_description(client, name) == "Forecasts for any ctiy."
    listing = client.get("/v0.1/servers", params={"search": name}).json()
    assert [entry["server"]["description"] for entry in listing["servers"]] == ["Forecasts for any ctiy."]

    decide(client, admin, created["registration_id"], "Approved")
    assert feed_description(client, name) == "Forecasts for any city."
    entries = sql.fetch("SELECT action, revision, metadata FROM audit_log WHERE registration_id = $1 ORDER BY log_id",
                        uuid.UUID(created["registration_id"]))
    assert [(entry["action"], entry["revision"]) for entry in entries] == [
        ("Created", 1), ("Approved", 1), ("Updated", 2), ("Approved", 2)]
    assert entries[2]["metadata"] == {"changes": {"description": {"old": "Forecasts for any ctiy.",
                                                                  "new": "Forecasts for any city."}}}
    assert entries[3]["metadata"] == {"endpoint_url": created["endpoint_url"], "server_name": name,
                                      "version": "1.0.0"}


def test_a_rejected_edit_leaves_the_approved_revision_live(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    created = submit(client, user, description="Approved words.")
    decide(client, admin, created["registration_id"], "Approved")
    edit(client, user, created["registration_id"], description="Rejected words.", version="2.0.0")
    rejected = decide(client, admin, created["registration_id"], "Rejected", "No.")
    assert (rejected["status"], rejected["revision"], rejected["published_revision"], rejected["status_reason"]) == (
        "Rejected", 2, 1, "No.")
    assert feed_description(client, created["server_name"]) == "Approved words."
    public = client.get(f"/registrations/{created['registration_id']}", headers=other_user.headers).json()
    assert (public["status"], public["description"], public["version"], public["revision"]) == (
        "Approved", "Approved words.", "1.0.0", 1)
    # The latest revision was decided; an edit makes a new pending one.
    assert edit(client, user, created["registration_id"], description="Third try.").json()["revision"] == 3


def test_rollback_publishes_an_earlier_approved_revision(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user, version="1.0.0", description="First.")
    registration_id = created["registration_id"]
    decide(client, admin, registration_id, "Approved")
    edit(client, user, registration_id, version="2.0.0", description="Second.")
    decide(client, admin, registration_id, "Approved")
    edit(client, user, registration_id, description="Third, pending.")
    name = created["server_name"]

    versions = client.get(f"/v0.1/servers/{quote(name, safe='')}/versions").json()["servers"]
    assert [(entry["server"]["version"], entry["server"]["description"], entry["_meta"][OFFICIAL]["isLatest"])
            for entry in versions] == [("1.0.0", "First.", False), ("2.0.0", "Second.", True)]
    old = client.get(f"/v0.1/servers/{quote(name, safe='')}/versions/1.0.0")
    assert (old.status_code, old.json()["_meta"][OFFICIAL]["isLatest"]) == (200, False)

    publish = f"/registrations/{registration_id}/revisions"
    assert_problem(client.post(f"{publish}/1/publish", headers=user.headers), 403)
    assert_problem(client.post(f"{publish}/3/publish", headers=admin.headers), 409)
    assert_problem(client.post(f"{publish}/9/publish", headers=admin.headers), 404)
    assert_problem(client.post(f"/registrations/{uuid.uuid4()}/revisions/1/publish", headers=admin.headers), 404)
    rolled = client.post(f"{publish}/1/publish", headers=admin.headers)
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["revision"], rolled.json()["status"], rolled.json()["published_revision"],
            rolled.json()["published_version"]) == (3, "Pending", 1, "1.0.0")
    entry = latest(client, name).json()
    assert (entry["server"]["version"], entry["server"]["description"]) == ("1.0.0", "First.")
    versions = client.get(f"/v0.1/servers/{quote(name, safe='')}/versions").json()["servers"]
    assert [(e["server"]["version"], e["_meta"][OFFICIAL]["isLatest"]) for e in versions] == [
        ("1.0.0", True), ("2.0.0", False)]
    published = sql.fetchrow("SELECT action, revision, metadata FROM audit_log WHERE registration_id = $1 "
                             "AND action = 'Published'", uuid.UUID(registration_id))
    assert published is not None
    assert (published["revision"], published["metadata"]) == (1, {
        "endpoint_url": created["endpoint_url"], "server_name": name, "version": "1.0.0", "previous_revision": 2})


def test_deprecate_keeps_the_server_in_the_feed_with_its_message(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user)
    registration_id = created["registration_id"]
    path = f"/registrations/{registration_id}/publication"
    deprecate = {"publication": "deprecated", "message": "Use com.contoso/weather-v2 instead."}
    assert_problem(client.patch(path, json=deprecate, headers=admin.headers), 409)
    assert_problem(client.patch(path, json=deprecate, headers=user.headers), 403)
    decide(client, admin, registration_id, "Approved")
    assert_problem(client.patch(path, json={"publication": "gone"}, headers=admin.headers), 422)
    assert_problem(client.patch(path, json={**deprecate, "message": "m" * 501}, headers=admin.headers), 422)

    deprecated = client.patch(path, json=deprecate, headers=admin.headers)
    assert deprecated.status_code == 200, deprecated.text
    assert (deprecated.json()["publication"], deprecated.json()["publication_message"]) == (
        "deprecated", deprecate["message"])
    lookup = latest(client, created["server_name"])
    assert lookup.status_code == 200
    meta = lookup.json()["_meta"][OFFICIAL]
    assert (meta["status"], meta["statusMessage"], meta["isLatest"]) == ("deprecated", deprecate["message"], True)
    listed = client.get("/v0.1/servers", params={"search": created["server_name"]}).json()["servers"]
    assert [entry["_meta"][OFFICIAL]["status"] for entry in listed] == ["deprecated"]
    # Approving a later revision keeps a deprecated server deprecated.
    edit(client, user, registration_id, description="Still here.")
    assert decide(client, admin, registration_id, "Approved")["publication"] == "deprecated"

    reactivated = client.patch(path, json={"publication": "active"}, headers=admin.headers)
    assert (reactivated.json()["publication"], reactivated.json()["publication_message"]) == ("active", None)
    meta = latest(client, created["server_name"]).json()["_meta"][OFFICIAL]
    assert meta["status"] == "active"
    assert "statusMessage" not in meta
    assert audit(sql, registration_id)[-3:] == [("Updated", 2), ("Approved", 2), ("Reactivated", 2)]
    assert ("Deprecated", 1) in audit(sql, registration_id)


def test_others_never_see_pending_content(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    marker = f"rev{uuid.uuid4().hex[:10]}"
    secret = f"secret{uuid.uuid4().hex[:10]}"
    created = submit(client, user, endpoint_name=f"Public {marker}", description=f"Approved {marker}.")
    registration_id = created["registration_id"]
    approved = decide(client, admin, registration_id, "Approved")
    edited = edit(client, user, registration_id, endpoint_name=f"Hidden {secret}", description=f"Edit {secret}.",
                  version="9.9.9")
    assert edited.status_code == 200

    public = client.get(f"/registrations/{registration_id}", headers=other_user.headers)
    assert public.headers["ETag"] == '"1"'
    body = public.json()
    assert body == {**approved, "status": "Approved", "revision": 1}
    assert secret not in public.text

    def listed(caller: Caller, path: str = "/registrations", **params: str) -> dict[str, Any]:
        page: dict[str, Any] = client.get(path, params=params, headers=caller.headers).json()
        return page

    found = listed(other_user, search=marker)
    assert (found["total"], [item["registration_id"] for item in found["results"]]) == (1, [registration_id])
    assert found["results"][0] == body
    assert listed(other_user, search=secret) == {"total": 0, "limit": 20, "offset": 0, "results": []}
    assert listed(other_user, search=marker, status="Pending")["total"] == 0
    assert listed(other_user, search=marker, status="Approved")["total"] == 1
    assert secret not in str(listed(other_user, submitter_id=created["submitter_id"]))
    for caller in (user, admin):
        own = listed(caller, search=secret)
        assert [(item["revision"], item["status"]) for item in own["results"]] == [(2, "Pending")]
    assert listed(user, "/registrations/my", search=secret)["total"] == 1
    assert listed(user, search=marker)["total"] == 0, "the submitter's own search reads the latest revision"

    assert_problem(client.get(f"/registrations/{registration_id}/revisions", headers=other_user.headers), 403)
    assert_problem(client.get(f"/registrations/{registration_id}/revisions/2", headers=other_user.headers), 403)
    assert_problem(client.get(f"/registrations/{registration_id}/audit", headers=other_user.headers), 403)
    never_published = submit(client, user)
    for path in ("", "/revisions", "/revisions/1", "/audit"):
        assert_problem(client.get(f"/registrations/{never_published['registration_id']}{path}",
                                  headers=other_user.headers), 404)
    assert secret not in client.get("/v0.1/servers", params={"search": created["server_name"]}).text


def test_revisions_are_listed_for_the_submitter_and_administrators(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user, description="One.")
    registration_id = created["registration_id"]
    edit(client, user, registration_id, description="Two.")
    assert_problem(status(client, admin, registration_id, "Rejected", reason="Not yet."), 428)
    assert status(client, admin, registration_id, "Rejected", reason="Not yet.", revision=2).status_code == 200
    user_id = str(sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", user.oid))
    admin_id = str(sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", admin.oid))
    for caller in (user, admin):
        response = client.get(f"/registrations/{registration_id}/revisions", headers=caller.headers)
        assert response.status_code == 200
        results = response.json()["results"]
        assert [(r["revision"], r["description"], r["status"], r["submitted_by"], r["decided_by"], r["reason"])
                for r in results] == [
            (1, "One.", "Superseded", user_id, None, None), (2, "Two.", "Rejected", user_id, admin_id, "Not yet.")]
    one = client.get(f"/registrations/{registration_id}/revisions/2", headers=user.headers).json()
    assert one == results[1]
    assert set(one) == {"registration_id", "revision", "endpoint_url", "endpoint_name", "description",
                        "owner_contact", "available_tools", "server_name", "transport", "version", "status",
                        "submitted_by", "submitted_at", "decided_by", "decided_at", "reason"}
    for missing in ("3", "0", "99999999999"):
        assert_problem(client.get(f"/registrations/{registration_id}/revisions/{missing}", headers=user.headers),
                       404)
    assert_problem(client.get(f"/registrations/{uuid.uuid4()}/revisions", headers=admin.headers), 404)


def test_if_match_on_an_edit(client: httpx.Client, user: Caller, admin: Caller, sql: Sql) -> None:
    created = submit(client, user)
    registration_id = created["registration_id"]
    assert edit(client, user, registration_id, if_match='"1"', description="Second.").status_code == 200
    for stale in ('"1"', '"3"', "two", '"2", "3"'):
        assert_problem(edit(client, admin, registration_id, if_match=stale, description="Lost."), 412)
    assert edit(client, admin, registration_id, if_match="*", description="Third.").json()["revision"] == 3
    assert sql.fetchval("SELECT count(*) FROM registration_revisions WHERE registration_id = $1",
                        uuid.UUID(registration_id)) == 3
    assert audit(sql, registration_id) == [("Created", 1), ("Updated", 2), ("Updated", 3)]


def test_updated_entries_cut_each_value(client: httpx.Client, user: Caller, sql: Sql) -> None:
    created = submit(client, user, description="d" * 2000)
    tools = [f"tool-{index:03d}-{'t' * 100}" for index in range(20)]
    edit(client, user, created["registration_id"], description="e" * 2000, available_tools=tools)
    metadata = sql.fetchval("SELECT metadata FROM audit_log WHERE registration_id = $1 AND action = 'Updated'",
                            uuid.UUID(created["registration_id"]))
    changes = metadata["changes"]
    assert changes["description"] == {"old": "d" * 512, "new": "e" * 512}
    assert changes["available_tools"]["old"] == ["alpha", "beta"]
    assert isinstance(changes["available_tools"]["new"], str)
    assert len(changes["available_tools"]["new"]) == 512


def test_an_administrator_may_not_decide_their_own_revision(
    client: httpx.Client, user: Caller, admin: Caller, second_admin: Caller, sql: Sql
) -> None:
    own = submit(client, admin)
    problem = assert_problem(status(client, admin, own["registration_id"]), 403)
    assert "another administrator" in problem["detail"]
    assert decide(client, second_admin, own["registration_id"], "Approved")["status"] == "Approved"

    theirs = submit(client, user)
    decide(client, admin, theirs["registration_id"], "Approved")
    edit(client, admin, theirs["registration_id"], description="Changed by an administrator.")
    assert_problem(status(client, admin, theirs["registration_id"], "Rejected"), 403)
    assert sql.fetchval("SELECT status FROM registration_revisions WHERE registration_id = $1 AND revision = 2",
                        uuid.UUID(theirs["registration_id"])) == "Pending"
    assert decide(client, second_admin, theirs["registration_id"], "Approved")["published_revision"] == 2


def test_an_administrators_edit_rides_along_in_the_owners_next_one(
    client: httpx.Client, user: Caller, admin: Caller, second_admin: Caller, sql: Sql
) -> None:
    theirs = submit(client, user, description="The owner's words.")
    registration_id = theirs["registration_id"]
    decide(client, second_admin, registration_id, "Approved")
    moved = edit(client, admin, registration_id, endpoint_url=f"https://{unique_host()}/admins-own")
    assert moved.status_code == 200, moved.text
    # The owner's edit keeps the administrator's URL: revision 3 carries what the administrator wrote.
    again = edit(client, user, registration_id, if_match='"2"', description="The owner's next words.")
    assert (again.json()["revision"], again.json()["endpoint_url"]) == (3, moved.json()["endpoint_url"])
    for named in ({"if_match": '"3"'}, {"revision": 3}):
        problem = assert_problem(status(client, admin, registration_id, **named), 403)
        assert "another administrator" in problem["detail"]
    assert sql.fetchval("SELECT published_revision FROM registrations WHERE registration_id = $1",
                        uuid.UUID(registration_id)) == 1
    assert status(client, second_admin, registration_id, if_match='"3"').status_code == 200
    # Once published, what the administrator wrote has been reviewed by another: their next decision is theirs.
    edit(client, user, registration_id, description="A later edit.")
    assert status(client, admin, registration_id, if_match='"4"').json()["published_revision"] == 4
    assert audit(sql, registration_id)[-2:] == [("Updated", 4), ("Approved", 4)]


def test_an_unnamed_decision_is_taken_only_when_one_revision_awaits_since_the_last(
    client: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    created = submit(client, user, description="Reviewed.")
    registration_id = created["registration_id"]
    reviewed = client.get(f"/registrations/{registration_id}", headers=admin.headers).headers["ETag"]
    edit(client, user, registration_id, description="Swapped in after the review.")
    for decision in ("Approved", "Rejected"):
        problem = assert_problem(status(client, admin, registration_id, decision), 428)
        assert "send the ETag you reviewed as If-Match" in problem["detail"]
    assert status(client, admin, registration_id, if_match="*").status_code == 428
    row = sql.fetchrow("SELECT status, published_revision FROM registrations WHERE registration_id = $1",
                       uuid.UUID(registration_id))
    assert row is not None
    assert tuple(row) == ("Pending", None)
    assert audit(sql, registration_id) == [("Created", 1), ("Updated", 2)]
    assert_problem(status(client, admin, registration_id, if_match=reviewed), 412)
    assert status(client, admin, registration_id, if_match='"2"').status_code == 200

    # The frontend's call (no If-Match): one edit since the last decision is what the reviewer saw.
    edit(client, user, registration_id, description="One edit since.")
    assert decide(client, admin, registration_id, "Approved")["published_revision"] == 3
    # A rejection is a decision too: after it, one edit is again unambiguous, a second one is not.
    edit(client, user, registration_id, description="Rejected words.")
    decide(client, admin, registration_id, "Rejected")
    edit(client, user, registration_id, description="Fifth.")
    assert decide(client, admin, registration_id, "Approved")["published_revision"] == 5
    edit(client, user, registration_id, description="Sixth.")
    edit(client, user, registration_id, description="Seventh.")
    assert_problem(status(client, admin, registration_id), 428)
    assert status(client, admin, registration_id, revision=7).json()["published_revision"] == 7


@pytest.fixture(scope="module")
def strict_host(database_url: str, authority: DevAuthority,
                host_factory: Callable[[Mapping[str, str]], RunningHost]) -> RunningHost:
    return host_factory(app_environment(database_url, authority, MAX_PENDING_PER_USER="2",
                                        REVIEW_REQUIRE_MATCH="true"))


@pytest.fixture
def strict(strict_host: RunningHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict_host.base_url, timeout=30) as http_client:
        yield http_client


def test_a_decision_must_name_its_revision_where_required(strict: httpx.Client, user: Caller, admin: Caller) -> None:
    created = submit(strict, user)
    for if_match in (None, "*"):
        problem = assert_problem(status(strict, admin, created["registration_id"], if_match=if_match), 428)
        assert "If-Match" in problem["detail"]
    assert status(strict, admin, created["registration_id"], revision=1).status_code == 200


def test_too_many_pending_registrations_is_429(
    strict: httpx.Client, make_caller: Callable[..., Caller], admin: Caller, sql: Sql
) -> None:
    submitter = make_caller()
    first, second = submit(strict, submitter), submit(strict, submitter)
    refused = strict.post("/registrations", json={**_body(), "endpoint_name": "Third"}, headers=submitter.headers)
    assert_problem(refused, 429)
    assert refused.headers["Retry-After"] == "600"
    assert "2 registrations awaiting review" in refused.json()["detail"]
    # Editing one that already awaits review adds nothing to the queue.
    assert edit(strict, submitter, first["registration_id"], description="Still pending.").status_code == 200

    status(strict, admin, second["registration_id"], revision=1)
    third = submit(strict, submitter)
    # Now two await review again: an edit putting the approved one back into review is refused too.
    assert_problem(edit(strict, submitter, second["registration_id"], description="Back to review."), 429)
    assert sql.fetchval("SELECT revision FROM registrations WHERE registration_id = $1",
                        uuid.UUID(second["registration_id"])) == 1
    strict.delete(f"/registrations/{third['registration_id']}", headers=admin.headers)
    assert edit(strict, submitter, second["registration_id"], description="Back to review.").status_code == 200
    submitter_id = sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", submitter.oid)
    assert sql.fetchval("SELECT pending FROM review_queue WHERE submitter_id = $1", submitter_id) == 2


def _body() -> dict[str, Any]:
    host = unique_host()
    return {"endpoint_url": f"https://{host}/mcp", "endpoint_name": f"Tools {host[4:14]}",
            "owner_contact": "owner@example.com"}


@pytest.fixture(scope="module")
def self_approving(database_url: str, authority: DevAuthority,
                   host_factory: Callable[[Mapping[str, str]], RunningHost]) -> Iterator[httpx.Client]:
    host = host_factory(app_environment(database_url, authority, REVIEW_ALLOW_SELF_APPROVAL="true"))
    with httpx.Client(base_url=host.base_url, timeout=30) as http_client:
        yield http_client


def test_where_self_approval_is_allowed_an_administrators_edit_is_published_at_once(
    self_approving: httpx.Client, user: Caller, admin: Caller, sql: Sql
) -> None:
    client = self_approving
    own = submit(client, admin)
    assert decide(client, admin, own["registration_id"], "Approved")["published_revision"] == 1
    pending = submit(client, user)
    fixed = edit(client, admin, pending["registration_id"], description="Fixed by an administrator.")
    assert (fixed.json()["status"], fixed.json()["published_revision"]) == ("Pending", None)

    edited = edit(client, admin, own["registration_id"], description="Published at once.")
    admin_id = str(sql.fetchval("SELECT user_id FROM users WHERE entra_id = $1", admin.oid))
    assert (edited.json()["status"], edited.json()["revision"], edited.json()["published_revision"],
            edited.json()["approver_id"]) == ("Approved", 2, 2, admin_id)
    assert feed_description(client, own["server_name"]) == "Published at once."
    assert audit(sql, own["registration_id"]) == [("Created", 1), ("Approved", 1), ("Updated", 2), ("Approved", 2)]


def test_the_namespace_rule_for_non_administrators(
    client: httpx.Client, user: Caller, admin: Caller, second_admin: Caller
) -> None:
    host = unique_host()
    namespace = ".".join(reversed(host.split(".")))
    wrong = {**_body(), "endpoint_url": f"https://{host}/mcp", "server_name": "com.fabrikam/tools"}
    problem = assert_problem(client.post("/registrations", json=wrong, headers=user.headers), 422)
    assert problem["errors"][0]["loc"] == ["body", "server_name"]
    assert f"{namespace}/..." in problem["detail"]
    assert "com.example/..." in problem["detail"]
    assert client.post("/registrations", json=wrong, headers=admin.headers).status_code == 201

    created = submit(client, user, endpoint_url=f"https://{host}/other", server_name=f"{namespace}/tools")
    registration_id = created["registration_id"]
    assert_problem(edit(client, user, registration_id, server_name="com.fabrikam/tools-2"), 422)
    single = assert_problem(edit(client, user, registration_id, server_name="local/tools-2"), 422)
    assert "does not have a domain as its namespace" in single["detail"]
    assert_problem(edit(client, user, registration_id, endpoint_url=f"https://{unique_host()}/mcp"), 422)
    # Within the namespace both ways: a parent domain as the name's namespace, another host under it.
    assert edit(client, user, registration_id, server_name=f"com.example/{host.split('.')[0]}").status_code == 200
    moved = edit(client, user, registration_id, endpoint_url=f"https://{unique_host()}/mcp")
    assert moved.status_code == 200, moved.text
    assert edit(client, second_admin, registration_id, server_name="com.fabrikam/anything").status_code == 200
    # A derived name always matches.
    assert submit(client, user, endpoint_url=f"https://{unique_host()}/derived")["server_name"].startswith("com.")


def test_a_published_url_stays_claimed_while_an_edit_moves_away(
    client: httpx.Client, user: Caller, other_user: Caller, admin: Caller
) -> None:
    created = submit(client, user)
    decide(client, admin, created["registration_id"], "Approved")
    namespace = created["server_name"].split("/")[0]
    moved = edit(client, user, created["registration_id"], endpoint_url=created["endpoint_url"] + "/v2",
                 server_name=f"{namespace}/renamed")
    assert moved.status_code == 200
    for field, value in (("endpoint_url", created["endpoint_url"]), ("server_name", created["server_name"])):
        taken = client.post("/registrations", json={**_body(), field: value}, headers=admin.headers)
        assert_problem(taken, 409, f"A registration with this {field} already exists.")
    decide(client, admin, created["registration_id"], "Approved")
    again = submit(client, other_user, endpoint_url=created["endpoint_url"], server_name=created["server_name"])
    assert again["revision"] == 1
