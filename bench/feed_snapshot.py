"""Section "snapshot": the feed's in-memory snapshot at 1,000, 10,000 and 100,000 published servers.

For each size, on a database of exactly that many published servers (one approved revision each,
every other one with an attestation): the load (the conditional statement with the whole
catalogue, and building the snapshot from its rows), the memory the snapshot holds (tracemalloc,
a separate pass), the check that finds nothing changed (the statement every
FEED_SNAPSHOT_MAX_AGE seconds), and feed answers per second, one process, sequentially, from the
snapshot and from the database path (`shared.services.feed`, what every request ran before):
the first page, a page of a search, and one server by name, each rendered to the bytes and ETag
the handler sends. Requests are counted, not timed to a deadline.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import azure.functions as func

from bench.common import Bench, Table, median, ms, progress, recreate_database
from bench.harness import app_environment, configure
from shared.db import database
from shared.routes.feed import _cached
from shared.schemas.feed import FeedQuery, server_list, server_response
from shared.services import feed, feed_snapshot
from shared.services.feed_snapshot import Snapshot

SIZES = (1_000, 10_000, 100_000)
NAMESPACE = "internal.mcp-registry"
Action = Callable[[], Awaitable[None]]
REQUEST = func.HttpRequest("GET", "http://127.0.0.1/api/v0.1/servers", headers={}, body=b"")

_LOAD = """
WITH people AS (
    INSERT INTO users (entra_id, display_name) VALUES ($2, 'Bench feed') RETURNING user_id
), source AS (
    SELECT format('https://s-%s.bench.example.com/mcp', n) AS url, format('Server %s', n) AS title,
           format('com.bench-%s/server-%s', n % 97, lpad(n::text, 6, '0')) AS name, n
    FROM generate_series(1, $1::int) AS n
), inserted AS (
    INSERT INTO registrations (endpoint_url, endpoint_name, description, owner_contact, submitter_id,
                               approver_id, server_name, status, approved_at, published_at,
                               published_revision, published_endpoint_url, published_endpoint_name,
                               published_description, published_owner_contact, published_available_tools,
                               published_server_name, published_transport, published_version,
                               published_approver_id, published_approved_at, published_updated_at, publication)
    SELECT url, title, 'A server of the benchmark catalogue.', 'owner@example.com', p.user_id, p.user_id, name,
           'Approved', now(), now(), 1, url, title, 'A server of the benchmark catalogue.', 'owner@example.com',
           '[]', name, 'streamable-http', '1.0.0', p.user_id, now(), now() - make_interval(secs => n), 'active'
    FROM source CROSS JOIN people AS p
    RETURNING *
), revision AS (
    INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name, description,
                                        owner_contact, server_name, transport, version, status,
                                        submitted_by, decided_by, decided_at)
    SELECT registration_id, 1, endpoint_url, endpoint_name, description, owner_contact, server_name,
           transport, version, 'Approved', submitter_id, approver_id, approved_at
    FROM inserted
)
INSERT INTO attestations (registration_id, latest, published, baseline_revision)
SELECT registration_id, s.summary, s.summary, 1 FROM inserted
CROSS JOIN LATERAL (SELECT jsonb_build_object('revision', 1, 'outcome', 'ok', 'checked_at', now(),
                                              'tool_count', 3, 'tools_hash', repeat('ab', 32)) AS summary) AS s
WHERE right(server_name, 1) IN ('0', '2', '4', '6', '8')
"""


async def _per_second(action: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await action()
    return count / (time.perf_counter() - started)


async def _measure(url: str, size: int, requests: int, size_table: Table, speed_table: Table) -> None:
    # Loaded on a connection of its own: a hundred thousand rows take longer than the app's command timeout.
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(_LOAD, size, str(uuid.uuid4()))
    finally:
        await connection.close()
    began = time.perf_counter()
    marker, snapshot = await feed_snapshot.load(database, None)
    loaded = time.perf_counter() - began
    assert snapshot is not None
    rows = [row for entries in (snapshot.every, *snapshot.versions.values()) for row in entries]
    kinds = [{**row, "kind": "published"} for row in snapshot.every]
    kinds += [{**row, "kind": "version"} for entries in snapshot.versions.values() for row in entries]
    began = time.perf_counter()
    Snapshot.build(marker, snapshot.folds, kinds)
    built = time.perf_counter() - began
    del rows, kinds
    checks = []
    for _ in range(30):
        began = time.perf_counter()
        await feed_snapshot.load(database, marker)
        checks.append(time.perf_counter() - began)
    # Size: what one snapshot holds once built, rows included, apart from the timings.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _, held = await feed_snapshot.load(database, None)
    size_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del held
    size_table.add(f"{size:,}", f"{snapshot.size:,}", ms(loaded), ms(loaded - built), ms(built),
                   size_bytes / 2**20, size_bytes / snapshot.size, ms(median(checks)))

    first = FeedQuery.model_validate({"limit": 30})
    search = FeedQuery.model_validate({"limit": 30, "search": "server-0004"})
    name = snapshot.live[len(snapshot.live) // 2]["server_name"]

    async def memory_page(query: FeedQuery) -> None:
        page, cursor = snapshot.list_servers(query)
        _cached(REQUEST, server_list(page, cursor, NAMESPACE), None)

    async def database_page(query: FeedQuery) -> None:
        page, cursor = await feed.list_servers(db=database, query=query)
        _cached(REQUEST, server_list(page, cursor, NAMESPACE), None)

    async def memory_server() -> None:
        _cached(REQUEST, server_response(snapshot.server_version(name=name, version="latest"), NAMESPACE), None)

    async def database_server() -> None:
        row = await feed.server_version(db=database, name=name, version="latest")
        _cached(REQUEST, server_response(row, NAMESPACE), None)

    cases: list[tuple[str, Action, Action]] = [
        ("first page (30)", lambda: memory_page(first), lambda: database_page(first)),
        ("search page", lambda: memory_page(search), lambda: database_page(search)),
        ("one server, latest", memory_server, database_server),
    ]
    for label, from_memory, from_database in cases:
        await from_database()  # the statement prepared on the connection, as in steady state
        memory_rate = await _per_second(from_memory, requests)
        database_rate = await _per_second(from_database, requests)
        speed_table.add(f"{size:,}", label, memory_rate, database_rate, memory_rate / database_rate)


def run(bench: Bench) -> list[Table]:
    size_table = Table("feed snapshot: load, size and check",
                       ("servers", "entries", "load ms", "statement ms", "build ms", "MiB held", "bytes/entry",
                        "check ms (p50)"))
    speed_table = Table("feed answers per second, one process, sequential: snapshot vs database path",
                        ("servers", "request", "snapshot/s", "database/s", "ratio"))
    requests = 200 if bench.quick else 2_000
    for size in SIZES[:2] if bench.quick else SIZES:
        progress(f"snapshot at {size:,} servers ...")
        url = asyncio.run(recreate_database(bench, f"bench_feed_{size}"))
        # The size pass decodes under tracemalloc, several times slower than the load it measures.
        configure(app_environment(url, bench.authority, FEED_SNAPSHOT_MAX_AGE="3600", DB_COMMAND_TIMEOUT="600"))

        async def measure(url: str = url, size: int = size) -> None:
            try:
                await _measure(url, size, requests, size_table, speed_table)
            finally:
                await database.close()

        asyncio.run(measure())
    size_table.notes += [
        "entries: published rows plus version rows; load = the statement with every row, then the build",
        "MiB held: tracemalloc of one load kept alive (rows, indexes by name and by time); bounded by the tables",
        "check: the marker statement when nothing changed, what runs at most every FEED_SNAPSHOT_MAX_AGE seconds",
    ]
    speed_table.notes += [f"{requests:,} answers each, rendered to the bytes and ETag the handler sends; one run"]
    return [size_table, speed_table]
