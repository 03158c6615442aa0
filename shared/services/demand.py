"""Demand: the server names clients look up in the feed that no registration publishes.

Each 404 of `GET …/servers/{name}/versions…` for a name nothing publishes is what a client sends
for a server a developer configured by hand. The feed is anonymous, so what is kept is bounded:
- only names the server_name rule admits are counted (`is_server_name`), as sent;
- at most DAILY_NAMES distinct names a UTC day, per instance in memory and across instances in
  the table (the flush admits no new name to a full day; two flushes of the same instant may each
  fill the same free room, so concurrent instances can overshoot by what they flush at once);
- counts wait in memory and are written in one statement at most every DEMAND_FLUSH_SECONDS, by
  the request that finds the flush due: never a write per lookup. A flush the database refuses
  keeps its counts for the next one (still within the bound); an instance that stops loses at
  most one interval of counts, which is the price of writing nothing per request;
- the flush drops days older than MAX_DAYS, the longest window the API reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from shared.config import get_settings
from shared.db import UNAVAILABLE_ERRORS, Database, database
from shared.errors import ServiceUnavailable
from shared.schemas.feed import is_server_name
from shared.sql import Statement

log = logging.getLogger(__name__)

DAILY_NAMES = 10_000
MAX_DAYS = 90
_DOWN: tuple[type[BaseException], ...] = (ServiceUnavailable, *UNAVAILABLE_ERRORS)

# One statement per flush: the batch's known names add to their day, new names fill what is left
# of their day's DAILY_NAMES (most asked first), and days past MAX_DAYS go.
FLUSH = Statement(f"""
WITH batch AS (
    SELECT * FROM unnest(:days::date[], :names::text[], :counts::bigint[], :seen::timestamptz[])
        AS b (day, name, count, last_seen)
), marked AS (
    SELECT b.*, d.name IS NOT NULL AS known FROM batch AS b
    LEFT JOIN feed_demand AS d ON d.day = b.day AND d.name = b.name
), room AS (
    SELECT days.day, {DAILY_NAMES} - (SELECT count(*) FROM feed_demand AS d WHERE d.day = days.day) AS free
    FROM (SELECT DISTINCT day FROM batch) AS days
), admitted AS (
    SELECT m.day, m.name, m.count, m.last_seen FROM (
        SELECT m.*, row_number() OVER (PARTITION BY m.day, m.known ORDER BY m.count DESC, m.name) AS rank
        FROM marked AS m
    ) AS m JOIN room AS r USING (day)
    WHERE m.known OR m.rank <= r.free
), pruned AS (
    DELETE FROM feed_demand WHERE day < (now() AT TIME ZONE 'UTC')::date - {MAX_DAYS}
)
INSERT INTO feed_demand AS d (day, name, count, last_seen)
SELECT day, name, count, last_seen FROM admitted
ON CONFLICT (day, name) DO UPDATE
SET count = d.count + excluded.count, last_seen = greatest(d.last_seen, excluded.last_seen)
""")

# Most asked first over the window, with what a registration by that name is here: null (none),
# pending, rejected (its latest revision bears the name and awaits review or was refused), deleted.
# Names published since they were asked for are no longer demand and are left out.
PAGE = Statement("""
SELECT t.name, t.count, t.last_seen,
       CASE WHEN live.status = 'Pending' THEN 'pending'
            WHEN live.status = 'Rejected' THEN 'rejected'
            WHEN gone.yes THEN 'deleted' END AS state
FROM (
    SELECT name, sum(count)::bigint AS count, max(last_seen) AS last_seen FROM feed_demand
    WHERE day > (now() AT TIME ZONE 'UTC')::date - :days::integer
    GROUP BY name
) AS t
LEFT JOIN LATERAL (
    SELECT r.status FROM registrations AS r
    WHERE r.server_name = t.name AND r.deleted_at IS NULL
    ORDER BY r.status = 'Pending' DESC, r.created_at DESC LIMIT 1
) AS live ON true
CROSS JOIN LATERAL (
    SELECT EXISTS (SELECT 1 FROM registrations AS r WHERE r.server_name = t.name AND r.deleted_at IS NOT NULL) AS yes
) AS gone
WHERE NOT EXISTS (
    SELECT 1 FROM registrations AS r
    WHERE r.published_server_name COLLATE "C" = t.name AND r.published_revision IS NOT NULL AND r.deleted_at IS NULL
)
ORDER BY t.count DESC, t.name
LIMIT :limit OFFSET :offset
""")


@dataclass(slots=True)
class _Tally:
    count: int
    last_seen: datetime


class DemandCounter:
    """The unknown names one process counted since its last flush."""

    def __init__(self, db: Database, flush_seconds: Callable[[], float], *, daily_names: int = DAILY_NAMES) -> None:
        self._db = db
        self._flush_seconds = flush_seconds
        self._daily_names = daily_names
        # The names admitted today (the day's bound) and the counts not yet written.
        self._day: date | None = None
        self._admitted: set[str] = set()
        self._pending: dict[tuple[date, str], _Tally] = {}
        self._due: float | None = None
        self.refused = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def count(self, name: str, now: datetime | None = None) -> bool:
        """Count one lookup of an unpublished name; False when the name is not counted."""
        if not is_server_name(name):
            return False
        now = now or datetime.now(UTC)
        day = now.date()
        if day != self._day:
            self._day, self._admitted = day, set()
            # Counts of an earlier day that a refused flush kept: only yesterday's, so at most two days wait.
            self._pending = {key: tally for key, tally in self._pending.items() if (day - key[0]).days <= 1}
        if name not in self._admitted:
            if len(self._admitted) >= self._daily_names:
                self.refused += 1
                return False
            self._admitted.add(name)
        tally = self._pending.get((day, name))
        if tally is None:
            self._pending[(day, name)] = _Tally(1, now)
        else:
            tally.count, tally.last_seen = tally.count + 1, now
        if self._due is None:
            self._due = time.monotonic() + self._flush_seconds()
        return True

    def due(self) -> bool:
        return self._due is not None and time.monotonic() >= self._due

    async def flush(self) -> int:
        """Write the pending counts in one statement; the number of names written (0 when it failed)."""
        batch, self._pending, self._due = self._pending, {}, None
        if not batch:
            return 0
        keys = list(batch)
        try:
            await self._db.fetch(FLUSH.sql, *FLUSH(
                days=[day for day, _ in keys], names=[name for _, name in keys],
                counts=[batch[key].count for key in keys], seen=[batch[key].last_seen for key in keys]))
        except _DOWN as error:
            log.warning("demand counts kept for the next flush, the database is unavailable: %s",
                        type(error).__name__)
            for key, tally in batch.items():
                held = self._pending.setdefault(key, _Tally(0, tally.last_seen))
                held.count += tally.count
                held.last_seen = max(held.last_seen, tally.last_seen)
            self._due = time.monotonic() + self._flush_seconds()
            return 0
        return len(keys)

    async def flush_if_due(self) -> None:
        if self.due():
            await self.flush()

    def reset(self) -> None:
        self._day, self._admitted, self._pending, self._due, self.refused = None, set(), {}, None, 0


async def page(*, db: Database, days: int, limit: int, offset: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(PAGE.sql, *PAGE(days=days, limit=limit, offset=offset))
    return rows


def _flush_seconds() -> float:
    return get_settings().demand_flush_seconds


# The process's counter, as shared.db.database is its pool.
demand = DemandCounter(database, _flush_seconds)
