"""Realistic registry data in bulk: a million registrations, 5,000 people, their audit trails.

    python -m bench.load_data [--force]     # load the million-row bench database

Submissions follow a Zipf-like curve (one heavy submitter holds about 2 %, ~20,000 rows, and
most people hold a handful); 60 % are Approved, 30 % Pending, 10 % Rejected; 2 % are
soft-deleted; every fifth registration has a full audit trail; one registration in ten is an
approved one with an edit awaiting review (its revision 2), so its latest and its published
revision differ. Everything comes from one
seeded random generator, and each person's identity from their index, so a benchmark can
sign in as any of them (`person(index)`) and the data is the same on every machine.

The generator writes the schema of migrations 0001–0002, the one before revisions: the database
is made at that schema, rows travel by binary COPY (`copy_records_to_table`) in one transaction
that also drops the secondary indexes first and rebuilds them from their own definitions
afterwards (building an index once is far cheaper than maintaining it row by row), and then the
remaining migrations run, timed: every load proves migration 0003 on the data set it makes. The
pending edits are written after that, as revisions. A marker row records what was loaded (and
how long the migration took); a later run with the same shape and row count skips the load.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import BIG_DATABASE, TEN_K_DATABASE, Bench, progress, recreate_database, start_server
from shared.config import DatabaseSettings
from shared.services.registrations import derive_server_name
from tools.migrate import MIGRATIONS_DIR, discover, migrate

# Bumped whenever the generator changes what it writes, so kept databases are reloaded.
GENERATOR_VERSION = 2
# The schema the generator writes: the migrations before revisions (0003).
GENERATED_SCHEMA = "0003"
NAMESPACE = uuid.UUID("6f1c8e43-2d5b-4a8f-9c61-5a0e7d3b2c19")
PERIOD_END = datetime(2025, 11, 1, tzinfo=UTC)
PERIOD = timedelta(days=3 * 365)


@dataclass(frozen=True)
class Shape:
    name: str
    registrations: int
    users: int
    admins: int
    heavy_share: float
    audited_every: int
    deleted_share: float
    pending_edit_share: float = 0.1
    seed: int = 8


BIG = Shape("million", registrations=1_000_000, users=5_000, admins=5, heavy_share=0.02, audited_every=5,
            deleted_share=0.02)
SMALL = Shape("small", registrations=2_000, users=200, admins=3, heavy_share=0.05, audited_every=1,
              deleted_share=0.02)
# The million's proportions at 10,000 registrations: what the public list costs at a small size.
TEN_K = Shape("ten-thousand", registrations=10_000, users=50, admins=5, heavy_share=0.02, audited_every=5,
              deleted_share=0.02)

_ADJECTIVES = ("Azure", "Quantum", "Rapid", "Secure", "Smart", "Global", "Unified", "Insight", "Bright", "Swift",
               "Clear", "Open", "Prime", "Nimble", "Steady", "Vivid", "Polar", "Silver", "Crimson", "Atlas")
_NOUNS = ("Ledger", "Weather", "Inventory", "Billing", "Calendar", "Search", "Docs", "Tickets", "Payroll",
          "Catalog", "Telemetry", "Forecast", "Translation", "Compliance", "Recruiting", "Logistics", "Expenses",
          "Contracts", "Onboarding", "Incidents", "Assets", "Procurement", "Analytics", "Feedback", "Travel",
          "Learning", "Facilities", "Licensing", "Marketing", "Support")
_KINDS = ("Tools", "Server", "Connector", "Gateway", "Assistant", "Agent", "API", "Bridge")
_TEAMS = ("finance", "hr", "sales", "it", "legal", "ops", "data", "security", "marketing", "support", "research",
          "platform", "payments", "identity", "devices", "field")
_DOMAINS = ("contoso.com", "fabrikam.com", "northwind.net", "adventure-works.com", "tailspintoys.io", "woodgrove.org")
_VERBS = ("get", "list", "search", "create", "update", "export", "summarise", "approve", "forecast", "sync")
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tim", "Radia",
          "Leslie", "Sophie", "Niklaus", "Katherine", "Dennis", "Hedy", "John", "Mary", "Linus")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Lee",
         "Perlman", "Lamport", "Wilson", "Wirth", "Johnson", "Ritchie", "Lamarr", "Backus", "Keller", "Torvalds")
_REASONS = ("Endpoint is not reachable from the corporate network.", "Owner contact is a personal address.",
            "Duplicates an approved server.", "Tool descriptions are missing.", "Fails the security review.")

_REGISTRATION_COLUMNS = (
    "registration_id", "endpoint_url", "endpoint_name", "description", "owner_contact", "available_tools", "status",
    "submitter_id", "approver_id", "approved_at", "status_reason", "server_name", "transport", "version",
    "published_at", "created_at", "updated_at", "deleted_at",
)
_AUDIT_COLUMNS = ("registration_id", "user_id", "action", "previous_status", "new_status", "metadata", "timestamp")
_USER_COLUMNS = ("user_id", "entra_id", "email", "display_name", "is_admin", "created_at", "updated_at")

_MARKER_TABLE = """
CREATE TABLE IF NOT EXISTS bench_dataset (
    name text PRIMARY KEY, fingerprint text NOT NULL, registrations integer NOT NULL, audit_entries integer NOT NULL,
    load_seconds double precision NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(),
    migration_seconds double precision, pending_edits integer
)
"""
# One registration in ten: approved, live ones (in id order, which the seeded generator fixes)
# get a second revision awaiting review that changes their description. Triggers are off for the
# bulk write, so the review queue is recounted afterwards.
_PENDING_EDITS = """
WITH chosen AS (
    SELECT registration_id FROM registrations
    WHERE status = 'Approved' AND deleted_at IS NULL
    ORDER BY registration_id LIMIT $1
), revision AS (
    INSERT INTO registration_revisions (registration_id, revision, endpoint_url, endpoint_name, description,
                                        owner_contact, available_tools, server_name, transport, version, status,
                                        submitted_by, submitted_at)
    SELECT r.registration_id, 2, r.endpoint_url, r.endpoint_name,
           left(coalesce(r.description, r.endpoint_name) || ' Revised: pending review.', 2000), r.owner_contact,
           r.available_tools, r.server_name, r.transport, r.version, 'Pending', r.submitter_id,
           r.updated_at + interval '1 day'
    FROM registrations AS r JOIN chosen USING (registration_id)
)
UPDATE registrations AS r SET
    revision = 2, status = 'Pending', approver_id = NULL, approved_at = NULL, status_reason = NULL,
    description = left(coalesce(r.description, r.endpoint_name) || ' Revised: pending review.', 2000),
    updated_at = r.updated_at + interval '1 day'
FROM chosen WHERE r.registration_id = chosen.registration_id
"""
_RECOUNT_QUEUE = """
UPDATE review_queue AS q SET pending = counted.pending
FROM (SELECT submitter_id, count(*) FILTER (WHERE status = 'Pending' AND deleted_at IS NULL) AS pending
      FROM registrations GROUP BY submitter_id) AS counted
WHERE q.submitter_id = counted.submitter_id
"""
# What migration 0003 must have made of the data: (what, found, expected) for the notes.
_MIGRATION_CHECKS = """
SELECT (SELECT count(*) FROM registrations) AS registrations,
       (SELECT count(*) FROM registration_revisions WHERE revision = 1) AS first_revisions,
       (SELECT count(*) FROM registrations WHERE status = 'Approved') AS approved,
       (SELECT count(*) FROM registrations WHERE published_revision = 1 AND publication = 'active') AS published,
       (SELECT count(*) FROM registrations WHERE deleted_at IS NULL) AS live,
       (SELECT count(*) FROM registration_claims WHERE registration_id IS NOT NULL) AS claims
"""
# Secondary indexes of a table, with the statement that makes each: dropped before the COPY and
# remade from these definitions after it. Indexes behind constraints (primary keys) stay.
_SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""


@dataclass(frozen=True)
class Person:
    index: int
    user_id: uuid.UUID
    oid: str
    name: str
    email: str
    is_admin: bool


def person(shape: Shape, index: int) -> Person:
    """The index-th person of a data set: index 0 is the heaviest submitter, the last few are admins."""
    name = f"{_FIRST[index % len(_FIRST)]} {_LAST[(index // len(_FIRST)) % len(_LAST)]}"
    return Person(
        index=index,
        user_id=uuid.uuid5(NAMESPACE, f"user-id:{index}"),
        oid=str(uuid.uuid5(NAMESPACE, f"oid:{index}")),
        name=f"{name} {index}",
        email=f"{name.lower().replace(' ', '.')}.{index}@contoso.com",
        is_admin=index >= shape.users - shape.admins,
    )


def _zipf_exponent(users: int, heavy_share: float) -> float:
    """The exponent s for which the first of `users` ranks weighted 1/r**s holds `heavy_share`."""
    low, high = 0.0, 3.0
    for _ in range(60):
        middle = (low + high) / 2
        share = 1.0 / sum(rank ** -middle for rank in range(1, users + 1))
        low, high = (middle, high) if share < heavy_share else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Row:
    registration: tuple[Any, ...]
    audit: list[tuple[Any, ...]]


class Generator:
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.random = random.Random(shape.seed)
        exponent = _zipf_exponent(shape.users, shape.heavy_share)
        self._cumulative = list(itertools.accumulate(rank ** -exponent for rank in range(1, shape.users + 1)))
        self.people = [person(shape, index) for index in range(shape.users)]
        self.admins = [p for p in self.people if p.is_admin]

    def users(self) -> list[tuple[Any, ...]]:
        start = PERIOD_END - PERIOD - timedelta(days=30)
        return [(p.user_id, p.oid, p.email, p.name, p.is_admin, start, start) for p in self.people]

    def _submitter(self) -> Person:
        point = self.random.random() * self._cumulative[-1]
        return self.people[min(bisect.bisect_left(self._cumulative, point), len(self.people) - 1)]

    def rows(self) -> Iterator[Row]:
        count = self.shape.registrations
        step = PERIOD / count
        start = PERIOD_END - PERIOD
        for index in range(count):
            yield self._row(index, start + step * index + step * self.random.random())

    def _row(self, index: int, created_at: datetime) -> Row:
        rnd = self.random
        adjective, noun, kind = rnd.choice(_ADJECTIVES), rnd.choice(_NOUNS), rnd.choice(_KINDS)
        team, domain = rnd.choice(_TEAMS), rnd.choice(_DOMAINS)
        name = f"{adjective} {noun} {kind}"
        url = f"https://{noun.lower()}-{index}.{team}.{domain}/mcp"
        description = None if rnd.random() < 0.15 else (
            f"{adjective} {noun.lower()} for the {team} team: {rnd.choice(_VERBS)} and {rnd.choice(_VERBS)} "
            f"{noun.lower()} records from {domain}."
        )
        tools = sorted({f"{rnd.choice(_VERBS)}_{noun.lower()}" for _ in range(rnd.randint(1, 6))})
        submitter = self._submitter()
        draw = rnd.random()
        status = "Approved" if draw < 0.6 else "Pending" if draw < 0.9 else "Rejected"
        approver = approved_at = reason = published_at = None
        updated_at = created_at
        if status != "Pending":
            approver = rnd.choice(self.admins).user_id
            approved_at = updated_at = created_at + timedelta(hours=rnd.uniform(1, 240))
            reason = rnd.choice(_REASONS) if status == "Rejected" else None
            published_at = approved_at if status == "Approved" else None
        deleted_at = None
        if rnd.random() < self.shape.deleted_share:
            deleted_at = updated_at = updated_at + timedelta(days=rnd.uniform(1, 60))
        registration_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
        registration = (
            registration_id, url, name, description, f"{team}-team@{domain}", json.dumps(tools), status,
            submitter.user_id, approver, approved_at, reason, derive_server_name(url, name),
            "sse" if rnd.random() < 0.15 else "streamable-http", f"{rnd.randint(1, 4)}.{rnd.randint(0, 9)}.0",
            published_at, created_at, updated_at, deleted_at,
        )
        audit: list[tuple[Any, ...]] = []
        if index % self.shape.audited_every == 0:
            created = json.dumps({"endpoint_url": url, "server_name": registration[11]})
            audit.append((registration_id, submitter.user_id, "Created", None, "Pending", created, created_at))
            if rnd.random() < 0.3:
                edited_at = created_at + timedelta(minutes=rnd.uniform(1, 50))
                changed = json.dumps({"changed": ["description"]})
                audit.append((registration_id, submitter.user_id, "Updated", "Pending", "Pending", changed, edited_at))
            if approver is not None:
                metadata = json.dumps({} if reason is None else {"reason": reason})
                audit.append((registration_id, approver, status, "Pending", status, metadata, approved_at))
            if deleted_at is not None:
                deleter = rnd.choice(self.admins).user_id
                audit.append((registration_id, deleter, "Deleted", status, None, "{}", deleted_at))
        return Row(registration, audit)


def fingerprint(shape: Shape) -> str:
    return json.dumps({"generator": GENERATOR_VERSION, **asdict(shape)}, sort_keys=True)


async def loaded(connection: asyncpg.Connection, shape: Shape) -> bool:
    await connection.execute(_MARKER_TABLE)
    marker = await connection.fetchrow(
        "SELECT fingerprint, registrations FROM bench_dataset WHERE name = $1", shape.name)
    if marker is None or marker["fingerprint"] != fingerprint(shape):
        return False
    # The marker alone would miss rows added or removed by hand since.
    count: int = await connection.fetchval("SELECT count(*) FROM registrations")
    return bool(count == marker["registrations"] == shape.registrations)


def _generated_schema() -> Path:
    """A folder with the migrations the generator writes for (those before GENERATED_SCHEMA)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-schema-"))
    for migration in discover(MIGRATIONS_DIR):
        if migration.path.name < GENERATED_SCHEMA:
            shutil.copy(migration.path, folder / migration.path.name)
    return folder


async def _migrate(url: str, directory: Path = MIGRATIONS_DIR) -> None:
    await migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), directory, quiet=True)


async def load(url: str, shape: Shape) -> bool:
    """Load `shape` into the new, empty database at `url`: made at the generator's schema, filled,
    then migrated to the current one (timed) and given its pending edits."""
    folder = _generated_schema()
    try:
        await _migrate(url, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        await connection.execute(_MARKER_TABLE)
        if shape.registrations >= 100_000:
            progress(f"loading {shape.registrations:,} registrations (once: the database is kept between runs)")
        started = time.perf_counter()
        generator = Generator(shape)
        audit: list[tuple[Any, ...]] = []

        def registrations() -> Iterator[tuple[Any, ...]]:
            for row in generator.rows():
                audit.extend(row.audit)
                yield row.registration

        async with connection.transaction():
            # The generator keeps every reference consistent, so per-row foreign-key checks
            # (triggers) would only cost time.
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("SET LOCAL maintenance_work_mem = '512MB'")
            indexes = [*await connection.fetch(_SECONDARY_INDEXES, "registrations"),
                       *await connection.fetch(_SECONDARY_INDEXES, "audit_log")]
            for index in indexes:
                await connection.execute(f"DROP INDEX {index['name']}")
            await connection.execute("TRUNCATE audit_log, registrations, users")
            await connection.copy_records_to_table("users", records=generator.users(), columns=_USER_COLUMNS)
            await connection.copy_records_to_table("registrations", records=registrations(),
                                                   columns=_REGISTRATION_COLUMNS)
            await connection.copy_records_to_table("audit_log", records=audit, columns=_AUDIT_COLUMNS)
            copied = time.perf_counter() - started
            for index in indexes:
                await connection.execute(index["definition"])
        indexed = time.perf_counter() - started - copied
        await connection.execute("VACUUM (ANALYZE) users, registrations, audit_log")
        migration_started = time.perf_counter()
        await _migrate(url)
        migration_seconds = time.perf_counter() - migration_started
        checks = await connection.fetchrow(_MIGRATION_CHECKS)
        if shape.registrations >= 100_000:
            progress(f"migrated {shape.registrations:,} registrations from 0002 to the current schema in "
                     f"{migration_seconds:.0f} s: "
                     f"{dict(checks)}")
        expected = (checks["registrations"], checks["approved"], checks["live"] * 2)
        if (checks["first_revisions"], checks["published"], checks["claims"]) != expected:
            raise RuntimeError(f"migration 0003 did not carry the data over: {dict(checks)}")
        pending_edits = round(shape.registrations * shape.pending_edit_share)
        async with connection.transaction():
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute(_PENDING_EDITS, pending_edits)
            await connection.execute(_RECOUNT_QUEUE)
            await connection.execute(
                """INSERT INTO bench_dataset (name, fingerprint, registrations, audit_entries, load_seconds,
                                              migration_seconds, pending_edits)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint,
                       registrations = excluded.registrations, audit_entries = excluded.audit_entries,
                       load_seconds = excluded.load_seconds, loaded_at = now(),
                       migration_seconds = excluded.migration_seconds, pending_edits = excluded.pending_edits""",
                shape.name, fingerprint(shape), shape.registrations, len(audit), time.perf_counter() - started,
                migration_seconds, pending_edits)
        # Statistics for the planner and a visibility map for index-only scans, as autovacuum
        # would leave them on a database that has lived a while.
        await connection.execute("VACUUM (ANALYZE) users, registrations, audit_log, registration_revisions, "
                                 "registration_claims, review_queue")
        await connection.execute("UPDATE bench_dataset SET load_seconds = $2 WHERE name = $1",
                                 shape.name, time.perf_counter() - started)
        if shape.registrations >= 100_000:
            progress(f"loaded {shape.registrations:,} registrations and {len(audit):,} audit entries in "
                     f"{time.perf_counter() - started:.0f} s (copy {copied:.0f} s, {len(indexes)} indexes "
                     f"{indexed:.0f} s, migration {migration_seconds:.0f} s, {pending_edits:,} pending edits and "
                     "vacuums the rest)")
        return True
    finally:
        await connection.close()


async def dataset_summary(url: str, shape: Shape) -> dict[str, Any]:
    """What a loaded data set holds, for the bench's notes."""
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        marker = await connection.fetchrow(
            "SELECT audit_entries, load_seconds, loaded_at, migration_seconds, pending_edits FROM bench_dataset "
            "WHERE name = $1", shape.name)
        heavy = await connection.fetchval(
            "SELECT count(*) FROM registrations WHERE submitter_id = $1", person(shape, 0).user_id)
        return {**dict(marker), "heavy_submitter_rows": heavy}
    finally:
        await connection.close()


async def ensure_loaded(bench: Bench, name: str, shape: Shape, *, force: bool = False) -> str:
    """The database `name` holding `shape` at the current schema, (re)made when it does not."""
    url = bench.url(name)
    if not force:
        connection: asyncpg.Connection | None
        try:
            connection = await asyncpg.connect(url)
        except asyncpg.InvalidCatalogNameError:
            connection = None
        if connection is not None:
            try:
                current = [migration.version for migration in discover(MIGRATIONS_DIR)]
                applied = await connection.fetchval(
                    "SELECT array_agg(version ORDER BY version) FROM schema_migrations")
                if applied == current and await loaded(connection, shape):
                    return url
            except asyncpg.UndefinedTableError:
                pass
            finally:
                await connection.close()
    url = await recreate_database(bench, name, migrated=False)
    await load(url, shape)
    return url


async def ensure_big(bench: Bench, *, force: bool = False) -> str:
    return await ensure_loaded(bench, BIG_DATABASE, BIG, force=force)


async def ensure_ten_k(bench: Bench) -> str:
    return await ensure_loaded(bench, TEN_K_DATABASE, TEN_K)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_data",
                                     description="Load the million-registration bench database (.data/bench-pg).")
    parser.add_argument("--force", action="store_true", help="reload even when the marker says it is loaded")
    args = parser.parse_args(argv)
    from tools.authority import DevAuthority

    server, started = start_server()
    try:
        bench = Bench(quick=False, server=server, authority=DevAuthority())
        url = asyncio.run(ensure_big(bench, force=args.force))
        print(f"loaded: {url}  {asyncio.run(dataset_summary(url, BIG))}")
    finally:
        if started:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
