"""The event outlet: audit entries are the events; each consumer reads them through its own cursor.

Every write records what happened as audit entries in its own statement. Nothing else is written
for the rest of the system: probe queueing (and next the feed snapshot, client policy documents,
notifications) are consumers that read those entries after they commit, never inside the
request's transaction and never through a trigger.

A consumer is one module: a `Consumer` (a name and a `handle` coroutine) and the job that drains
it (`drain_all`) before it needs what the consumer writes. Its row in `event_consumers` is its
cursor, made by its first drain at the horizon of that moment (it sees what is written from then
on; one that must see older entries gets its row from a migration).

Why the horizon is the snapshot's xmin. `log_id` is taken when an entry is inserted, not when its
transaction commits: a transaction that inserted log_id 10 and commits after another that inserted
log_id 11 would be skipped by a cursor over log_id that had already moved past 11. So each entry
also carries `xact`, the id of the transaction that wrote it (`pg_current_xact_id()`, 64 bits:
it never wraps). `pg_snapshot_xmin(pg_current_snapshot())` is the oldest transaction still running
when the drain looks: every transaction below it has ended (its entries are all visible or were
rolled back), and every entry still to come has an `xact` at or above it (a running transaction
has an id at or above xmin; one that has none yet gets a higher one). Entries with `xact` below
that horizon are therefore final, and reading them in (xact, log_id) order after the cursor misses
none and sees none twice. The price: a transaction that stays open holds every consumer back
until it ends (it never makes one skip).

Draining, in one transaction: lock the consumer's row (`FOR UPDATE SKIP LOCKED`: another worker
draining it means nothing to do here), take the horizon, read up to `batch` entries after the
cursor and below the horizon, hand them to the consumer, and move the cursor: to (horizon, 0)
when the batch held all there was, else to the last entry handed over, so a partial batch resumes
exactly after it. A consumer that writes only to the database does so on the drain's connection,
in that transaction, so its writes and the cursor commit together: exactly once. A consumer never
talks to the network here (the transaction is open): outbound work (webhooks) is written as rows
here and sent by a job after the commit, at least once, since a send can succeed and recording it
fail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db import Database

logger = logging.getLogger(__name__)

# Entries one drain hands to its consumer; a backlog takes several drains.
BATCH = 1000

# Made at the horizon of now, for a consumer drained for the first time.
_ENROL = """
INSERT INTO event_consumers (name, horizon) VALUES ($1, pg_snapshot_xmin(pg_current_snapshot()))
ON CONFLICT (name) DO NOTHING
"""

# The consumer's row, locked, and up to $2 entries after its cursor and below the horizon. No row
# at all: another worker holds the consumer. The horizon never moves back (xmin only grows; the
# cursor may already stand at a horizon taken by a later snapshot than this statement's).
_READ = """
WITH consumer AS (
    SELECT horizon, log_id FROM event_consumers WHERE name = $1 FOR UPDATE SKIP LOCKED
), bounds AS (
    SELECT horizon, log_id, greatest(horizon, pg_snapshot_xmin(pg_current_snapshot())) AS next FROM consumer
)
SELECT b.next::text AS next, e.xact::text AS xact, e.log_id, e.registration_id, e.user_id, e.action,
       e.previous_status, e.new_status, e.revision, e.metadata, e."timestamp"
FROM bounds AS b
LEFT JOIN LATERAL (
    SELECT * FROM audit_log AS e
    WHERE (e.xact, e.log_id) > (b.horizon, b.log_id) AND e.xact < b.next
    ORDER BY e.xact, e.log_id
    LIMIT $2
) AS e ON true
ORDER BY e.xact, e.log_id
"""

_MOVE = "UPDATE event_consumers SET horizon = $2::text::xid8, log_id = $3 WHERE name = $1"


@dataclass(frozen=True, slots=True)
class Event:
    """One audit entry, as a consumer receives it."""

    log_id: int
    xact: int
    registration_id: UUID
    user_id: UUID | None
    action: str
    previous_status: str | None
    new_status: str | None
    revision: int
    metadata: dict[str, Any]
    timestamp: datetime


Handler = Callable[[asyncpg.Connection, Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A reader of the outlet: `handle` gets each batch of events, in order, on the drain's
    connection inside its transaction; it writes only to the database there."""

    name: str
    handle: Handler


async def drain(*, db: Database, consumer: Consumer, batch: int = BATCH) -> int | None:
    """Hand the consumer the next entries (at most `batch`) and move its cursor, in one
    transaction; how many it got, or None when another worker holds the consumer."""
    async with db.connection() as connection, connection.transaction():
        await connection.execute(_ENROL, consumer.name)
        rows = await connection.fetch(_READ, consumer.name, batch)
        if not rows:
            return None
        events = [_event(row) for row in rows if row["log_id"] is not None]
        if events:
            await consumer.handle(connection, events)
        if len(events) < batch:
            horizon, log_id = rows[0]["next"], 0
        else:
            horizon, log_id = rows[-1]["xact"], rows[-1]["log_id"]
        await connection.execute(_MOVE, consumer.name, horizon, log_id)
        return len(events)


async def drain_all(*, db: Database, consumer: Consumer, batch: int = BATCH) -> int:
    """Drain until the consumer has had every entry below the horizon; how many it got. Returns
    early when another worker is draining it (that worker goes on)."""
    total = 0
    while True:
        handed = await drain(db=db, consumer=consumer, batch=batch)
        if handed is None:
            return total
        total += handed
        if handed < batch:
            return total


def _event(row: asyncpg.Record) -> Event:
    return Event(log_id=row["log_id"], xact=int(row["xact"]), registration_id=row["registration_id"],
                 user_id=row["user_id"], action=row["action"], previous_status=row["previous_status"],
                 new_status=row["new_status"], revision=row["revision"], metadata=row["metadata"],
                 timestamp=row["timestamp"])
