"""Ten times more concurrent requests than pool connections, two of them stuck behind a row lock:
each is served or refused with 503 within the acquire timeout, and the pool recovers."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.faults.fault_kit import Outcome, assert_unavailable, row_lock, timed
from tests.registry import submit
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority

HostFactory = Callable[[Mapping[str, str]], RunningHost]

POOL_SIZE = 2
REQUESTS = 10 * POOL_SIZE
ACQUIRE_TIMEOUT = 1.0
# What a refused request may take beyond the acquire timeout on a busy two-core machine.
MARGIN = 1.0
# Long enough that every request not holding a connection has given up waiting for one.
HOLD_SECONDS = ACQUIRE_TIMEOUT + MARGIN + 1.0


def test_an_exhausted_pool_answers_503_in_time_and_recovers(
    postgres: PostgresCluster, authority: DevAuthority, host_factory: HostFactory,
    make_caller: Callable[..., Caller],
) -> None:
    url = postgres.migrated_database()
    host = host_factory(app_environment(url, authority, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE=str(POOL_SIZE),
                                        DB_ACQUIRE_TIMEOUT=str(ACQUIRE_TIMEOUT)))
    caller = make_caller()
    with httpx.Client(base_url=host.base_url, headers=caller.headers, timeout=30) as client:
        registration_id = submit(client, caller)["registration_id"]
        path = f"/registrations/{registration_id}"

        def rename(number: int) -> Outcome:
            return timed("rename", lambda: client.patch(path, json={"endpoint_name": f"Renamed {number}"}))

        with ThreadPoolExecutor(max_workers=REQUESTS) as threads, row_lock(url, registration_id) as lock:
            pending = [threads.submit(rename, number) for number in range(REQUESTS)]
            time.sleep(HOLD_SECONDS)
            released = time.monotonic()
            lock.release()
            outcomes = [future.result() for future in pending]

        # Two requests hold the two connections and wait for the lock; every other one gives up
        # waiting for a connection after the acquire timeout.
        assert Counter(outcome.status for outcome in outcomes) == Counter({200: POOL_SIZE, 503: REQUESTS - POOL_SIZE})
        for outcome in outcomes:
            if outcome.status == 503:
                assert_unavailable(outcome)
                assert ACQUIRE_TIMEOUT <= outcome.elapsed < ACQUIRE_TIMEOUT + MARGIN, outcome
            else:
                assert outcome.finished >= released, outcome

        # The blocked writes went through one after the other once the lock was gone; the
        # refused ones left nothing behind.
        audit = Sql(url).fetch("SELECT action FROM audit_log WHERE registration_id = $1 ORDER BY log_id",
                               uuid.UUID(registration_id))
        assert [entry["action"] for entry in audit] == ["Created"] + ["Updated"] * POOL_SIZE

        assert client.get(path).status_code == 200
        assert client.patch(path, json={"endpoint_name": "After the lock"}).status_code == 200
        assert client.get("/registrations").status_code == 200
