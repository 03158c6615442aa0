"""The in-memory snapshot answers byte for byte what the database path answers.

Each generated catalogue (its own database, a seeded random mix of live, deprecated, deleted and
unpublished registrations, several approved versions, shared times of change, departed entries
whose name a live server took over, attestations) is read both ways: `shared.services.feed`
(the statements, the reference) and the snapshot loaded from the same database. Every page at
every limit, following each side's own cursors, search, `version`, `updated_since`,
`include_deleted` and every per-server read are compared as rendered answers, ETag included.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import azure.functions as func
import pytest

from bench.harness import app_environment, configure
from shared.config import DatabaseSettings, reset_settings
from shared.db import Database
from shared.errors import NotFound
from shared.routes.feed import _cached
from shared.schemas.feed import FeedQuery, server_list, server_response
from shared.services import feed, feed_snapshot
from shared.services.feed_snapshot import Snapshot
from tests.support import PostgresCluster
from tools.authority import DevAuthority
from tools.migrate import migrate

NAMESPACE = "internal.mcp-registry"
BASE = datetime(2026, 1, 1, tzinfo=UTC)
VERSIONS = ("1.0.0", "1.1.0", "2.0.0", "2.0.0-beta")
SEEDS = (1, 2, 3)


def _time(rng: random.Random) -> datetime:
    # Few distinct minutes, so that many rows share a time of change and the id breaks ties.
    return BASE + timedelta(minutes=rng.randrange(8), microseconds=rng.choice((0, 0, 1, 250_000)))


def _name(rng: random.Random, index: int) -> str:
    namespace = rng.choice(("com.alpha", "com.Alpha", "io.beta-k"))
    # Few names, so that departed entries share names (and versions) with live ones.
    return f"{namespace}/srv-{index % 5}{rng.choice(('', '_x', 'K'))}"


async def _generate(url: str, seed: int, count: int = 90) -> None:
    rng = random.Random(seed)
    connection = await asyncpg.connect(url)
    try:
        user = await connection.fetchval(
            "INSERT INTO users (entra_id, display_name) VALUES ($1, 'Snapshot tests') RETURNING user_id",
            str(uuid.uuid4()))
        live_names: set[str] = set()
        for index in range(count):
            name = _name(rng, index)
            deleted = rng.random() < 0.4
            if not deleted and name in live_names:
                continue
            published = rng.random() < 0.85
            revisions = rng.randint(1, 3)
            versions = [rng.choice(VERSIONS) for _ in range(revisions)]
            published_revision = rng.randint(1, revisions) if published else None
            url_ = f"https://s{index}.seed{seed}.example.com/mcp"
            changed = _time(rng)
            pick = (published_revision or revisions) - 1
            description = rng.choice((None, "", "A server. " * rng.randint(1, 15)))
            title = f"Server {index} " + "word " * rng.randint(0, 30)
            statuses = ["Approved" if published and (revision == published_revision or rng.random() < 0.6)
                        else "Pending" for revision in range(1, revisions + 1)]
            # One statement: the registration's foreign keys to its revisions are checked at its end.
            registration = await connection.fetchval(
                """
                WITH registration AS (
                    INSERT INTO registrations (endpoint_url, endpoint_name, description, owner_contact, submitter_id,
                        approver_id, server_name, status, approved_at, published_at, revision, published_revision,
                        published_endpoint_url, published_endpoint_name, published_description,
                        published_owner_contact, published_available_tools, published_server_name,
                        published_transport, published_version, published_approver_id, published_approved_at,
                        published_updated_at, publication, publication_message, deleted_at, version, transport)
                    SELECT $1, $2, $3, 'owner@example.com', $4, $4, $5, $6, $7, $7, $8, $9,
                        p.url, p.title, p.description, p.contact, p.tools, p.name, p.transport, p.version, $4, $7,
                        $12, $13, $14, $15, $11, $10
                    FROM (SELECT $9::integer IS NOT NULL AS yes) AS q
                    CROSS JOIN LATERAL (SELECT CASE WHEN q.yes THEN $1 END AS url, CASE WHEN q.yes THEN $2 END AS title,
                        CASE WHEN q.yes THEN $3 END AS description,
                        CASE WHEN q.yes THEN 'owner@example.com' END AS contact,
                        CASE WHEN q.yes THEN '[]'::jsonb END AS tools, CASE WHEN q.yes THEN $5 END AS name,
                        CASE WHEN q.yes THEN $10 END AS transport, CASE WHEN q.yes THEN $11 END AS version) AS p
                    RETURNING registration_id
                ), revisions AS (
                    INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name,
                        description, owner_contact, server_name, transport, version, status, submitted_by, decided_by,
                        decided_at)
                    SELECT r.registration_id, v.n, $1, $2 || ' r' || v.n, $3, 'owner@example.com', $5, $10, v.version,
                        v.status, $4, $4,
                        CASE WHEN v.status = 'Approved' THEN $16::timestamptz + make_interval(hours => v.n::int) END
                    FROM registration AS r
                    CROSS JOIN unnest($17::text[], $18::text[]) WITH ORDINALITY AS v (version, status, n)
                )
                SELECT registration_id FROM registration
                """,
                url_, title, description, user, name, "Approved" if published else "Pending",
                changed - timedelta(minutes=1) if published else None, revisions, published_revision,
                rng.choice(("streamable-http", "sse")), versions[pick], changed if published else None,
                (rng.choice(("active", "active", "deprecated")) if published else None),
                rng.choice((None, "Use the new one.")) if published else None,
                changed + timedelta(seconds=1) if deleted else None, BASE, versions, statuses,
            )
            if published and rng.random() < 0.5:
                summary = {"revision": published_revision, "outcome": rng.choice(("ok", "timeout")),
                           "checked_at": "2026-01-02T03:04:05.123456+00:00", "tool_count": rng.randint(0, 5),
                           "tools_hash": rng.choice((None, "ab" * 32))}
                await connection.execute(
                    "INSERT INTO attestations (registration_id, latest, published, baseline_revision, drifted) "
                    "VALUES ($1, $2::jsonb, $2::jsonb, $3, $4)",
                    registration, json.dumps(summary), published_revision, rng.random() < 0.3)
            if not deleted:
                live_names.add(name)
    finally:
        await connection.close()


def _render(request: func.HttpRequest, body: Any) -> tuple[bytes, str | None]:
    response = _cached(request, body, None)
    return response.get_body(), response.headers.get("ETag")


REQUEST = func.HttpRequest("GET", "http://127.0.0.1/api/v0.1/servers", headers={}, body=b"")


class Paths:
    """The two paths over one database."""

    def __init__(self, url: str) -> None:
        self.db = Database(lambda: DatabaseSettings.from_env({"DATABASE_URL": url}))
        self.snapshot: Snapshot

    async def load(self) -> None:
        _, snapshot = await feed_snapshot.load(self.db, None)
        assert snapshot is not None
        self.snapshot = snapshot

    async def pages(self, params: dict[str, Any]) -> int:
        """Walk every page of a listing both ways; the number of pages."""
        pages, query_params = 0, dict(params)
        while True:
            query = FeedQuery.model_validate(query_params)
            expected_rows, expected_cursor = await feed.list_servers(db=self.db, query=query)
            rows, cursor = self.snapshot.list_servers(FeedQuery.model_validate(query_params))
            expected = _render(REQUEST, server_list(expected_rows, expected_cursor, NAMESPACE))
            assert _render(REQUEST, server_list(rows, cursor, NAMESPACE)) == expected, (params, pages)
            pages += 1
            if expected_cursor is None:
                return pages
            query_params = {"limit": params.get("limit", 30), "cursor": expected_cursor.encode()}

    async def server(self, name: str, version: str | None, include_deleted: bool) -> bool:
        """The per-server read both ways; whether it found something."""
        try:
            if version is None:
                expected: Any = server_list(await feed.server_versions(
                    db=self.db, name=name, include_deleted=include_deleted), None, NAMESPACE)
            else:
                expected = server_response(await feed.server_version(
                    db=self.db, name=name, version=version, include_deleted=include_deleted), NAMESPACE)
        except NotFound:
            expected = None
        try:
            if version is None:
                got: Any = server_list(self.snapshot.server_versions(name=name, include_deleted=include_deleted),
                                       None, NAMESPACE)
            else:
                got = server_response(self.snapshot.server_version(name=name, version=version,
                                                                   include_deleted=include_deleted), NAMESPACE)
        except NotFound:
            got = None
        assert (got is None) == (expected is None), (name, version, include_deleted)
        if expected is not None:
            assert _render(REQUEST, got) == _render(REQUEST, expected), (name, version, include_deleted)
        return expected is not None


@pytest.fixture(scope="module", params=SEEDS)
def catalogue(request: pytest.FixtureRequest, postgres: PostgresCluster, authority: DevAuthority) -> Iterator[str]:
    url = postgres.create_database(f"feed_snapshot_{request.param}")
    asyncio.run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True))
    asyncio.run(_generate(url, request.param))
    saved = dict(os.environ)
    # The answers' headers read the app's settings.
    configure(app_environment(url, authority))
    try:
        yield url
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()


def _run(url: str, check: Any) -> Any:
    async def go() -> Any:
        paths = Paths(url)
        try:
            await paths.load()
            return await check(paths)
        finally:
            await paths.db.close()

    return asyncio.run(go())


def test_every_page_at_every_limit_is_the_same(catalogue: str) -> None:
    async def check(paths: Paths) -> None:
        for limit in range(1, 101):
            for params in ({}, {"include_deleted": "true"}, {"version": "2.0.0"}, {"version": "latest"}):
                await paths.pages({"limit": limit, **params})
        assert paths.snapshot.live, "the generated catalogue publishes something"

    _run(catalogue, check)


def test_search_and_version_filters_are_the_same(catalogue: str) -> None:
    searches = ("alpha", "ALPHA", "srv-1", "_x", "%", "_", ".", "k", "K", "\u212a", "\u0130", "beta-K", "/", "zzz",
                "a" * 201, "Srv-1K")
    async def check(paths: Paths) -> None:
        for search in searches:
            for extra in ({}, {"include_deleted": "true"}, {"version": "1.0.0"}):
                await paths.pages({"search": search, "limit": 4, **extra})

    _run(catalogue, check)


def test_updated_since_is_the_same(catalogue: str) -> None:
    async def check(paths: Paths) -> None:
        stamps = sorted({row["updated_at"] for row in paths.snapshot.changed})
        moments = [BASE - timedelta(days=1), *stamps, stamps[-1] + timedelta(microseconds=1)]
        for moment in moments:
            for limit in (1, 3, 100):
                for extra in ({}, {"search": "alpha"}, {"version": "1.1.0"}):
                    await paths.pages({"updated_since": moment.isoformat(), "limit": limit, **extra})

    _run(catalogue, check)


def test_every_per_server_read_is_the_same(catalogue: str) -> None:
    async def check(paths: Paths) -> None:
        names = {row["server_name"] for row in paths.snapshot.every}
        names |= {name.upper() for name in names} | {"com.unknown/none", "not a name", "a/b\x00"}
        found = 0
        for name in sorted(names):
            for deleted in (False, True):
                for version in (None, "latest", *VERSIONS, "9.9.9", "bad\x01"):
                    found += await paths.server(name, version, deleted)
        assert found

    _run(catalogue, check)


def test_an_unchanged_catalogue_is_not_loaded_again_and_a_change_is(catalogue: str) -> None:
    async def check(paths: Paths) -> None:
        held = paths.snapshot.marker
        marker, again = await feed_snapshot.load(paths.db, held)
        assert (marker, again) == (held, None)
        async with paths.db.connection() as connection:
            # A change outside the app (no audit entry) still moves the time of public change.
            await connection.execute(
                "UPDATE registrations SET publication_message = 'Changed.', published_updated_at = now() "
                "WHERE registration_id = (SELECT registration_id FROM registrations "
                "WHERE published_revision IS NOT NULL AND deleted_at IS NULL LIMIT 1)")
        marker, changed = await feed_snapshot.load(paths.db, held)
        assert changed is not None
        assert marker != held
        paths.snapshot = changed
        await paths.pages({"limit": 100, "include_deleted": "true"})

    _run(catalogue, check)
