"""The feed answered from memory: a snapshot of the published catalogue, checked for changes by one
cheap statement at most every FEED_SNAPSHOT_MAX_AGE seconds.

`shared.services.feed` stays the reference: its statements are what the feed means, and the
functions here answer exactly what they would from the rows the snapshot holds (the tests hold
the two side by side on generated catalogues). The snapshot is those rows as the database path
returns them, loaded by the statements of that module (`EVERY_PUBLISHED`, `EVERY_VERSION`):
- every row ever published (live or departed), in the catalogue's order (name in byte order, id)
  and in the sync order (`updated_at`, id), so a page is a bisection and a slice;
- every approved version of each live server, by name.
Its size is bounded by the tables: one entry per published registration and one per approved
version string of a live one, never more (nothing else is cached here).

Whether anything changed is told by three positions, each the head of an index: the audit trail
(every change of the catalogue writes an entry: publication, deprecation, deletion, acceptance),
`published_updated_at` (the time of public change, which a write outside the app moves too) and
the probe queue's `last_checked_at` (a probe changes the `_meta` attestation without an audit
entry). Identity
values and probe times are taken before commit, so a transaction can commit with a smaller
`log_id` or time than one already seen; the marker therefore also counts (sums) a short window
behind the newest position, which such a late commit changes. The marker is a function of the
tables alone, so an unchanged catalogue always gives the same one. Any audit entry reloads the
catalogue, a submission awaiting review included: a full load is one statement, and rarer than
the reads it saves.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared.config import get_settings
from shared.db import UNAVAILABLE_ERRORS, Database, database
from shared.errors import NotFound, ServiceUnavailable
from shared.schemas.common import has_control_characters
from shared.schemas.feed import LATEST, FeedCursor, FeedQuery, is_server_name
from shared.services.feed import EVERY_PUBLISHED, EVERY_VERSION, SERVER_NOT_FOUND
from shared.sql import Statement

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
_DOWN: tuple[type[BaseException], ...] = (ServiceUnavailable, *UNAVAILABLE_ERRORS)
Source = Literal["database", "memory", "blob", "none"]
# How far behind the newest position a late commit is still noticed: more audit entries than
# commit concurrently, longer than a probe takes between its time and its commit.
EVENT_WINDOW = 1024
CHANGE_WINDOW_SECONDS = 120
PROBE_WINDOW_SECONDS = 120
# The only characters outside ASCII whose lower case can be ASCII (U+0130 → i, U+212A → k, in
# locales that fold them): server names are ASCII, so a search can match through nothing else.
_FOLDED = ("\u0130", "\u212a")

# The change marker: the heads of three indexes and short windows behind them.
_MARKER_CTE = f"""
WITH newest AS (
    SELECT (SELECT coalesce(max(log_id), 0) FROM audit_log) AS log_id,
           (SELECT max(published_updated_at) FROM registrations WHERE published_at IS NOT NULL) AS changed_at,
           (SELECT max(last_checked_at) FROM probe_queue) AS probed
), marker AS (
    SELECT n.log_id,
           (SELECT count(*) FROM audit_log WHERE log_id > n.log_id - {EVENT_WINDOW}) AS events,
           n.changed_at,
           (SELECT count(*) FROM registrations WHERE published_at IS NOT NULL
            AND published_updated_at > n.changed_at - make_interval(secs => {CHANGE_WINDOW_SECONDS})) AS changes,
           n.probed,
           (SELECT coalesce(sum(extract(epoch FROM last_checked_at)), 0) FROM probe_queue
            WHERE last_checked_at > n.probed - make_interval(secs => {PROBE_WINDOW_SECONDS})) AS probes,
           lower('{_FOLDED[0]}') AS fold_i, lower('{_FOLDED[1]}') AS fold_k
    FROM newest AS n
)"""
# The check, every FEED_SNAPSHOT_MAX_AGE seconds at most: the marker alone.
CHECK = Statement(_MARKER_CTE + "\nSELECT * FROM marker")
# The load, when there is no snapshot or the check found the marker moved: the marker and the whole
# catalogue in one statement, so that both come from one view of the tables.
LOAD = Statement(f"""{_MARKER_CTE}
SELECT m.*, c.* FROM marker AS m
LEFT JOIN (
    SELECT 'published' AS kind, p.registration_id, p.updated_at, p.published_at, p.publication,
           p.publication_message, p.server_name, p.endpoint_name, p.description, p.version, p.transport,
           p.endpoint_url, p.active, p.is_latest, NULL::integer AS revision, p.attestation
    FROM ({EVERY_PUBLISHED}) AS p
    UNION ALL
    SELECT 'version', v.registration_id, v.updated_at, v.published_at, v.publication, v.publication_message,
           v.server_name, v.endpoint_name, v.description, v.version, v.transport, v.endpoint_url, v.active,
           v.is_latest, v.revision, v.attestation
    FROM ({EVERY_VERSION}) AS v
) AS c ON true
""")
_MARKER = ("log_id", "events", "changed_at", "changes", "probed", "probes")
_ROW = ("registration_id", "updated_at", "published_at", "publication", "publication_message", "server_name",
        "endpoint_name", "description", "version", "transport", "endpoint_url", "active", "is_latest", "revision",
        "attestation")


@dataclass(frozen=True, slots=True)
class Marker:
    """Where the catalogue stood when a snapshot was loaded; equal markers, equal catalogues."""

    log_id: int
    events: int | None
    changed_at: datetime | None
    changes: int | None
    probed: datetime | None
    probes: Any



def _lower(text: str, folds: Mapping[str, str]) -> str:
    """lower() as the database applies it to a server name or a search (see _FOLDED)."""
    if text.isascii():
        return text.lower()
    return "".join(folds.get(c, c) if c > "\x7f" else c.lower() for c in text)


def _sync_key(row: Row) -> tuple[datetime, UUID]:
    return row["updated_at"], row["registration_id"]


@dataclass(slots=True)
class Snapshot:
    """The published catalogue at one marker, answering as shared.services.feed does."""

    marker: Marker
    folds: dict[str, str]
    # The catalogue: live rows by name (byte order is code-point order), then id.
    live: list[Row] = field(default_factory=list)
    live_keys: list[tuple[str, UUID]] = field(default_factory=list)
    # Live and departed rows, by name and by time of change.
    every: list[Row] = field(default_factory=list)
    every_keys: list[tuple[str, UUID]] = field(default_factory=list)
    changed: list[Row] = field(default_factory=list)
    changed_keys: list[tuple[datetime, UUID]] = field(default_factory=list)
    versions: dict[str, list[Row]] = field(default_factory=dict)
    departed: dict[str, list[Row]] = field(default_factory=dict)
    # Each list's names in lower case, computed once: a search compares against them.
    lowered: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, marker: Marker, folds: dict[str, str], rows: Sequence[Row]) -> Snapshot:
        # `folds`: the database's lower() of each character of _FOLDED.
        snapshot = cls(marker, folds)
        # A row without a name cannot be answered on either path (ServerDetail requires one).
        published = [row for row in rows if row["kind"] == "published" and row["server_name"] is not None]
        by_name = sorted(published, key=lambda row: (row["server_name"], row["registration_id"]))
        snapshot.every = by_name
        snapshot.every_keys = [(row["server_name"], row["registration_id"]) for row in by_name]
        snapshot.live = [row for row in by_name if row["active"]]
        snapshot.live_keys = [(row["server_name"], row["registration_id"]) for row in snapshot.live]
        # A row with no time of change never satisfies `updated_at > since`.
        snapshot.changed = sorted((row for row in published if row["updated_at"] is not None), key=_sync_key)
        snapshot.changed_keys = [_sync_key(row) for row in snapshot.changed]
        for row in published:
            if not row["active"]:
                snapshot.departed.setdefault(row["server_name"], []).append(row)
        for row in rows:
            if row["kind"] == "version":
                snapshot.versions.setdefault(row["server_name"], []).append(row)
        for entries in snapshot.versions.values():
            entries.sort(key=lambda row: row["revision"])
        for rows_ in (snapshot.every, snapshot.live, snapshot.changed):
            snapshot.lowered[id(rows_)] = [_lower(row["server_name"], folds) for row in rows_]
        for entries in snapshot.departed.values():
            # ORDER BY updated_at DESC (nulls first, as PostgreSQL sorts them descending), registration_id.
            entries.sort(key=lambda row: row["registration_id"])
            entries.sort(key=lambda row: (row["updated_at"] is None, row["updated_at"] or datetime.min), reverse=True)
        return snapshot

    @property
    def size(self) -> int:
        """Entries held: published rows and version rows."""
        return len(self.every) + sum(len(entries) for entries in self.versions.values())

    def list_servers(self, query: FeedQuery) -> tuple[list[Row], FeedCursor | None]:
        """What shared.services.feed.list_servers answers for this query."""
        sync = query.updated_since is not None
        rows: Sequence[Row]
        start = 0
        if sync:
            rows, since = self.changed, query.updated_since
            # `updated_at > since`, and after the cursor's (updated_at, id): both hold from the later start.
            start = bisect.bisect_right(self.changed_keys, since, key=lambda key: key[0])
            if query.cursor is not None:
                start = max(start, bisect.bisect_right(self.changed_keys,
                                                        (query.cursor.after_time, query.cursor.after_id)))
        else:
            departed = bool(query.include_deleted)
            rows, keys = (self.every, self.every_keys) if departed else (self.live, self.live_keys)
            if query.cursor is not None:
                start = bisect.bisect_right(keys, (query.cursor.after_key, query.cursor.after_id))
        search = None if query.search is None else _lower(query.search, self.folds)
        version = None if query.version in (None, LATEST) else query.version
        page: list[Row] = []
        names = self.lowered[id(rows)]
        for index in range(start, len(rows)):
            row = rows[index]
            if search is not None and search not in names[index]:
                continue
            if version is not None and row["version"] != version:
                continue
            page.append(row)
            if len(page) > query.limit:
                break
        if len(page) <= query.limit:
            return page, None
        page = page[: query.limit]
        last = page[-1]
        key = last["updated_at"].isoformat() if sync else last["server_name"]
        return page, FeedCursor(after_key=key, after_id=last["registration_id"], search=query.search,
                                version=query.version, updated_since=query.updated_since,
                                include_deleted=bool(query.include_deleted))

    def publishes(self, name: str) -> bool:
        """Whether a live registration publishes this name (any version)."""
        return name in self.versions

    def _entries(self, name: str, include_deleted: bool) -> list[Row]:
        live = self.versions.get(name, [])
        return [*live, *self.departed.get(name, [])] if include_deleted else live

    def server_versions(self, *, name: str, include_deleted: bool = False) -> list[Row]:
        rows = self._entries(name, include_deleted) if _could_exist(name, LATEST) else []
        if not rows:
            raise NotFound(SERVER_NOT_FOUND)
        return rows

    def server_version(self, *, name: str, version: str, include_deleted: bool = False) -> Row:
        if _could_exist(name, version):
            for row in self._entries(name, include_deleted):
                # A live entry: the published one for `latest`, else that version; a departed one: any
                # for `latest` (the live ones come first), else that version.
                if version == LATEST and (row["is_latest"] if row["active"] else True):
                    return row
                if version != LATEST and row["version"] == version:
                    return row
        raise NotFound(SERVER_NOT_FOUND)


def _could_exist(name: str, version: str) -> bool:
    # The database path's guard, kept so both answer 404 for the same paths.
    return is_server_name(name) and not has_control_characters(version)


def _marker(row: Row) -> Marker:
    return Marker(**{name: row[name] for name in _MARKER})


async def load(db: Database, held: Marker | None) -> tuple[Marker, Snapshot | None]:
    """The current marker, and a new snapshot when it differs from `held` (None: unchanged).

    With a snapshot held, one cheap statement (CHECK) tells whether anything changed, and only
    then a second loads the catalogue; without one, the load is the only statement.
    """
    if held is not None:
        marker = _marker(await db.fetchrow(CHECK.sql) or {})
        if marker == held:
            return marker, None
    rows = await db.fetch(LOAD.sql)
    first = rows[0]
    marker = _marker(first)
    entries = [{name: row[name] for name in ("kind", *_ROW)} for row in rows if row["kind"] is not None]
    folds = {_FOLDED[0]: first["fold_i"], _FOLDED[1]: first["fold_k"]}
    return marker, Snapshot.build(marker, folds, entries)


class FeedSnapshots:
    """The snapshot of one process, and when it was last confirmed current.

    A request that finds it older than the maximum age starts one check (never more than one at a
    time) and waits for it at most `wait` seconds: with the database slow or down it is served the
    snapshot it has, with its age. While the database stays away a check is tried again at most
    every `retry` seconds, so an outage costs requests no connection attempt each.
    """

    def __init__(self, db: Database, max_age: Callable[[], float], *, wait: float = 2.0, retry: float = 5.0) -> None:
        self._db = db
        self._max_age = max_age
        self._wait = wait
        self._retry = retry
        self.snapshot: Snapshot | None = None
        self.confirmed_at: float | None = None
        self._next_check = 0.0
        self._check: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def age(self) -> int | None:
        """Whole seconds since the snapshot was last confirmed current (RFC 9111 `Age`), None without one."""
        return None if self.confirmed_at is None else int(time.monotonic() - self.confirmed_at)

    def fresh(self) -> bool:
        """Confirmed current within the maximum age."""
        return self.confirmed_at is not None and time.monotonic() - self.confirmed_at < self._max_age()

    async def current(self) -> tuple[Snapshot, int | None]:
        """The snapshot to answer from, and its `Age` when it could not be confirmed (None when it was).

        ServiceUnavailable when there is none and the database cannot give one.
        """
        if not self.fresh() and time.monotonic() >= self._next_check:
            task = self._start_check()
            if self.snapshot is None:
                await asyncio.shield(task)
            else:
                await asyncio.wait({task}, timeout=self._wait)
        if self.snapshot is None:
            raise ServiceUnavailable("The feed is unavailable: no database and no snapshot. Try again shortly.")
        return self.snapshot, None if self.fresh() else self.age()

    def status(self, database_answers: bool) -> tuple[Source, int | None]:
        """Where the next feed answer comes from, and the snapshot's age: `database` while the snapshot is
        confirmed current or the database answers (the next request confirms it), `memory` while it is
        served unconfirmed, `none` with neither."""
        if self.fresh() or database_answers:
            return "database", self.age()
        return ("memory" if self.snapshot is not None else "none"), self.age()

    def _start_check(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        if self._check is None or self._check.done() or self._loop is not loop:
            self._loop = loop
            self._check = loop.create_task(self._refresh())
        return self._check

    async def _refresh(self) -> None:
        try:
            marker, snapshot = await load(self._db, None if self.snapshot is None else self.snapshot.marker)
        except _DOWN as error:
            log.warning("feed snapshot not confirmed, the database is unavailable: %s", type(error).__name__)
            self._next_check = time.monotonic() + self._retry
            return
        if snapshot is not None:
            log.info("feed snapshot loaded: %d entries at audit position %d", snapshot.size, marker.log_id)
            self.snapshot = snapshot
        self.confirmed_at = time.monotonic()
        self._next_check = 0.0

    def reset(self) -> None:
        self.snapshot, self.confirmed_at, self._check, self._next_check = None, None, None, 0.0


# The process's snapshot, as shared.db.database is its pool.
snapshots = FeedSnapshots(database, lambda: get_settings().feed_snapshot_max_age)
