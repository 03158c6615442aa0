"""What every benchmark section shares: the PostgreSQL it runs on, the sign-in authority,
the two databases, result tables and a few statistics.

The server keeps its files in `.data/bench-pg` between runs so the million-row database is
loaded once. A second, small database is made afresh on every run for the sections that
measure the app's own code rather than PostgreSQL at scale.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from shared.config import DatabaseSettings
from tools.authority import DevAuthority
from tools.migrate import migrate
from tools.pgserver import PgServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data" / "bench-pg"
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "54339"))
BIG_DATABASE = "registry_bench"
SMALL_DATABASE = "registry_bench_small"
TEN_K_DATABASE = "registry_bench_10k"
CONCURRENCY = 16


def progress(message: str) -> None:
    print(f"bench: {message}", flush=True)


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        cells = [[str(column) for column in self.columns], *[[_cell(value) for value in row] for row in self.rows]]
        widths = [max(len(row[index]) for row in cells) for index in range(len(self.columns))]
        lines = [f"== {self.title} =="]
        for number, row in enumerate(cells):
            lines.append("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
            if number == 0:
                lines.append("  ".join("-" * width for width in widths))
        lines.extend(f"  * {note}" for note in self.notes)
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile, enough for the few hundred samples a section takes."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return seconds * 1000.0


async def timed(action: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    """Wall time of `runs` sequential calls, in seconds."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return samples


@dataclass
class Bench:
    """The server, the authority and the run's options, handed to every section."""

    quick: bool
    server: PgServer
    authority: DevAuthority

    def url(self, database: str) -> str:
        return self.server.database_url(database)

    def small_database(self) -> str:
        """The small database (2,000 registrations by 200 people), made afresh: sections that
        write (POST benchmarks, new users) must not change what the next section measures."""
        from bench.load_data import SMALL, load

        url = asyncio.run(recreate_database(self, SMALL_DATABASE, migrated=False))
        asyncio.run(load(url, SMALL))
        return url


async def recreate_database(bench: Bench, name: str, *, migrated: bool = True) -> str:
    """The database `name`, dropped and made again, empty; migrated unless asked not to."""
    connection = await asyncpg.connect(bench.server.url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = bench.url(name)
    if migrated:
        await migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True)
    return url


def start_server() -> tuple[PgServer, bool]:
    """The bench PostgreSQL, and whether this call started it (and so must stop it)."""
    server = PgServer(DATA_DIR, PG_PORT)
    if server.running():
        return server, False
    server.start()
    return server, True
