"""The event outlet (shared/events.py) on a real PostgreSQL: a transaction that commits late is
never skipped, concurrent drains never hand an entry over twice, partial batches resume exactly,
and probe queueing consumes the entries that the dropped triggers reacted to.

Entries are written as the owner (the integrity checks of 0006 bind the app's role, and these
tests are about order, not about who wrote them); every drain runs as the app's role, with its
grants, as the timer's round does.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence

import asyncpg
import pytest

from shared import events
from shared.events import Consumer, Event
from shared.jobs import probe_queueing
from tests.support import APP_PASSWORD, APP_ROLE, PostgresCluster, Sql, app_database, run, with_user

_ENTRY = ("INSERT INTO audit_log (registration_id, user_id, action, previous_status, new_status, revision, metadata) "
          "VALUES ($1, $2, $3, NULL, 'Pending', $4, $5) RETURNING log_id")


@pytest.fixture(scope="module")
def owner_url(postgres: PostgresCluster) -> str:
    # A database of its own: a consumer here is handed every entry written after it enrolled.
    return postgres.migrated_database("registry_events")


@pytest.fixture(scope="module")
def registration(owner_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    sql = Sql(owner_url)
    user_id, registration_id, tag = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().hex[:10]
    sql.execute("INSERT INTO users (user_id, entra_id, display_name) VALUES ($1, $2, 'Events')", user_id,
                str(uuid.uuid4()))
    sql.execute("""INSERT INTO registrations (registration_id, endpoint_name, endpoint_url, owner_contact, submitter_id,
                   server_name) VALUES ($1, 'Events', $2, 'ops@contoso.com', $3, $4)""",
                registration_id, f"https://mcp-{tag}.contoso.com/events", user_id, f"com.contoso/events-{tag}")
    return registration_id, user_id


class Recorder:
    """A consumer that keeps what it was handed, in order."""

    def __init__(self, name: str) -> None:
        self.handed: list[int] = []
        self.consumer = Consumer(name=name, handle=self.handle)

    async def handle(self, connection: asyncpg.Connection, batch: Sequence[Event]) -> None:
        self.handed.extend(event.log_id for event in batch)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _write(connection: asyncpg.Connection, registration: tuple[uuid.UUID, uuid.UUID], action: str = "Updated",
                 *, revision: int = 1, metadata: str = "{}") -> int:
    registration_id, user_id = registration
    log_id: int = await connection.fetchval(_ENTRY, registration_id, user_id, action, revision, metadata)
    return log_id


async def _settle(connection: asyncpg.Connection) -> None:
    """Until every transaction that wrote an entry has ended. The horizon is cluster-wide: a
    transaction of another test's database may hold it back for a moment (this is only a guard)."""
    newest = int(await connection.fetchval("SELECT coalesce(max(xact), '0')::text FROM audit_log"))
    deadline = asyncio.get_running_loop().time() + 60
    while int(await connection.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")) <= newest:
        assert asyncio.get_running_loop().time() < deadline, "a transaction stayed open for a minute"
        await asyncio.sleep(0.05)


def test_an_entry_of_a_transaction_that_commits_late_is_not_skipped(
        owner_url: str, registration: tuple[uuid.UUID, uuid.UUID]) -> None:
    recorder = Recorder(_name("late"))

    async def scenario() -> None:
        db = app_database(owner_url)
        first, second = await asyncpg.connect(owner_url), await asyncpg.connect(owner_url)
        try:
            assert await events.drain_all(db=db, consumer=recorder.consumer) == 0  # enrolled: from here on
            late = first.transaction()
            await late.start()
            early_id = await _write(first, registration)  # T1 writes and stays open
            async with second.transaction():
                committed_id = await _write(second, registration)  # T2 writes after it and commits first
            # While T1 is open the horizon stays at its id: T2's entry waits too, since a cursor past
            # it would step over T1's.
            assert await events.drain_all(db=db, consumer=recorder.consumer) == 0
            assert recorder.handed == []
            await late.commit()
            await _settle(second)
            assert await events.drain_all(db=db, consumer=recorder.consumer) == 2
            assert await events.drain_all(db=db, consumer=recorder.consumer) == 0
            assert recorder.handed == [early_id, committed_id]
        finally:
            await first.close()
            await second.close()
            await db.close()

    run(scenario())


def test_a_rolled_back_entry_holds_nothing_back(owner_url: str, registration: tuple[uuid.UUID, uuid.UUID]) -> None:
    recorder = Recorder(_name("rollback"))

    async def scenario() -> None:
        db = app_database(owner_url)
        connection = await asyncpg.connect(owner_url)
        try:
            await events.drain_all(db=db, consumer=recorder.consumer)
            aborted = connection.transaction()
            await aborted.start()
            await _write(connection, registration)
            await aborted.rollback()
            kept = await _write(connection, registration)
            await _settle(connection)
            assert await events.drain_all(db=db, consumer=recorder.consumer) == 1
            assert recorder.handed == [kept]
        finally:
            await connection.close()
            await db.close()

    run(scenario())


def test_concurrent_drains_never_hand_an_entry_over_twice_and_batches_resume_exactly(
        owner_url: str, registration: tuple[uuid.UUID, uuid.UUID]) -> None:
    name = _name("concurrent")
    handed: list[int] = []
    holding, skipped = asyncio.Event(), asyncio.Event()

    async def hold_first_batch(connection: asyncpg.Connection, batch: Sequence[Event]) -> None:
        handed.extend(event.log_id for event in batch)
        if not holding.is_set():
            holding.set()
            await skipped.wait()  # until the other drain has found the consumer taken

    consumer = Consumer(name=name, handle=hold_first_batch)

    async def scenario() -> None:
        one, other = app_database(owner_url), app_database(owner_url)
        connection = await asyncpg.connect(owner_url)
        try:
            await events.drain_all(db=one, consumer=consumer)
            written = [await _write(connection, registration) for _ in range(7)]
            await _settle(connection)
            first = asyncio.create_task(events.drain(db=one, consumer=consumer, batch=3))
            await holding.wait()
            # The consumer's row is locked by the first drain: the second has nothing to do.
            assert await events.drain(db=other, consumer=consumer, batch=3) is None
            skipped.set()
            assert await first == 3
            # Both at once now, in batches of two: each entry once, in order, whoever drains it.
            await asyncio.gather(events.drain_all(db=one, consumer=consumer, batch=2),
                                 events.drain_all(db=other, consumer=consumer, batch=2))
            await events.drain_all(db=other, consumer=consumer, batch=2)
            assert handed == written
        finally:
            await connection.close()
            await one.close()
            await other.close()

    run(scenario())


def test_the_cursor_stops_after_a_full_batch_and_resumes_after_it(
        owner_url: str, registration: tuple[uuid.UUID, uuid.UUID]) -> None:
    recorder = Recorder(_name("batches"))
    sql = Sql(owner_url)

    async def scenario() -> list[int]:
        db = app_database(owner_url)
        connection = await asyncpg.connect(owner_url)
        try:
            await events.drain_all(db=db, consumer=recorder.consumer)
            written = [await _write(connection, registration) for _ in range(5)]
            await _settle(connection)
            assert [await events.drain(db=db, consumer=recorder.consumer, batch=2) for _ in range(4)] == [2, 2, 1, 0]
            return written
        finally:
            await connection.close()
            await db.close()

    written = run(scenario())
    assert recorder.handed == written
    cursor = sql.fetchrow("SELECT horizon::text AS horizon, log_id FROM event_consumers WHERE name = $1",
                          recorder.consumer.name)
    assert cursor is not None
    # After a batch that held all there was, the cursor is a horizon (log_id 0), at or past every entry.
    assert cursor["log_id"] == 0
    assert int(cursor["horizon"]) > sql.fetchval("SELECT max(xact)::text::bigint FROM audit_log")


def test_an_entry_carries_its_own_transactions_id(owner_url: str, registration: tuple[uuid.UUID, uuid.UUID]) -> None:
    as_app = Sql(with_user(owner_url, APP_ROLE, APP_PASSWORD))
    registration_id, _ = registration
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="carries the id of the transaction"):
        as_app.execute("INSERT INTO audit_log (registration_id, user_id, action, revision, xact) "
                       "VALUES ($1, NULL, 'Drifted', 1, '3')", registration_id)


@pytest.mark.parametrize(("action", "metadata", "queued"), [
    ("Created", "{}", (True, True)),
    ("Updated", "{}", (True, True)),
    ("Approved", "{}", (False, True)),
    ("Published", '{"previous_revision": 1}', (False, True)),
    # Published again while it is the published revision: nothing changed, as the trigger had it.
    ("Published", '{"previous_revision": 2}', None),
    ("Rejected", "{}", None),
    ("Deprecated", "{}", None),
    ("Deleted", "{}", None),
])
def test_probe_queueing_queues_what_the_triggers_queued(
        owner_url: str, action: str, metadata: str, queued: tuple[bool, bool] | None) -> None:
    sql = Sql(owner_url)
    user_id, registration_id, tag = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().hex[:10]
    sql.execute("INSERT INTO users (user_id, entra_id, display_name) VALUES ($1, $2, 'Queue')", user_id,
                str(uuid.uuid4()))
    sql.execute("""INSERT INTO registrations (registration_id, endpoint_name, endpoint_url, owner_contact, submitter_id,
                   server_name) VALUES ($1, 'Queue', $2, 'ops@contoso.com', $3, $4)""",
                registration_id, f"https://mcp-{tag}.contoso.com/queue", user_id, f"com.contoso/queue-{tag}")
    # No trigger queues anything: the write alone leaves the queue as it was.
    assert sql.fetchval("SELECT count(*) FROM probe_queue WHERE registration_id = $1", registration_id) == 0
    sql.execute(_ENTRY.replace(" RETURNING log_id", ""), registration_id, user_id, action, 2, json.loads(metadata))
    written_at = sql.fetchval("SELECT max(\"timestamp\") FROM audit_log WHERE registration_id = $1", registration_id)

    async def drain() -> None:
        db, connection = app_database(owner_url), await asyncpg.connect(owner_url)
        try:
            await _settle(connection)
            await events.drain_all(db=db, consumer=probe_queueing.CONSUMER)
        finally:
            await connection.close()
            await db.close()

    run(drain())
    row = sql.fetchrow("SELECT queued, due_at FROM probe_queue WHERE registration_id = $1", registration_id)
    if queued is None:
        assert row is None
        return
    assert row is not None
    assert (row["queued"], row["due_at"] is not None) == queued
    # Due at the write's own time, as the trigger's now() was.
    assert row["due_at"] == written_at
