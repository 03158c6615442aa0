"""All SQL of the MCP registry feed: one statement per request, every value a parameter.

The feed serves the **published revision** of each registration (the `published_*` columns of
migration 0003): an edit awaiting review, or a rejected one, leaves it live. Rows come back in
one shape for `shared.schemas.feed.server_response`: the feed's content columns, `active`,
`publication`, `publication_message`, `is_latest`, `published_at` (when the revision was
approved) and `updated_at` (when what the public sees last changed).

Two orders, both keyset-paged on a unique key so that rows approved between two pages are
never repeated and never push others out:
- the catalogue (no `updated_since`): live published rows by name in byte order, then
  `registration_id`. A row published mid-walk appears once if it sorts after the page already
  read, otherwise on the next walk.
- incremental sync (`updated_since`): every row that was ever published and changed since, by
  `published_updated_at`, then `registration_id`, so a mirror applies changes in the order they
  happened (a deletion before the approval of a new registration that took over its name). A
  deleted row comes with `active = false` and the content it was published with; a row
  withdrawn before migration 0003 with the snapshot the trigger of 0002 kept (`last_published`).
`include_deleted` brings those departed rows into the catalogue order and the per-server reads too.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared import policy
from shared.db import Database
from shared.errors import NotFound
from shared.schemas.common import has_control_characters
from shared.schemas.feed import LATEST, FeedCursor, FeedQuery, is_server_name
from shared.services.columns import attestation_summary
from shared.services.registrations import like_pattern
from shared.sql import Statement, compiled

_LIVE = policy.PUBLISHED_LIVE
_STAMPS = ("r.registration_id, r.published_updated_at AS updated_at, "
           "coalesce(r.published_approved_at, r.published_at) AS published_at, "
           "r.publication, r.publication_message")
_CONTENT = ("r.published_server_name AS server_name, r.published_endpoint_name AS endpoint_name, "
            "r.published_description AS description, r.published_version AS version, "
            "r.published_transport AS transport, r.published_endpoint_url AS endpoint_url")
_NAME = 'r.published_server_name COLLATE "C"'
# The latest probe of the published revision (null before one), for the `_meta` attestation entry.
_PUBLISHED_PROBE = attestation_summary("false")

# Byte order ("C") is the same on every server whatever its locale; the index of 0003 holds it.
_CATALOGUE = f"""
SELECT {_STAMPS}, {_CONTENT}, true AS active, true AS is_latest, {_PUBLISHED_PROBE} AS attestation
FROM registrations AS r
WHERE {{where}}
ORDER BY {_NAME}, r.registration_id
LIMIT :limit
"""

# What the feed shows of a row (`e`): its published revision, else (a row withdrawn before
# migration 0003) its snapshot, else its content.
_SHOWN = """CROSS JOIN LATERAL jsonb_to_record(CASE
    WHEN r.published_revision IS NOT NULL THEN jsonb_build_object(
        'server_name', r.published_server_name, 'endpoint_name', r.published_endpoint_name,
        'description', r.published_description, 'version', r.published_version,
        'transport', r.published_transport, 'endpoint_url', r.published_endpoint_url)
    WHEN r.last_published IS NOT NULL THEN r.last_published
    ELSE to_jsonb(r)
END) AS e(server_name text, endpoint_name text, description text, version text, transport text, endpoint_url text)"""
# A departed entry is not announced while another live registration publishes its name and
# version: that one's entry is the current state, and a later "deleted" would make mirrors drop it.
_NOT_HELD = """NOT EXISTS (
    SELECT 1 FROM registrations AS holder
    WHERE holder.published_server_name COLLATE "C" = e.server_name AND holder.published_version = e.version
      AND holder.published_revision IS NOT NULL AND holder.deleted_at IS NULL
)"""

# Every row ever published, live or departed.
_PUBLISHED = f"""
SELECT {_STAMPS}, e.*, live.active, true AS is_latest,
       CASE WHEN live.active THEN {_PUBLISHED_PROBE} END AS attestation
FROM registrations AS r
CROSS JOIN LATERAL (SELECT {_LIVE} AS active) AS live
{_SHOWN}
WHERE r.published_at IS NOT NULL AND {{where}} AND (live.active OR {_NOT_HELD})
"""
_SYNC = _PUBLISHED + """ORDER BY {order}, r.registration_id
LIMIT :limit
"""

# Every approved revision of a live server under its current name, one per version string: the
# published revision, else the newest approved one with that version. :published_only: the published one only.
# The snapshot (shared.services.feed_snapshot) loads the same columns for every server at once.
_VERSION_COLUMNS = f"""r.registration_id, r.published_updated_at AS updated_at, v.decided_at AS published_at,
    r.publication, r.publication_message, v.server_name, v.endpoint_name, v.description, v.version, v.transport,
    v.endpoint_url, true AS active, v.revision = r.published_revision AS is_latest, v.revision,
    CASE WHEN v.revision = r.published_revision THEN {_PUBLISHED_PROBE} END AS attestation"""
_VERSION_SOURCE = """FROM registrations AS r
JOIN registration_revisions AS v
  ON v.registration_id = r.registration_id AND v.status = 'Approved' AND v.server_name = r.published_server_name"""
# Which revision stands for a version string: the published one, else the newest approved.
_VERSION_PICK = "v.revision = r.published_revision DESC, v.revision DESC"
_VERSIONS = f"""
SELECT DISTINCT ON (v.version) {_VERSION_COLUMNS}
{_VERSION_SOURCE}
WHERE {_LIVE} AND {_NAME} = :name AND (:version::text IS NULL OR v.version = :version)
  AND (NOT :published_only OR v.revision = r.published_revision)
ORDER BY v.version, {_VERSION_PICK}
"""
# The same entries for every live server at once: what the in-memory snapshot holds.
EVERY_VERSION = f"""
SELECT DISTINCT ON ({_NAME}, v.version) {_VERSION_COLUMNS}
{_VERSION_SOURCE}
WHERE {_LIVE}
ORDER BY {_NAME}, v.version, {_VERSION_PICK}
"""
# Every row the listings read, live and departed: the rest of the snapshot.
EVERY_PUBLISHED = _PUBLISHED.format(where="true")

_BY_NAME = Statement(f"""
SELECT * FROM ({_VERSIONS}) AS versions
ORDER BY revision
""")
# The live versions first, then departed entries, the latest change first. Rare (VS Code never
# asks): the name of a departed entry lives in its snapshot, which no index covers.
_BY_NAME_WITH_DELETED = Statement(f"""
SELECT * FROM (
    SELECT * FROM ({_VERSIONS}) AS versions
    UNION ALL
    SELECT {_STAMPS}, e.*, false AS active, true AS is_latest, r.published_revision AS revision,
           NULL::jsonb AS attestation
    FROM registrations AS r
    {_SHOWN}
    WHERE r.published_at IS NOT NULL AND NOT ({_LIVE}) AND e.server_name = :name
      AND (:version::text IS NULL OR e.version = :version) AND {_NOT_HELD}
) AS entries
ORDER BY active DESC, CASE WHEN active THEN revision END, updated_at DESC, registration_id
""")

SERVER_NOT_FOUND = "Server not found."


def _page_statement(query: FeedQuery) -> tuple[Statement, dict[str, Any]]:
    """The statement for this query and its named values, built from fixed fragments only."""
    sync = query.updated_since is not None
    # As in the official registry, an incremental sync always includes what was deleted.
    departed = sync or bool(query.include_deleted)
    arguments: dict[str, Any] = {"limit": query.limit + 1}

    def parameter(name: str, value: Any) -> str:
        arguments[name] = value
        return f":{name}"

    if departed:
        conditions = [f"r.published_updated_at > {parameter('updated_since', query.updated_since)}"] if sync else []
        name, version = "e.server_name", "e.version"
        order = "r.published_updated_at" if sync else 'e.server_name COLLATE "C"'
    else:
        conditions = [_LIVE]
        name, version, order = "r.published_server_name", "r.published_version", _NAME
    if query.search is not None:
        conditions.append(f"lower({name}) LIKE lower({parameter('search', like_pattern(query.search))})")
    if query.version is not None and query.version != LATEST:
        conditions.append(f"{version} = {parameter('version', query.version)}")
    if query.cursor is not None:
        key = query.cursor.after_time if sync else query.cursor.after_key
        after = f"({parameter('after_key', key)}, {parameter('after_id', query.cursor.after_id)})"
        conditions.append(f"({order}, r.registration_id) > {after}")
    where = " AND ".join(conditions) or "true"
    return compiled((_SYNC if departed else _CATALOGUE).format(where=where, order=order)), arguments


async def list_servers(*, db: Database, query: FeedQuery) -> tuple[list[asyncpg.Record], FeedCursor | None]:
    """One page, and the cursor of the next one (None on the last page)."""
    # One row more than asked (:limit) tells whether another page follows without a count.
    statement, arguments = _page_statement(query)
    rows = await db.fetch(statement.sql, *statement(**arguments))
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


def _by_name(include_deleted: bool) -> Statement:
    return _BY_NAME_WITH_DELETED if include_deleted else _BY_NAME


async def server_versions(*, db: Database, name: str, include_deleted: bool = False) -> list[asyncpg.Record]:
    """Every approved version of a live server, oldest revision first, and with `include_deleted`
    the departed entries under that name too."""
    statement = _by_name(include_deleted)
    rows = (await db.fetch(statement.sql, *statement(name=name, version=None, published_only=False))
            if _could_exist(name, LATEST) else [])
    if not rows:
        raise NotFound(SERVER_NOT_FOUND)
    return rows


async def server_version(*, db: Database, name: str, version: str, include_deleted: bool = False
                         ) -> asyncpg.Record:
    exact = None if version == LATEST else version
    statement = _by_name(include_deleted)
    row = (await db.fetchrow(statement.sql, *statement(name=name, version=exact, published_only=version == LATEST))
           if _could_exist(name, version) else None)
    if row is None:
        raise NotFound(SERVER_NOT_FOUND)
    return row
