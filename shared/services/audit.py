"""Reading the audit trail. Entries are written by the registration statements themselves."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from shared.db import Database
from shared.errors import Forbidden, NotFound
from shared.services.registrations import Actor

# One statement: the registration (deleted ones included) and, when the caller may read it,
# its entries oldest first.
_TRAIL = """
SELECT r.published_revision AS public_revision, r.deleted_at, r.submitter_id,
       a.log_id, a.registration_id, a.user_id, a.action, a.previous_status, a.new_status, a.revision, a.metadata,
       a."timestamp"
FROM registrations r
LEFT JOIN audit_log a ON a.registration_id = r.registration_id AND ($2 OR r.submitter_id = $3)
WHERE r.registration_id = $1
ORDER BY a.log_id
"""


async def trail(*, db: Database, actor: Actor, registration_id: UUID) -> list[asyncpg.Record]:
    rows = await db.fetch(_TRAIL, registration_id, actor.is_admin, actor.user_id)
    if not rows:
        raise NotFound("Registration not found.")
    first = rows[0]
    if not actor.is_admin and first["submitter_id"] != actor.user_id:
        if first["public_revision"] is not None and first["deleted_at"] is None:
            raise Forbidden("Only the submitter or an administrator may read this audit trail.")
        raise NotFound("Registration not found.")
    return [row for row in rows if row["log_id"] is not None]
