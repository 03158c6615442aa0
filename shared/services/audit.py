"""Reading the audit trail. Entries are written by the registration statements themselves."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from shared import policy
from shared.db import Database
from shared.errors import NotFound
from shared.policy import NOT_FOUND
from shared.services.registrations import Actor
from shared.sql import Statement

# One statement: the registration (deleted ones included) and, when the caller may read it,
# its entries oldest first.
_TRAIL = Statement(f"""
SELECT r.published_revision AS public_revision, r.deleted_at, r.submitter_id,
       a.log_id, a.registration_id, a.user_id, a.action, a.previous_status, a.new_status, a.revision, a.metadata,
       a."timestamp"
FROM registrations r
LEFT JOIN audit_log a ON a.registration_id = r.registration_id AND {policy.OWNER_OR_ADMIN}
WHERE r.registration_id = :registration_id
ORDER BY a.log_id
""")


async def trail(*, db: Database, actor: Actor, registration_id: UUID) -> list[asyncpg.Record]:
    rows = await db.fetch(_TRAIL.sql, *_TRAIL(registration_id=registration_id, is_admin=actor.is_admin,
                                              user_id=actor.user_id))
    if not rows:
        raise NotFound(NOT_FOUND)
    first = rows[0]
    # A deleted registration's trail stays readable to those who could read it, and is nobody else's business.
    policy.full_access(actor, submitter_id=first["submitter_id"],
                       public=first["public_revision"] is not None and first["deleted_at"] is None,
                       forbidden="Only the submitter or an administrator may read this audit trail.")
    return [row for row in rows if row["log_id"] is not None]
