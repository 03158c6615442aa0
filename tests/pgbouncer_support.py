"""The API suite through PgBouncer: `TEST_VIA_PGBOUNCER=1 pytest ...`.

The session's PostgreSQL gets a PgBouncer in transaction mode in front of it (`in_front_of`,
entered by the `postgres` fixture). Tests still create, migrate and arrange their databases
directly on PostgreSQL: DDL, the migrator's advisory lock and the helpers' prepared statements
belong on a session of their own, as they do in Azure (infra/scripts/migrate-azure.sh uses port
5432). Every dev host whose DATABASE_URL names that server is sent through PgBouncer instead,
with DB_PGBOUNCER=true (`app_settings`, applied by `tests.support.app_environment`). Dev hosts
pointed at other servers (the health tests stop and start their own) are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools.pgbouncer import PgBouncer, PgBouncerUnavailable

SWITCH = "TEST_VIA_PGBOUNCER"
_DEFAULT_PORT = 5432

_running: PgBouncer | None = None


def enabled() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes")


@contextmanager
def in_front_of(server_url: str, other_users: tuple[tuple[str, str], ...] = ()) -> Iterator[None]:
    """With TEST_VIA_PGBOUNCER set, a PgBouncer in front of the server of `server_url` meanwhile,
    for its user and `other_users` ((user, password) pairs)."""
    global _running
    if not enabled():
        yield
        return
    parts = urlsplit(server_url)
    folder = Path(tempfile.mkdtemp(prefix="registry-pgbouncer-"))
    bouncer = PgBouncer(folder, parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORT,
                        users=((parts.username or "postgres", parts.password or ""), *other_users))
    try:
        bouncer.start()
    except PgBouncerUnavailable as error:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"{SWITCH} is set but PgBouncer cannot run: {error}")
    _running = bouncer
    try:
        yield
    finally:
        _running = None
        bouncer.stop()
        shutil.rmtree(folder, ignore_errors=True)


def app_settings(database_url: str) -> dict[str, str]:
    """The app's DATABASE_URL and DB_PGBOUNCER for `database_url`: through PgBouncer when it fronts that server."""
    bouncer = _running
    if bouncer is None:
        return {}
    parts = urlsplit(database_url)
    if (parts.hostname, parts.port or _DEFAULT_PORT) != (bouncer.server_host, bouncer.server_port):
        return {}
    return {
        "DATABASE_URL": bouncer.url(parts.path.lstrip("/"), parts.username or "postgres"),
        "DB_PGBOUNCER": "true",
    }
