"""Section "overhead": what the app's code costs on top of the database, per request.

In process and at concurrency 16, the function handlers are called with `func.HttpRequest`
objects (a signed token, warm token and user caches) and compared with raw asyncpg running
the same statement, with the same arguments, on the same pool. The statement is taken from
the pool's query observer while the handler runs once, so nothing is copied. Runs alternate
raw, handler, raw, handler so that drift (PostgreSQL's own caches, the machine) hits both.

The database is the small one (2,000 registrations): there the statement is cheap, so the
handler's own work weighs most and the ratio is the strictest. Beside requests per second, the
table gives this process's CPU time per request on each side: PostgreSQL and everything else
on the machine are left out of it, so it is the steadier measure of the app's own cost.

A second table attributes the handler's time by library, from a pyinstrument profile of the
handler runs (self time of each sampled frame, charged to the nearest frame whose file belongs
to a known group). The full profiles are written to .data/bench-profile/.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from bench.common import CONCURRENCY, PROJECT_ROOT, Bench, Table, ms, percentile, progress
from bench.harness import InProcessApp, StatementLog, app_environment, configure, settle
from bench.load_data import SMALL, person
from shared.db import database
from shared.services import registrations as registration_statements
from shared.services import users
from tools.devhost import InvocationContext

PROFILE_DIR = PROJECT_ROOT / ".data" / "bench-profile"
# Where sampled time goes, first match from the innermost frame outwards.
GROUPS: tuple[tuple[str, str], ...] = (
    ("/selectors.py", "idle: waiting for PostgreSQL"),
    ("/asyncpg/", "asyncpg"),
    ("/pydantic", "pydantic"),
    ("/json/", "json"),
    ("/jwt/", "PyJWT"),
    ("/azure/functions/", "azure.functions"),
    ("/shared/auth/", "app: sign-in"),
    ("/shared/services/", "app: services"),
    ("/shared/schemas/", "app: schemas"),
    ("/shared/http.py", "app: http edge"),
    ("/shared/routes/", "app: handlers"),
    ("/shared/", "app: other"),
    ("/asyncio/", "asyncio: loop, transports, socket calls"),
    ("/bench/", "benchmark driver"),
)


@dataclass
class Case:
    label: str
    function: str
    target: float
    # The next request to send, and the raw side's arguments for the next call (the captured
    # ones, made unique where every request must be).
    requests: Callable[[], func.HttpRequest]
    expected_status: int
    raw_arguments: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda arguments: arguments
    statement: str = ""
    arguments: tuple[Any, ...] = ()


@dataclass
class Run:
    count: int = 0
    elapsed: float = 0.0
    # CPU time of this process: what the Python side costs whatever else runs on the machine.
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.count if self.count else 0.0

    def add(self, other: Run) -> None:
        self.count += other.count
        self.elapsed += other.elapsed
        self.cpu += other.cpu
        self.latencies += other.latencies


async def drive(call: Callable[[], Awaitable[None]], seconds: float, concurrency: int = CONCURRENCY) -> Run:
    """Call `call()` from `concurrency` workers until `seconds` have passed."""
    run = Run()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            run.latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.elapsed, run.cpu = time.perf_counter() - started, time.process_time() - cpu
    run.count = len(run.latencies)
    return run


def _unique(template: dict[str, Any], index: int) -> dict[str, Any]:
    return {**template, "endpoint_url": f"https://overhead-{index}.bench.example.com/mcp",
            "endpoint_name": f"Overhead Bench {index}"}


async def _setup(app: InProcessApp, bench: Bench) -> list[Case]:
    caller = person(SMALL, 1)
    token = bench.authority.mint(oid=caller.oid, name=caller.name, email=caller.email)
    listing = json.loads((await app.call("registrations_list", app.request(
        "registrations_list", token=token))).get_body())
    registration_id = listing["results"][0]["registration_id"]
    template = {"endpoint_url": "https://overhead-template.bench.example.com/mcp",
                "endpoint_name": "Overhead Bench Template", "owner_contact": "bench@example.com",
                "available_tools": ["lookup", "search"], "description": "Created by the overhead benchmark."}
    # Requests are built before the clock starts: the worker, not the handler, makes them.
    by_id = app.request("registrations_get", token=token, route_params={"registration_id": registration_id})
    first_page = app.request("registrations_list", token=token)
    me = app.request("users_get_me", token=token)
    prebuilt = 60_000 if not bench.quick else 20_000
    creations = itertools.chain(
        [app.request("registrations_create", token=token, body=_unique(template, index)) for index in range(prebuilt)],
        # Only if a fast run outlasts the prebuilt ones.
        (app.request("registrations_create", token=token, body=_unique(template, index))
         for index in itertools.count(prebuilt)),
    )
    raw_numbers = itertools.count()

    def raw_create(arguments: tuple[Any, ...]) -> tuple[Any, ...]:
        # Same statement, same argument shapes; only the unique fields differ, as they do per request.
        names = registration_statements._CREATE.names
        url, derived = arguments[names.index("endpoint_url")], arguments[names.index("derived")]
        number = next(raw_numbers)
        return tuple(f"https://raw-{number}.bench.example.com/mcp" if value == url
                     else f"{derived}-raw-{number}" if value == derived and value is not None else value
                     for value in arguments)

    return [
        Case("GET /registrations/{id}", "registrations_get", 0.6, lambda: by_id, 200),
        Case("GET /registrations (first page)", "registrations_list", 0.6, lambda: first_page, 200),
        Case("GET /users/me", "users_get_me", 0.6, lambda: me, 200),
        Case("POST /registrations", "registrations_create", 0.5, lambda: next(creations), 201,
             raw_arguments=raw_create),
    ]


async def _capture(app: InProcessApp, log: StatementLog, case: Case) -> None:
    """The statement the handler runs; for a handler that runs none warm (users/me), the one it
    runs when the caller is not remembered, which is what it would otherwise cost."""
    template = case.requests()
    for forget in (False, True):
        if forget:
            users.reset()
        await settle()
        log.clear()
        response = await app.call(case.function, template)
        await settle()
        assert response.status_code == case.expected_status, response.get_body()
        if log.statements:
            record = log.statements[-1]
            case.statement, case.arguments = record.query, tuple(record.args)
            return
    raise RuntimeError(f"{case.label} ran no statement")


async def _compare(app: InProcessApp, case: Case, seconds: float) -> tuple[Run, Run]:
    pool = await database.pool()
    context = InvocationContext(case.function)

    async def handler() -> None:
        response = await app.call(case.function, case.requests(), context)
        if response.status_code != case.expected_status:
            raise RuntimeError(f"{case.label} answered {response.status_code}: {response.get_body()[:300]!r}")

    async def raw() -> None:
        async with pool.acquire() as connection:
            await connection.fetch(case.statement, *case.raw_arguments(case.arguments))

    await drive(raw, seconds / 4)
    await drive(handler, seconds / 4)
    raw_total, handler_total = Run(), Run()
    for _ in range(2):
        raw_total.add(await drive(raw, seconds / 2))
        handler_total.add(await drive(handler, seconds / 2))
    return raw_total, handler_total


async def _profile(app: InProcessApp, case: Case, seconds: float) -> dict[str, float]:
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    context = InvocationContext(case.function)

    async def handler() -> None:
        await app.call(case.function, case.requests(), context)

    # Sample on CPU time, not wall time: other programs on the machine then do not show up as
    # time spent in whatever system call we happened to be in when descheduled.
    get_stack_sampler().timer_func = time.process_time
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    await drive(handler, seconds)
    session = profiler.stop()
    get_stack_sampler().timer_func = None
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    (PROFILE_DIR / f"{case.function}.txt").write_text(profiler.output_text(unicode=False, show_all=False))
    shares: dict[str, float] = {}
    root = session.root_frame()
    if root is None:
        return shares

    def visit(frame: Any, group: str) -> None:
        path = frame.file_path or ""
        own = next((name for marker, name in GROUPS if marker in path), group)
        shares[own] = shares.get(own, 0.0) + frame.total_self_time
        for child in frame.children:
            visit(child, own)

    visit(root, "other")
    total = sum(shares.values()) or 1.0
    return {name: value / total for name, value in shares.items()}


async def _run(bench: Bench) -> list[Table]:
    seconds = 2.0 if bench.quick else 6.0
    app = InProcessApp()
    log = StatementLog()
    database.query_observers.append(log)
    try:
        cases = await _setup(app, bench)
        for case in cases:
            await _capture(app, log, case)
    finally:
        database.query_observers.remove(log)
        # Measured on a pool without the observer, as production runs.
        await database.close()

    comparison = Table(f"Handler vs raw asyncpg, same statement and pool, concurrency {CONCURRENCY}, in process",
                       ["endpoint", "raw req/s", "handler req/s", "ratio", "target", "met",
                        "raw CPU us/req", "handler CPU us/req", "CPU ratio", "handler p50 ms", "handler p99 ms"])
    profiles: dict[str, dict[str, float]] = {}
    try:
        for case in cases:
            progress(f"overhead: {case.label}")
            raw, handled = await _compare(app, case, seconds)
            ratio = handled.rate / raw.rate
            comparison.add(case.label, raw.rate, handled.rate, ratio, f">= {case.target}",
                           "yes" if ratio >= case.target else "NO", raw.cpu_per_request * 1e6,
                           handled.cpu_per_request * 1e6, raw.cpu_per_request / handled.cpu_per_request,
                           ms(percentile(handled.latencies, 0.5)), ms(percentile(handled.latencies, 0.99)))
            # Right after its comparison: the POST case adds rows that later lists would count.
            profiles[case.label] = await _profile(app, case, seconds / 3)
    finally:
        await database.close()
    comparison.notes += [
        f"database: {SMALL.registrations:,} registrations; each figure from {seconds:g} s per side, "
        "alternating raw/handler twice after a warm-up of each",
        "CPU us/req: this process's CPU time per request (PostgreSQL's excluded); the CPU ratio is the "
        "throughput ratio this process could reach with a core of its own",
        "GET /users/me runs no statement once the caller is remembered; its raw side is the sign-in "
        "upsert it runs otherwise",
    ]

    groups = sorted({name for shares in profiles.values() for name in shares},
                    key=lambda name: -sum(shares.get(name, 0.0) for shares in profiles.values()))
    breakdown = Table("Where handler time goes (pyinstrument, share of samples, %)", ["group", *profiles])
    for name in groups:
        breakdown.add(name, *(f"{100 * shares.get(name, 0.0):.1f}" for shares in profiles.values()))
    breakdown.notes.append(f"profiles: {Path(PROFILE_DIR).relative_to(PROJECT_ROOT)}/<function>.txt")
    return [comparison, breakdown]


def run(bench: Bench) -> list[Table]:
    configure(app_environment(bench.small_database(), bench.authority))
    return asyncio.run(_run(bench))
