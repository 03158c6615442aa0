"""A statement that outlives DB_COMMAND_TIMEOUT answers 503, is cancelled in PostgreSQL too, and
its connection goes back to the pool fit for the next request: the pool holds only that one,
and the same PostgreSQL session serves before and after."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import httpx
import pytest

from tests.faults.fault_kit import (
    APP_WAITING_ON_A_LOCK,
    TEST_SESSION,
    assert_unavailable,
    probe,
    row_lock,
    table_lock,
    timed,
)
from tests.registry import submit
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

HostFactory = Callable[[Mapping[str, str]], RunningHost]

COMMAND_TIMEOUT = 1.0
# What the answer may take beyond the command timeout on a busy two-core machine.
MARGIN = 1.0
APP_SESSIONS = f"""
SELECT coalesce(array_agg(pid ORDER BY pid), '{{}}') FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND application_name <> '{TEST_SESSION}'
"""


@dataclass
class SlowSetup:
    url: str
    client: httpx.Client
    registration_id: str

    @property
    def path(self) -> str:
        return f"/registrations/{self.registration_id}"

    def app_sessions(self) -> list[int]:
        sessions: list[int] = probe(self.url, APP_SESSIONS)
        return sessions

    def app_waits_on_a_lock(self) -> bool:
        """Whether a statement of the app still waits in PostgreSQL after 10 s (the cancel is
        asynchronous; the bound only keeps a cancel that never comes from hanging the test)."""
        deadline = time.monotonic() + 10
        while probe(self.url, APP_WAITING_ON_A_LOCK) != 0:
            if time.monotonic() > deadline:
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def slow(
    postgres: PostgresCluster, authority: DevAuthority, host_factory: HostFactory, make_caller: Callable[..., Caller]
) -> Iterator[SlowSetup]:
    url = postgres.migrated_database()
    host = host_factory(app_environment(url, authority, DB_COMMAND_TIMEOUT=str(COMMAND_TIMEOUT),
                                        DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1"))
    caller = make_caller()
    with httpx.Client(base_url=host.base_url, headers=caller.headers, timeout=30) as client:
        yield SlowSetup(url, client, submit(client, caller)["registration_id"])


def test_a_write_stuck_behind_a_row_lock_is_503_and_the_connection_serves_the_next_requests(slow: SlowSetup) -> None:
    sessions = slow.app_sessions()
    assert len(sessions) == 1
    with row_lock(slow.url, slow.registration_id):
        outcome = timed("rename", lambda: slow.client.patch(slow.path, json={"endpoint_name": "Too slow"}))
        assert_unavailable(outcome)
        assert COMMAND_TIMEOUT <= outcome.elapsed < COMMAND_TIMEOUT + MARGIN, outcome
        assert not slow.app_waits_on_a_lock()
        # Reads do not wait for a row lock: the one pooled connection answers while it is held.
        assert slow.client.get(slow.path).json()["endpoint_name"] != "Too slow"

    renamed = slow.client.patch(slow.path, json={"endpoint_name": "In time"})
    assert (renamed.status_code, renamed.json()["endpoint_name"]) == (200, "In time")
    audit = Sql(slow.url).fetch("SELECT action FROM audit_log WHERE registration_id = $1 ORDER BY log_id",
                                uuid.UUID(slow.registration_id))
    assert [entry["action"] for entry in audit] == ["Created", "Updated"]
    assert slow.app_sessions() == sessions


def test_a_read_stuck_behind_a_table_lock_is_503_and_the_connection_serves_the_next_requests(
    slow: SlowSetup,
) -> None:
    sessions = slow.app_sessions()
    assert len(sessions) == 1
    with table_lock(slow.url):
        outcome = timed("list", lambda: slow.client.get("/registrations"))
        assert_unavailable(outcome)
        assert COMMAND_TIMEOUT <= outcome.elapsed < COMMAND_TIMEOUT + MARGIN, outcome
        assert not slow.app_waits_on_a_lock()

    listed = slow.client.get("/registrations")
    assert (listed.status_code, [item["registration_id"] for item in listed.json()["results"]]) == (
        200, [slow.registration_id])
    assert slow.client.get(slow.path).status_code == 200
    assert slow.app_sessions() == sessions
