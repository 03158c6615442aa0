"""Apply the SQL migrations in `sql/migrations/` to DATABASE_URL.

    python -m tools.migrate            # apply what is pending
    python -m tools.migrate --status   # list applied and pending files, change nothing

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
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.config import ConfigError, DatabaseSettings
from shared.db import UNAVAILABLE_ERRORS, connect_options

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
# Any fixed 64-bit number; it only has to differ from other advisory locks on the database.
LOCK_KEY = 7_143_020_611_201

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


async def migrate(
    settings: DatabaseSettings, directory: Path = MIGRATIONS_DIR, *, dry_run: bool = False, quiet: bool = False
) -> list[str]:
    """Apply pending migrations; returns the versions applied (or pending, with dry_run)."""
    migrations = discover(directory)
    # A migration (or a wait for another run's lock) may take longer than any request should.
    options = {**connect_options(settings), "command_timeout": None}
    connection: asyncpg.Connection = await asyncpg.connect(**options)
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
    args = parser.parse_args(argv)
    try:
        settings = DatabaseSettings.from_env()
        done = asyncio.run(migrate(settings, args.dir, dry_run=args.status))
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
