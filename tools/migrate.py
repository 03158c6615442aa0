"""Apply the SQL migrations in `sql/migrations/` to DATABASE_URL.

    python -m tools.migrate            # apply what is pending
    python -m tools.migrate --status   # list applied and pending files, change nothing
    python -m tools.migrate --wait 300 # keep trying to connect for up to 300 s first

Each file runs in its own transaction and is recorded with its SHA-256 in
`schema_migrations`. An applied file that was edited since is refused. An advisory lock makes
two runs at once safe: the second waits, then finds nothing to do. Exit 0 when the schema is
current, 1 with a message otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.config import ConfigError, DatabaseSettings
from shared.db import UNAVAILABLE_ERRORS, connect_options

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
# Any fixed 64-bit number; it only has to differ from other advisory locks on the database.
LOCK_KEY = 7_143_020_611_201
# Pause between two connection attempts under --wait.
RETRY_INTERVAL = 10.0

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    sql: str
    checksum: str

    @classmethod
    def load(cls, path: Path) -> Migration:
        text = path.read_text(encoding="utf-8")
        return cls(path.stem, path, text, hashlib.sha256(text.encode()).hexdigest())


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = [Migration.load(path) for path in sorted(directory.glob("*.sql"))]
    versions = [migration.version.split("_", 1)[0] for migration in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number in {directory}")
    return migrations


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def connect_when_reachable(
    options: dict[str, Any], wait: float, *, interval: float = RETRY_INTERVAL, say: Callable[[str], None] = _say
) -> asyncpg.Connection:
    """Connect, trying again for up to `wait` seconds while the server is unreachable or refuses us.

    A new Azure server takes minutes before its firewall rules and its Entra administrator
    apply: until then a connection times out or is refused (`no pg_hba.conf entry`), which is
    not yet a reason to stop. Each failed attempt says so; the last one's error is raised."""
    deadline = time.monotonic() + wait
    attempt = 1
    while True:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(**options)
            return connection
        except UNAVAILABLE_ERRORS as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            pause = min(interval, remaining)
            say(f"migrate: attempt {attempt} could not connect ({type(error).__name__}: {error}); "
                f"trying again in {pause:.0f} s, giving up in {remaining:.0f} s")
            await asyncio.sleep(pause)
            attempt += 1


async def migrate(
    settings: DatabaseSettings, directory: Path = MIGRATIONS_DIR, *, dry_run: bool = False, quiet: bool = False,
    wait: float = 0.0,
) -> list[str]:
    """Apply pending migrations; returns the versions applied (or pending, with dry_run).

    With `wait`, an unreachable database is tried again for that many seconds first."""
    migrations = discover(directory)
    # A migration (or a wait for another run's lock) may take longer than any request should.
    options = {**connect_options(settings), "command_timeout": None}
    connection = await connect_when_reachable(options, wait)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await connection.execute(CREATE_TABLE)
            applied = {
                row["version"]: row["checksum"]
                for row in await connection.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for migration in migrations:
                recorded = applied.get(migration.version)
                if recorded is not None and recorded != migration.checksum:
                    raise MigrationError(
                        f"{migration.path.name} was edited after it was applied (checksum differs); "
                        "add a new migration instead of changing an applied one"
                    )
            pending = [migration for migration in migrations if migration.version not in applied]
            for migration in pending:
                if dry_run:
                    continue
                if not quiet:
                    print(f"applying {migration.path.name} ...", flush=True)
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                        migration.version,
                        migration.checksum,
                    )
            return [migration.version for migration in pending]
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.migrate", description="Apply pending SQL migrations to DATABASE_URL."
    )
    parser.add_argument("--status", action="store_true", help="list pending migrations without applying them")
    parser.add_argument("--dir", type=Path, default=MIGRATIONS_DIR, help="folder of numbered .sql files")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="keep trying to connect for this long, with a message per attempt (default 0)")
    args = parser.parse_args(argv)
    try:
        settings = DatabaseSettings.from_env()
        done = asyncio.run(migrate(settings, args.dir, dry_run=args.status, wait=args.wait))
    except ConfigError as error:
        print(f"migrate: configuration error: {error}", file=sys.stderr)
        return 1
    except MigrationError as error:
        print(f"migrate: {error}", file=sys.stderr)
        return 1
    except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError) as error:
        print(f"migrate: cannot connect to the database: {error}", file=sys.stderr)
        return 1
    except UNAVAILABLE_ERRORS as error:
        print(f"migrate: cannot reach the database ({type(error).__name__}: {error})", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as error:
        print(f"migrate: the database refused a migration: {error}", file=sys.stderr)
        return 1
    if args.status:
        print("pending: " + (", ".join(done) if done else "none"))
    else:
        print(f"applied {len(done)} migration(s); schema is current" if done else "schema is current; nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
