"""Migration 0003 (revisions) carries a database filled under the previous schema over.

The database is migrated to 0002 only, filled the way the app of that schema wrote it (its
triggers included), then migrated to the current schema and read through the dev host.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from shared.config import DatabaseSettings
from tests.registry import submit
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment, run
from tools.authority import DevAuthority
from tools.migrate import MIGRATIONS_DIR, migrate

OFFICIAL = "io.modelcontextprotocol.registry/official"


def _migrate(url: str, directory: Path) -> None:
    run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), directory, quiet=True))


def _previous_schema(tmp_path: Path) -> Path:
    directory = tmp_path / "previous"
    directory.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0003":
            shutil.copy(path, directory / path.name)
    return directory


def _fill(sql: Sql, tag: str, submitter: uuid.UUID, approver: uuid.UUID) -> dict[str, uuid.UUID]:
    """One registration in each state the previous schema knew, written as its app wrote them."""

    def insert(name: str, **extra: Any) -> uuid.UUID:
        values: dict[str, Any] = {
            "endpoint_url": f"https://{name}.{tag}.example.com/mcp", "endpoint_name": f"{name.title()} Tools",
            "owner_contact": "owner@example.com", "server_name": f"com.example.{tag}/{name}",
            "submitter_id": submitter, "description": f"{name} description",
        }
        values.update(extra)
        placeholders = ", ".join(f"${index}" for index in range(1, len(values) + 1))
        registration_id: uuid.UUID = sql.fetchval(
            f"INSERT INTO registrations ({', '.join(values)}) VALUES ({placeholders}) RETURNING registration_id",
            *values.values())
        sql.execute("INSERT INTO audit_log (registration_id, user_id, action, new_status) "
                    "VALUES ($1, $2, 'Created', 'Pending')", registration_id, submitter)
        return registration_id

    decided = "UPDATE registrations SET status = $2, approver_id = $3, approved_at = now(), status_reason = $4, " \
              "published_at = CASE WHEN $2 = 'Approved' THEN coalesce(published_at, now()) END " \
              "WHERE registration_id = $1"
    ids = {name: insert(name) for name in ("pending", "approved", "rejected", "deleted", "withdrawn")}
    sql.execute(decided, ids["approved"], "Approved", approver, None)
    sql.execute(decided, ids["rejected"], "Rejected", approver, "No.")
    sql.execute(decided, ids["deleted"], "Approved", approver, None)
    sql.execute("UPDATE registrations SET deleted_at = now() WHERE registration_id = $1", ids["deleted"])
    sql.execute(decided, ids["withdrawn"], "Approved", approver, None)
    # The previous app's edit of an approved registration: back to Pending, out of the feed.
    sql.execute("UPDATE registrations SET description = 'Edited, never approved', status = 'Pending', "
                "approver_id = NULL, approved_at = NULL WHERE registration_id = $1", ids["withdrawn"])
    return ids


def test_a_database_of_the_previous_schema_is_carried_over(
    postgres: PostgresCluster, tmp_path: Path, authority: DevAuthority, make_caller: Callable[..., Caller],
    host_factory: Callable[[Mapping[str, str]], RunningHost],
) -> None:
    url = postgres.create_database("migrate_revisions")
    _migrate(url, _previous_schema(tmp_path))
    sql = Sql(url)
    user, admin = make_caller(), make_caller(admin=True)
    submitter = sql.fetchval("INSERT INTO users (entra_id, email, display_name) VALUES ($1, $2, 'Sub') "
                             "RETURNING user_id", user.oid, user.email)
    approver = sql.fetchval("INSERT INTO users (entra_id, display_name, is_admin) VALUES ($1, 'Adm', true) "
                            "RETURNING user_id", admin.oid)
    tag = uuid.uuid4().hex[:8]
    ids = _fill(sql, tag, submitter, approver)
    before = {row["registration_id"]: dict(row) for row in sql.fetch("SELECT * FROM registrations")}

    _migrate(url, MIGRATIONS_DIR)

    after = {row["registration_id"]: dict(row) for row in sql.fetch("SELECT * FROM registrations")}
    for registration_id, old in before.items():
        new = after[registration_id]
        assert {key: new[key] for key in old} == old, "every previous column keeps its value, updated_at included"
        assert new["revision"] == 1
    revisions = {row["registration_id"]: dict(row) for row in sql.fetch("SELECT * FROM registration_revisions")}
    assert set(revisions) == set(before)
    for registration_id, old in before.items():
        revision = revisions[registration_id]
        assert (revision["revision"], revision["status"], revision["submitted_by"], revision["decided_by"],
                revision["decided_at"], revision["reason"], revision["endpoint_url"], revision["description"]) == (
            1, old["status"], submitter, old["approver_id"], old["approved_at"], old["status_reason"],
            old["endpoint_url"], old["description"])
    published = {name: (after[ids[name]]["published_revision"], after[ids[name]]["publication"],
                        after[ids[name]]["published_endpoint_url"]) for name in ids}
    assert published == {
        "pending": (None, None, None), "rejected": (None, None, None), "withdrawn": (None, None, None),
        "approved": (1, "active", before[ids["approved"]]["endpoint_url"]),
        "deleted": (1, "active", before[ids["deleted"]]["endpoint_url"]),
    }
    assert after[ids["approved"]]["published_updated_at"] == before[ids["approved"]]["updated_at"]
    assert after[ids["withdrawn"]]["published_updated_at"] == before[ids["withdrawn"]]["updated_at"]
    assert sql.fetchval("SELECT pending FROM review_queue WHERE submitter_id = $1", submitter) == 2
    claims = sql.fetch("SELECT field, value FROM registration_claims WHERE registration_id IS NOT NULL "
                       "AND value LIKE $1 ORDER BY field, value", f"%{tag}%")
    live = [name for name in ids if name != "deleted"]
    assert [(row["field"], row["value"]) for row in claims] == sorted(
        [("endpoint_url", before[ids[name]]["endpoint_url"]) for name in live]
        + [("server_name", before[ids[name]]["server_name"]) for name in live])
    assert {row["revision"] for row in sql.fetch("SELECT revision FROM audit_log")} == {1}

    host = host_factory(app_environment(url, authority))
    with httpx.Client(base_url=host.base_url, timeout=30) as client:
        catalogue = client.get("/v0.1/servers", params={"search": tag}).json()
        assert [entry["server"]["name"] for entry in catalogue["servers"]] == [f"com.example.{tag}/approved"]
        since = datetime(2000, 1, 1).isoformat() + "Z"
        sync = client.get("/v0.1/servers", params={"search": tag, "updated_since": since}).json()["servers"]
        assert {entry["server"]["name"]: (entry["_meta"][OFFICIAL]["status"], entry["server"]["description"])
                for entry in sync} == {
            f"com.example.{tag}/approved": ("active", "approved description"),
            f"com.example.{tag}/deleted": ("deleted", "deleted description"),
            f"com.example.{tag}/withdrawn": ("deleted", "withdrawn description"),
        }
        # The carried-over registrations take new revisions and decisions like any other.
        path = f"/registrations/{ids['withdrawn']}"
        edited = client.patch(path, json={"description": "Second try."}, headers={**user.headers, "If-Match": '"1"'})
        assert (edited.status_code, edited.json()["revision"], edited.json()["status"]) == (200, 2, "Pending")
        approved = client.patch(f"{path}/status", json={"status": "Approved", "revision": 2}, headers=admin.headers)
        assert (approved.status_code, approved.json()["published_revision"]) == (200, 2)
        statuses = client.get(f"{path}/revisions", headers=user.headers).json()["results"]
        assert [(item["revision"], item["status"]) for item in statuses] == [(1, "Superseded"), (2, "Approved")]
        # The URL of the deleted registration was free before the migration and stays free.
        again = submit(client, user, endpoint_url=before[ids["deleted"]]["endpoint_url"],
                       server_name=before[ids["deleted"]]["server_name"])
        assert again["revision"] == 1
