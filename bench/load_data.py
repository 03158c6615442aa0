"""Realistic registry data in bulk: a million registrations, 5,000 people, their audit trails.

    python -m bench.load_data [--force]     # load the million-row bench database

Submissions follow a Zipf-like curve (one heavy submitter holds about 2 %, ~20,000 rows, and
most people hold a handful); 60 % are Approved, 30 % Pending, 10 % Rejected; 2 % are
soft-deleted; every fifth registration has a full audit trail. Everything comes from one
seeded random generator, and each person's identity from their index, so a benchmark can
sign in as any of them (`person(index)`) and the data is the same on every machine.

Rows travel by binary COPY (`copy_records_to_table`) in one transaction that also drops the
secondary indexes first and rebuilds them from their own definitions afterwards (building an
index once is far cheaper than maintaining it row by row), so an interrupted load leaves the
previous state intact. A marker row records what was loaded; a later run with the same shape
and row count skips the load.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import BIG_DATABASE, Bench, ensure_migrated_database, progress, start_server
from shared.services.registrations import derive_server_name

# Bumped whenever the generator changes what it writes, so kept databases are reloaded.
GENERATOR_VERSION = 1
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
    seed: int = 8


BIG = Shape("million", registrations=1_000_000, users=5_000, admins=5, heavy_share=0.02, audited_every=5,
            deleted_share=0.02)
SMALL = Shape("small", registrations=2_000, users=200, admins=3, heavy_share=0.05, audited_every=1,
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
    load_seconds double precision NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now()
)
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


async def load(url: str, shape: Shape, *, force: bool = False) -> bool:
    """Load `shape` into the migrated database at `url` unless it is there already; True when loaded now."""
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        if not force and await loaded(connection, shape):
            return False
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
            await connection.execute(
                """INSERT INTO bench_dataset (name, fingerprint, registrations, audit_entries, load_seconds)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint,
                       registrations = excluded.registrations, audit_entries = excluded.audit_entries,
                       load_seconds = excluded.load_seconds, loaded_at = now()""",
                shape.name, fingerprint(shape), shape.registrations, len(audit), time.perf_counter() - started)
        indexed = time.perf_counter() - started - copied
        # Statistics for the planner and a visibility map for index-only scans, as autovacuum
        # would leave them on a database that has lived a while.
        await connection.execute("VACUUM (ANALYZE) users, registrations, audit_log")
        await connection.execute("UPDATE bench_dataset SET load_seconds = $2 WHERE name = $1",
                                 shape.name, time.perf_counter() - started)
        if shape.registrations >= 100_000:
            progress(f"loaded {shape.registrations:,} registrations and {len(audit):,} audit entries in "
                     f"{time.perf_counter() - started:.0f} s (copy {copied:.0f} s, {len(indexes)} indexes "
                     f"{indexed:.0f} s, vacuum the rest)")
        return True
    finally:
        await connection.close()


async def dataset_summary(url: str, shape: Shape) -> dict[str, Any]:
    """What a loaded data set holds, for the bench's notes."""
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        marker = await connection.fetchrow(
            "SELECT audit_entries, load_seconds, loaded_at FROM bench_dataset WHERE name = $1", shape.name)
        heavy = await connection.fetchval(
            "SELECT count(*) FROM registrations WHERE submitter_id = $1", person(shape, 0).user_id)
        return {"audit_entries": marker["audit_entries"], "load_seconds": marker["load_seconds"],
                "loaded_at": marker["loaded_at"], "heavy_submitter_rows": heavy}
    finally:
        await connection.close()


async def ensure_big(bench: Bench, *, force: bool = False) -> str:
    url = await ensure_migrated_database(bench, BIG_DATABASE)
    await load(url, BIG, force=force)
    return url


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
