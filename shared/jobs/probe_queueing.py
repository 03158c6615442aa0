"""Probe queueing, the outlet's first consumer: a create or an edit (a new revision) queues a probe
of the new revision, and publishing a revision (an approval, a rollback to another revision) makes
the registration due now, so the published revision is probed and its baseline taken without
waiting for the round to come round.

The entries that do it, and what each does to `probe_queue` (the rule migrations 0004 and 0005 held
in triggers on `registrations`, which 0008 dropped):

| entry | changed in the registration row | queue |
|---|---|---|
| `Created`, `Updated` | a new `revision` | due, `queued` (probe the latest revision) |
| `Approved` | a new `published_revision` | due |
| `Published` naming another revision than `previous_revision` | a new `published_revision` | due |

"Due" is due at the entry's `timestamp`, which is the `now()` of the transaction that wrote it, as
the triggers had it; so the round's claim (`due_at <= the round's start`) takes it, and recording
a probe compares it with the probe's `checked_at` as before. An entry older than the registration's
last probe (`last_checked_at`) is passed over: that probe already did what it asked, as it would
have cleared the triggers' mark had they queued it at the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.events import Consumer, Event

NEW_REVISION = frozenset({"Created", "Updated"})

# $1 registrations, $2 the times of their entries, $3 whether each made a new revision (one
# element per entry). A registration's entries make one upsert: the latest time, `queued` when any
# made a revision. The conflict clause reads the row as it is now, so a probe recorded since the
# entries were read still passes them over.
_QUEUE = """
WITH entries AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::boolean[]) AS e (registration_id, at, new_revision)
), due AS (
    SELECT e.registration_id, max(e.at) AS due_at, bool_or(e.new_revision) AS queued
    FROM entries AS e LEFT JOIN probe_queue AS q USING (registration_id)
    WHERE q.last_checked_at IS NULL OR q.last_checked_at < e.at
    GROUP BY e.registration_id
)
INSERT INTO probe_queue AS q (registration_id, due_at, queued)
SELECT registration_id, due_at, queued FROM due ORDER BY registration_id
ON CONFLICT (registration_id) DO UPDATE SET due_at = excluded.due_at, queued = q.queued OR excluded.queued
WHERE q.last_checked_at IS NULL OR q.last_checked_at < excluded.due_at
"""


def queues(event: Event) -> bool | None:
    """Whether the entry queues a probe of a new revision (True), makes the registration due (False),
    or neither (None)."""
    if event.action in NEW_REVISION:
        return True
    if event.action == "Approved":
        return False
    if event.action == "Published" and event.metadata.get("previous_revision") != event.revision:
        return False
    return None


async def queue_probes(connection: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Writes: `probe_queue` (one row per registration named: `due_at`, `queued`)."""
    chosen = [(event, new_revision) for event in events if (new_revision := queues(event)) is not None]
    if not chosen:
        return
    await connection.execute(_QUEUE, [event.registration_id for event, _ in chosen],
                             [event.timestamp for event, _ in chosen], [new_revision for _, new_revision in chosen])


CONSUMER = Consumer(name="probe_queueing", handle=queue_probes)
