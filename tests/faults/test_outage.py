"""PostgreSQL goes away under load and comes back: every request answers in time, the app heals
without a restart, and no registration is lost or half written."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import pytest

from tests.faults.fault_kit import Load, Outcome, assert_unavailable
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority
from tools.pgserver import PgServer

HostFactory = Callable[[Mapping[str, str]], RunningHost]

# DB_CONNECT_TIMEOUT and DB_ACQUIRE_TIMEOUT of the host (1 s each) with room for a busy machine:
# answering in time while the database is gone is the feature under test.
ANSWER_WITHIN_SECONDS = 4.0
# Each phase lasts a number of answers, not a stretch of time, so the test sees the same story on
# a fast machine and on a loaded one: successes before the stop, refusals while the server is
# down, and successes after the first one that follows the restart (to see it was no fluke).
THREADS = 3
SUCCESSES_BEFORE = 6
ANSWERS_WHILE_DOWN = 10
ANSWERS_AFTER_RECOVERY = 6


def describe(outcomes: list[Outcome]) -> str:
    return ", ".join(f"{o.action} {o.status} in {o.elapsed:.2f}s" for o in outcomes[:10])


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_an_outage_under_load_answers_503_in_time_heals_and_loses_nothing(
    mode: str, dedicated_server: PgServer, authority: DevAuthority, host_factory: HostFactory,
    make_caller: Callable[..., Caller],
) -> None:
    server = dedicated_server
    server.start()
    url = PostgresCluster(server.url, server).migrated_database()
    # PgServer trades durability for speed (synchronous_commit=off), so an immediate stop could
    # lose commits already answered 201; production commits synchronously, and so does this test.
    Sql(url).execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit = on')
    host = host_factory(app_environment(url, authority, DB_CONNECT_TIMEOUT="1", DB_ACQUIRE_TIMEOUT="1"))
    # A submitter per thread: one submitter's load would meet MAX_PENDING_PER_USER (429).
    submitters = [make_caller() for _ in range(THREADS)]

    with Load(host.base_url, [submitter.headers for submitter in submitters]) as load:
        load.wait_for(lambda o: o.succeeded, SUCCESSES_BEFORE, what="succeeding before the outage")
        stopping = time.monotonic()
        server.stop(mode)
        down = time.monotonic()
        load.wait_for(lambda o: o.started >= down, ANSWERS_WHILE_DOWN, what="to requests sent while down")
        starting = time.monotonic()
        server.start()
        up = time.monotonic()
        first = load.wait_for(lambda o: o.started >= up and o.succeeded, 1, what="succeeding after the restart")
        recovered = min(o.finished for o in first)
        load.wait_for(lambda o: o.started >= recovered, ANSWERS_AFTER_RECOVERY, what="after the recovery")
    outcomes = sorted(load.outcomes, key=lambda outcome: outcome.started)

    # Nothing hangs, nothing is a bug, nothing is left without an answer, whatever the phase.
    wrong = [o for o in outcomes if o.status not in (200, 201, 503) or o.elapsed >= ANSWER_WITHIN_SECONDS]
    assert wrong == [], describe(wrong)
    for outcome in outcomes:
        if outcome.status == 503:
            assert_unavailable(outcome)

    before = [o for o in outcomes if o.finished < stopping]
    during = [o for o in outcomes if o.started >= down and o.finished < starting]
    assert len(before) >= SUCCESSES_BEFORE
    assert all(o.succeeded for o in before), describe([o for o in before if not o.succeeded])
    assert len(during) >= ANSWERS_WHILE_DOWN, describe(during)
    assert {o.status for o in during} == {503}

    # The app healed by itself: every request sent after the first success went through.
    settled = [o for o in outcomes if o.started >= recovered]
    assert len(settled) >= ANSWERS_AFTER_RECOVERY
    assert all(o.succeeded for o in settled), describe([o for o in settled if not o.succeeded])
    assert host.process.poll() is None

    assert_nothing_lost_or_half_written(Sql(url), outcomes)


def assert_nothing_lost_or_half_written(sql: Sql, outcomes: list[Outcome]) -> None:
    creates = [o for o in outcomes if o.action == "create"]
    answered_201 = {o.json()["registration_id"] for o in creates if o.status == 201}
    sent_urls = {o.endpoint_url for o in creates}
    failed_urls = {o.endpoint_url for o in creates if o.status == 503}

    rows = sql.fetch("""
        SELECT r.registration_id::text, r.endpoint_url, count(a.log_id) FILTER (WHERE a.action = 'Created') AS created
        FROM registrations r LEFT JOIN audit_log a ON a.registration_id = r.registration_id
        GROUP BY r.registration_id, r.endpoint_url
    """)
    stored = {row["registration_id"]: row["endpoint_url"] for row in rows}
    # Every 201 is kept, with exactly one Created entry; so is every row, 201 or not.
    assert answered_201 <= set(stored)
    assert [row["registration_id"] for row in rows if row["created"] != 1] == []
    assert sql.fetchval("""
        SELECT count(*) FROM audit_log a
        WHERE NOT EXISTS (SELECT 1 FROM registrations r WHERE r.registration_id = a.registration_id)
    """) == 0
    # A row without a 201 is only possible for a request whose answer was lost with the server
    # (committed, then the connection died before the reply): it is whole, and it was a 503.
    unanswered = {url for registration_id, url in stored.items() if registration_id not in answered_201}
    assert unanswered <= failed_urls
    assert set(stored.values()) <= sent_urls
