"""All SQL of the MCP registry feed: one statement per request, every value a parameter.

Rows come back in one shape for `shared.schemas.feed.server_response`: the feed's content
columns, `active`, `published_at` (when it was approved) and `updated_at`.

Two orders, both keyset-paged on a unique key so that rows approved between two pages are
never repeated and never push others out:
- the catalogue (no `updated_since`): live `Approved` rows by `server_name` in byte order, then
  `registration_id`. A row approved mid-walk appears once if it sorts after the page already
  read, otherwise on the next walk.
- incremental sync (`updated_since`): every row that was ever published and changed since, by
  `updated_at`, then `registration_id`, so a mirror applies changes in the order they happened
  (a deletion before the approval of a new registration that took over its name). Rows that
  left the feed (deleted, withdrawn by an edit, rejected after an edit) come with
  `active = false` and the content they had when they left (`last_published`, kept by a
  trigger of migration 0002), so an unapproved edit never reaches the feed.
`include_deleted` brings those departed rows into the catalogue order and the per-server reads too.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.db import Database
from shared.errors import NotFound
from shared.schemas.common import has_control_characters
from shared.schemas.feed import LATEST, FeedCursor, FeedQuery, is_server_name
from shared.services.registrations import like_pattern

_LIVE = "r.status = 'Approved' AND r.deleted_at IS NULL"
# approved_at is cleared when an edit withdraws a registration; published_at keeps its first approval.
_STAMPS = "r.registration_id, r.updated_at, coalesce(r.approved_at, r.published_at) AS published_at"
_CONTENT = "r.server_name, r.endpoint_name, r.description, r.version, r.transport, r.endpoint_url"

# Byte order ("C") is the same on every server whatever its locale; the index of 0002 holds it.
_CATALOGUE = f"""
SELECT {_STAMPS}, {_CONTENT}, true AS active
FROM registrations AS r
WHERE {{where}}
ORDER BY r.server_name COLLATE "C", r.registration_id
LIMIT $1
"""

# Every row ever published, live or departed, as the feed shows it (`e`). A row that left the feed
# before migration 0002 has no snapshot; its current content is all there is. A departed entry is
# not announced while another live registration holds its name and version: that one's entry is the
# current state, and a later "deleted" would make mirrors drop it.
_PUBLISHED = f"""
SELECT {_STAMPS}, e.*, live.active
FROM registrations AS r
CROSS JOIN LATERAL (SELECT {_LIVE} AS active) AS live
CROSS JOIN LATERAL jsonb_to_record(
    CASE WHEN live.active OR r.last_published IS NULL THEN to_jsonb(r) ELSE r.last_published END
) AS e(server_name text, endpoint_name text, description text, version text, transport text, endpoint_url text)
WHERE r.published_at IS NOT NULL AND {{where}} AND (live.active OR NOT EXISTS (
    SELECT 1 FROM registrations AS holder
    WHERE holder.server_name = e.server_name AND holder.version = e.version
      AND holder.status = 'Approved' AND holder.deleted_at IS NULL
))
"""
_SYNC = _PUBLISHED + """ORDER BY {order}, r.registration_id
LIMIT $1
"""

_BY_NAME = f"""
SELECT {_STAMPS}, {_CONTENT}, true AS active
FROM registrations AS r
WHERE {_LIVE} AND r.server_name = $1 AND ($2::text IS NULL OR r.version = $2)
"""
# The live entry first, then departed ones, the latest change first. Rare (VS Code never asks): the
# name of a departed entry lives in its snapshot, which no index covers.
_BY_NAME_WITH_DELETED = _PUBLISHED.format(where="e.server_name = $1 AND ($2::text IS NULL OR e.version = $2)") + """
ORDER BY live.active DESC, r.updated_at DESC, r.registration_id
"""

SERVER_NOT_FOUND = "Server not found."


def _page_statement(query: FeedQuery) -> tuple[str, list[Any]]:
    """The statement for this query and its arguments, built from fixed fragments only."""
    sync = query.updated_since is not None
    # As in the official registry, an incremental sync always includes what was deleted.
    departed = sync or bool(query.include_deleted)
    arguments: list[Any] = []

    def parameter(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments) + 1}"

    if departed:
        conditions = [f"r.updated_at > {parameter(query.updated_since)}"] if sync else []
        name, version = "e.server_name", "e.version"
        order = "r.updated_at" if sync else 'e.server_name COLLATE "C"'
    else:
        conditions = [_LIVE]
        name, version, order = "r.server_name", "r.version", 'r.server_name COLLATE "C"'
    if query.search is not None:
        conditions.append(f"lower({name}) LIKE lower({parameter(like_pattern(query.search))})")
    if query.version is not None and query.version != LATEST:
        conditions.append(f"{version} = {parameter(query.version)}")
    if query.cursor is not None:
        key = query.cursor.after_time if sync else query.cursor.after_key
        conditions.append(f"({order}, r.registration_id) > ({parameter(key)}, {parameter(query.cursor.after_id)})")
    where = " AND ".join(conditions) or "true"
    return (_SYNC if departed else _CATALOGUE).format(where=where, order=order), arguments


async def list_servers(*, db: Database, query: FeedQuery) -> tuple[list[asyncpg.Record], FeedCursor | None]:
    """One page, and the cursor of the next one (None on the last page)."""
    statement, arguments = _page_statement(query)
    # One row more than asked tells whether another page follows without a count.
    rows = await db.fetch(statement, query.limit + 1, *arguments)
    if len(rows) <= query.limit:
        return rows, None
    rows = rows[: query.limit]
    last = rows[-1]
    key = last["updated_at"].isoformat() if query.updated_since is not None else last["server_name"]
    cursor = FeedCursor(after_key=key, after_id=last["registration_id"], search=query.search,
                        version=query.version, updated_since=query.updated_since,
                        include_deleted=bool(query.include_deleted))
    return rows, cursor


def _could_exist(name: str, version: str) -> bool:
    # Path values are anything a client sends; one with a NUL is not even text PostgreSQL takes.
    return is_server_name(name) and not has_control_characters(version)


def _by_name(include_deleted: bool) -> str:
    return _BY_NAME_WITH_DELETED if include_deleted else _BY_NAME


async def server_versions(*, db: Database, name: str, include_deleted: bool = False) -> list[asyncpg.Record]:
    """Every live version of a server (a name is unique among live registrations, so one), and with
    `include_deleted` the departed ones too."""
    rows = await db.fetch(_by_name(include_deleted), name, None) if _could_exist(name, LATEST) else []
    if not rows:
        raise NotFound(SERVER_NOT_FOUND)
    return rows


async def server_version(*, db: Database, name: str, version: str, include_deleted: bool = False
                         ) -> asyncpg.Record:
    exact = None if version == LATEST else version
    row = await db.fetchrow(_by_name(include_deleted), name, exact) if _could_exist(name, version) else None
    if row is None:
        raise NotFound(SERVER_NOT_FOUND)
    return row
