"""Section "scale": every list, search, `my`, audit, revision and feed query at a million
registrations, one in ten of them with an edit awaiting review (bench/load_data.py).

Each case calls the service exactly as a handler does. The statement it sends is taken from
the pool's query observer, so the EXPLAIN (ANALYZE, BUFFERS) printed here is of the very SQL
text and arguments the service ran, not a copy. Timings are of the service call (statement,
network and row decoding) on one pooled connection, sequentially: after five executions
PostgreSQL may switch a prepared statement to its generic plan, and the steady state is what
the p50 shows; the `plans` column says which plan the connection ended up using.

`total` is priced separately: the list statement counts matching rows (up to the service's
cap) to answer it, and the count's share of the statement is read from the plan's two
branches. A standalone capped count, built from the service's own WHERE clause, is measured
beside it.

The public list (a non-administrator's first page) is measured again on a database of 10,000
registrations made by the same generator: its cost at a million must stay within 3× of that.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from bench.common import Bench, Table, median, ms, percentile, progress
from bench.harness import StatementLog, app_environment, configure, settle
from bench.load_data import BIG, PERIOD_END, TEN_K, Shape, dataset_summary, ensure_big, ensure_ten_k, person
from shared.db import database
from shared.schemas.feed import FeedCursor, FeedQuery
from shared.schemas.registrations import RegistrationQuery
from shared.services import audit, feed, registrations, revisions
from shared.services.registrations import Actor, list_filter
from shared.sql import Statement

COUNT_CAP = registrations.TOTAL_CAP
WALK_ENTRIES = 10_000
WALK_PAGE = 100
# The public list may cost at most this many times more at a million registrations than at 10,000.
SCALE_LIMIT = 3.0
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_INDEX = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)")
# The two branches under the list statement's top join: the count, then the page.
_BRANCH = re.compile(r"^  ->  .*actual time=[\d.]+\.\.([\d.]+)")

Call = Callable[[], Awaitable[object]]


@dataclass
class Case:
    label: str
    call: Call
    # For the list cases: (actor, query, own_only), so the capped count can reuse their filter.
    listing: tuple[Actor, RegistrationQuery, bool] | None = None


@dataclass
class Measured:
    case: Case
    plan: list[str]
    samples: list[float]
    custom_plans: int
    generic_plans: int

    @property
    def seq_scans(self) -> list[str]:
        return sorted({match.group(1) for line in self.plan for match in _SEQ_SCAN.finditer(line)})

    @property
    def indexes(self) -> list[str]:
        return sorted({match.group(1) for line in self.plan for match in _INDEX.finditer(line)})

    @property
    def branches(self) -> list[float]:
        return [float(match.group(1)) for line in self.plan if (match := _BRANCH.match(line))]


async def _capture(log: StatementLog, call: Call) -> Any:
    await settle()
    log.clear()
    log.recording = True
    await call()
    await settle()
    log.recording = False
    if len(log.statements) != 1:
        raise RuntimeError(f"expected one statement, the service ran {log.texts}")
    return log.statements[0]


async def _measure(log: StatementLog, case: Case, runs: int) -> Measured:
    record = await _capture(log, case.call)
    async with database.connection() as connection:
        plan = [row[0] for row in await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {record.query}", *record.args)]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await case.call()
        samples.append(time.perf_counter() - started)
    async with database.connection() as connection:
        counts = await connection.fetchrow(
            "SELECT coalesce(sum(custom_plans), 0) AS custom, coalesce(sum(generic_plans), 0) AS generic "
            "FROM pg_prepared_statements WHERE statement = $1", record.query)
    return Measured(case, plan, samples, int(counts["custom"]), int(counts["generic"]))


async def _capped_count(actor: Actor, query: RegistrationQuery, own_only: bool, runs: int) -> list[float]:
    where, arguments = list_filter(query, own_only=own_only, is_admin=actor.is_admin)
    statement = Statement(f"SELECT count(*) FROM (SELECT 1 FROM registrations AS r WHERE {where} LIMIT :cap) AS capped")
    values = statement(cap=COUNT_CAP + 1, is_admin=actor.is_admin, user_id=actor.user_id, **arguments)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await database.fetchval(statement.sql, *values)
        samples.append(time.perf_counter() - started)
    return samples


async def _walk(limit: int) -> tuple[list[float], int]:
    """Page through the feed catalogue by cursor; the time of each page and the entries seen."""
    cursor: FeedCursor | None = None
    samples: list[float] = []
    seen = 0
    while seen < limit:
        query = FeedQuery(limit=WALK_PAGE, cursor=cursor)
        started = time.perf_counter()
        rows, cursor = await feed.list_servers(db=database, query=query)
        samples.append(time.perf_counter() - started)
        seen += len(rows)
        if cursor is None:
            break
    return samples, seen


# Attestation state of every published registration, once per database (the generator writes the
# schema before attestation): 96 % ok, 2 % timeout, 2 % unreachable; 5 % with a high finding, 20 %
# with a medium one; 1 % drifted.
_ATTESTATIONS = """
INSERT INTO attestations (registration_id, latest, published, baseline_revision, drifted)
SELECT r.registration_id, s.summary, s.summary, r.published_revision, n.n % 100 = 0
FROM registrations AS r
CROSS JOIN LATERAL (SELECT abs(hashtext(r.registration_id::text)) AS n) AS n
CROSS JOIN LATERAL (SELECT jsonb_build_object(
    'revision', r.published_revision, 'checked_at', now(), 'tool_count', 3,
    'outcome', CASE n.n % 50 WHEN 0 THEN 'timeout' WHEN 1 THEN 'unreachable' ELSE 'ok' END,
    'tools_hash', md5(r.registration_id::text) || md5(r.registration_id::text),
    'findings', jsonb_build_object('high', (n.n % 20 = 0)::integer, 'medium', (n.n % 5 = 0)::integer, 'low', 0)
) AS summary) AS s
WHERE r.published_revision IS NOT NULL AND NOT EXISTS (SELECT 1 FROM attestations)
"""


async def _fixtures(url: str) -> dict[str, Any]:
    """Ids and names to ask for: an audited registration, its URL's host, a live server name."""
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        await connection.execute(_ATTESTATIONS)
        await connection.execute("ANALYZE attestations")
        audited: UUID = await connection.fetchval(
            "SELECT registration_id FROM audit_log WHERE action = 'Approved' ORDER BY log_id DESC LIMIT 1")
        row = await connection.fetchrow(
            "SELECT endpoint_url, server_name FROM registrations WHERE registration_id = $1", audited)
        sizes = await connection.fetchrow(
            "SELECT pg_size_pretty(pg_table_size('registrations')) AS heap, "
            "pg_size_pretty(pg_indexes_size('registrations')) AS indexes, current_setting('shared_buffers') AS buffers")
        edited = await connection.fetchrow(
            "SELECT registration_id, published_server_name FROM registrations WHERE revision = 2 "
            "ORDER BY registration_id LIMIT 1")
        return {"audited": audited, "rare": row["endpoint_url"].split("//", 1)[1].split(".", 1)[0],
                "server_name": row["server_name"], "sizes": dict(sizes), "edited": edited["registration_id"],
                "edited_name": edited["published_server_name"]}
    finally:
        await connection.close()


def _cases(fixtures: dict[str, Any]) -> list[Case]:
    admin = Actor(person(BIG, BIG.users - 1).user_id, True)
    user = Actor(person(BIG, 1234).user_id, False)
    heavy = Actor(person(BIG, 0).user_id, False)

    def listing(label: str, actor: Actor, own_only: bool = False, **query: Any) -> Case:
        parsed = RegistrationQuery.model_validate(query)
        return Case(label, lambda: registrations.list_page(db=database, actor=actor, query=parsed, own_only=own_only),
                    (actor, parsed, own_only))

    def feed_page(**query: Any) -> Call:
        parsed = FeedQuery.model_validate(query)
        return lambda: feed.list_servers(db=database, query=parsed)

    since = (PERIOD_END - timedelta(days=30)).isoformat()
    return [
        listing("list: first page (user)", user),
        listing("list: first page, status=Approved (user)", user, status="Approved"),
        listing("list: first page, status=Approved (admin)", admin, status="Approved"),
        listing("list: first page, status=Pending (admin)", admin, status="Pending"),
        listing("list: search 'ledger', ~3 % of rows (user)", user, search="ledger"),
        listing(f"list: search '{fixtures['rare']}', one row (user)", user, search=fixtures["rare"]),
        listing("list: search 'revised', only in pending edits (user)", user, search="revised"),
        listing("list: search 'revised', only in pending edits (admin)", admin, search="revised"),
        listing("list: page at offset 10,000 (admin)", admin, offset=10_000),
        listing("list: drifted=true, ~1 % (admin)", admin, drifted=True),
        listing("list: outcome=timeout, ~2 % (admin)", admin, outcome="timeout"),
        listing("list: findings=high, ~5 % (admin)", admin, findings="high"),
        listing("list: outcome=ok, ~96 % (admin)", admin, outcome="ok"),
        listing("my: heavy submitter", heavy, True),
        Case("get by id (user)",
             lambda: registrations.get(db=database, actor=user, registration_id=fixtures["audited"])),
        Case("get by id, pending edit (user)",
             lambda: registrations.get(db=database, actor=user, registration_id=fixtures["edited"])),
        Case("revisions (admin)",
             lambda: revisions.revisions(db=database, actor=admin, registration_id=fixtures["edited"])),
        Case("one revision (admin)",
             lambda: revisions.revisions(db=database, actor=admin, registration_id=fixtures["edited"], revision=2)),
        Case("audit trail (admin)",
             lambda: audit.trail(db=database, actor=admin, registration_id=fixtures["audited"])),
        Case("feed: first page (100)", feed_page(limit=WALK_PAGE)),
        Case("feed: search 'ledger'", feed_page(search="ledger")),
        Case("feed: updated_since, 30 days", feed_page(updated_since=since)),
        Case("feed: versions of a name", lambda: feed.server_versions(db=database, name=fixtures["server_name"])),
        Case("feed: latest of a name with a pending edit",
             lambda: feed.server_version(db=database, name=fixtures["edited_name"], version="latest")),
    ]


async def _public_list(shape: Shape, user_index: int, runs: int) -> tuple[list[float], list[str]]:
    """The first page of a non-administrator's list on the configured database: timings and plan."""
    actor = Actor(person(shape, user_index).user_id, False)
    query = RegistrationQuery()
    log = StatementLog(recording=False)
    database.query_observers.append(log)
    try:
        case = Case("public list", lambda: registrations.list_page(db=database, actor=actor, query=query))
        measured = await _measure(log, case, runs)
    finally:
        database.query_observers.remove(log)
        await database.close()
    return measured.samples, measured.plan


async def _run(bench: Bench, url: str) -> tuple[list[Table], Measured]:
    runs = 8 if bench.quick else 25
    log = StatementLog(recording=False)
    database.query_observers.append(log)
    try:
        fixtures = await _fixtures(url)
        measured = []
        for case in _cases(fixtures):
            progress(f"scale: {case.label}")
            measured.append(await _measure(log, case, runs))
        walk_cursor = await _capture_walk_page(log)
        async with database.connection() as connection:
            walk_plan = [row[0] for row in await connection.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS) {walk_cursor.query}", *walk_cursor.args)]
        walk, seen = await _walk(WALK_ENTRIES)
        capped = {m.case.label: await _capped_count(*m.case.listing, runs) for m in measured if m.case.listing}
    finally:
        database.query_observers.remove(log)
        await database.close()

    summary = await dataset_summary(url, BIG)
    public_big = next(m for m in measured if m.case.label == "list: first page (user)")
    for m in measured:
        print(f"\n-- EXPLAIN (ANALYZE, BUFFERS): {m.case.label}")
        print("\n".join(m.plan))
    print(f"\n-- EXPLAIN (ANALYZE, BUFFERS): feed cursor page (page {WALK_ENTRIES // WALK_PAGE // 2} of the walk)")
    print("\n".join(walk_plan))

    timings = Table(f"Queries at {BIG.registrations:,} registrations: service call, {runs} sequential runs",
                    ["query", "p50 ms", "p95 ms", "seq scan", "indexes", "plans (custom/generic)"])
    for m in measured:
        timings.add(m.case.label, ms(median(m.samples)), ms(percentile(m.samples, 0.95)),
                    ", ".join(m.seq_scans) or "-", ", ".join(m.indexes), f"{m.custom_plans}/{m.generic_plans}")
    walk_seq = sorted({match.group(1) for line in walk_plan for match in _SEQ_SCAN.finditer(line)})
    timings.add(f"feed: cursor walk, {seen:,} entries (per page of {WALK_PAGE})", ms(median(walk), ),
                ms(percentile(walk, 0.95)), ", ".join(walk_seq) or "-",
                ", ".join(sorted({m.group(1) for line in walk_plan for m in _INDEX.finditer(line)})), "-")
    timings.notes += [
        f"feed walk: {len(walk)} pages, {ms(sum(walk)):.0f} ms in all",
        f"data: {BIG.users:,} people, heaviest submitter {summary['heavy_submitter_rows']:,} live rows, "
        f"{summary['audit_entries']:,} audit entries; loaded once in {summary['load_seconds']:.0f} s "
        "(python -m bench.load_data)",
        "a seq scan listed here is in the plan printed above it; see bench/README.md",
        "plans: pg_prepared_statements counters for the statement's text on the one pooled connection "
        "(cases that send the same text share them); generic plans start after five custom ones",
        f"registrations: heap {fixtures['sizes']['heap']}, indexes {fixtures['sizes']['indexes']}; "
        f"shared_buffers {fixtures['sizes']['buffers']} (PostgreSQL's default), so large scans read "
        "from the OS cache",
    ]

    totals = Table(f"What `total` costs on the first page (the statement's count branch vs a standalone "
                   f"count capped at {COUNT_CAP:,})",
                   ["query", "statement p50 ms", "count branch ms", "page branch ms", "capped count p50 ms"])
    for m in measured:
        if m.case.listing is None:
            continue
        branches = m.branches
        count_ms, page_ms = (branches + [float("nan")] * 2)[:2]
        totals.add(m.case.label, ms(median(m.samples)), count_ms, page_ms, ms(median(capped[m.case.label])))
    totals.notes.append("branch times come from the EXPLAIN ANALYZE above (its instrumentation adds a little)")
    timings.notes.append(
        f"migration 0003 on this data set (before its {summary['pending_edits']:,} pending edits were added): "
        f"{summary['migration_seconds']:.0f} s, checked by bench/load_data.py (a revision 1 per registration, "
        "approved ones published, two claims per live registration)")
    return [timings, totals], public_big


async def _capture_walk_page(log: StatementLog) -> Any:
    """The statement of a page in the middle of a cursor walk (a keyset continuation)."""
    cursor: FeedCursor | None = None
    for _ in range(WALK_ENTRIES // WALK_PAGE // 2):
        _, cursor = await feed.list_servers(db=database, query=FeedQuery(limit=WALK_PAGE, cursor=cursor))
    query = FeedQuery(limit=WALK_PAGE, cursor=cursor)
    return await _capture(log, lambda: feed.list_servers(db=database, query=query))


def _scaling(bench: Bench, big: Measured) -> Table:
    """The public list at 10,000 registrations beside its cost at a million."""
    runs = 8 if bench.quick else 25
    small_url = asyncio.run(ensure_ten_k(bench))
    configure(app_environment(small_url, bench.authority, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1"))
    small, plan = asyncio.run(_public_list(TEN_K, 12, runs))
    print("\n-- EXPLAIN (ANALYZE, BUFFERS): list: first page (user) at 10,000 registrations")
    print("\n".join(plan))
    ratio = median(big.samples) / median(small)
    table = Table("The public list (a non-administrator's first page, with its capped total) by size",
                  ["registrations", "p50 ms", "p95 ms", "ratio to 10,000", "target", "met"])
    table.add(f"{TEN_K.registrations:,}", ms(median(small)), ms(percentile(small, 0.95)), 1.0, "-", "-")
    table.add(f"{BIG.registrations:,}", ms(median(big.samples)), ms(percentile(big.samples, 0.95)), ratio,
              f"<= {SCALE_LIMIT:.0f}", "yes" if ratio <= SCALE_LIMIT else "NO")
    table.notes.append("both databases come from the same generator (bench/load_data.py), 10 % pending edits each; "
                       "the count stops at 10,001 rows, so its cost is bounded whatever the size")
    return table


def run(bench: Bench) -> list[Table]:
    url = asyncio.run(ensure_big(bench))
    # One connection, so the plan-cache counters and the timings are of the same session.
    configure(app_environment(url, bench.authority, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1"))
    tables, public_big = asyncio.run(_run(bench, url))
    return [*tables, _scaling(bench, public_big)]
