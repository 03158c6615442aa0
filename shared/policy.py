"""Who may do what with a registration: the one place the rules are written, for Python and for SQL.

The rules (API.md, *Visibility*, *Revisions*, *Attestation*):
- **Read the latest revision, its revisions, audit trail and probes; edit; ask for a probe**: an
  administrator or the submitter (`OWNER_OR_ADMIN`, `full_access`). Anyone else who asks about a
  registration that is published learns only that they may not (403); about one that is not, that
  it does not exist (404), so that nothing leaks what is awaiting review.
- **Read the published revision**: anyone signed in, while the registration is live and has a
  published revision (`visible`, `PUBLISHED_LIVE`).
- **Decide, delete, publish again, deprecate or reactivate, accept a drift**: administrators. Each
  such endpoint is declared `access="admin"` (`shared.declare`), which refuses anyone else before
  any statement runs, so no service checks it again.
- **Four eyes**: no one approves what they wrote (`four_eyes`). For a decision, "what they wrote"
  is any revision they submitted since the published one (their edit rides along in the latest);
  for a drift acceptance, the registration itself (its submitter answers for the new tools).
  `REVIEW_ALLOW_SELF_APPROVAL=true` waives the rule for decisions only, and with it an
  administrator's edit of an approved registration is approved and published at once; a drift is
  always accepted by an administrator other than the submitter (API.md, *Attestation*).

The SQL predicates are fragments with named parameters (`shared.sql`): a statement that uses one
binds `:is_admin` and `:user_id` (and `:allow_self_approval` for a waivable four-eyes check).
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol
from uuid import UUID

from shared.errors import Forbidden, NotFound

NOT_FOUND = "Registration not found."


class Caller(Protocol):
    @property
    def user_id(self) -> UUID: ...

    @property
    def is_admin(self) -> bool: ...


def owner_or_admin(alias: str = "r") -> str:
    """SQL: the caller is an administrator or submitted the registration row `alias`."""
    return f"(:is_admin::boolean OR {alias}.submitter_id = :user_id::uuid)"


OWNER_OR_ADMIN = owner_or_admin()


def published_live(alias: str = "r") -> str:
    """SQL: the registration row `alias` is live and has a published revision, which anyone may read."""
    return f"{alias}.published_revision IS NOT NULL AND {alias}.deleted_at IS NULL"


PUBLISHED_LIVE = published_live()


def visible(alias: str = "r") -> str:
    """SQL: the caller may read the live registration row `alias` at all (its latest or its published revision)."""
    return f"({alias}.deleted_at IS NULL AND ({owner_or_admin(alias)} OR {alias}.published_revision IS NOT NULL))"


def four_eyes(authored: str, *, waivable: bool) -> str:
    """SQL: the caller may approve what `authored` (SQL, true when the caller wrote it) is about.
    `waivable`: REVIEW_ALLOW_SELF_APPROVAL (`:allow_self_approval`) lifts the rule (decisions only)."""
    return f"(:allow_self_approval OR NOT {authored})" if waivable else f"NOT {authored}"


def self_approves(alias: str) -> str:
    """SQL: an administrator's edit of the row `alias`, whose latest revision is approved, is approved at once
    (only where REVIEW_ALLOW_SELF_APPROVAL waives four eyes)."""
    return f"(:is_admin AND :allow_self_approval AND {alias}.status = 'Approved')"


class Access(Enum):
    """What a caller may know of one registration beyond its published revision."""

    FULL = "full"            # administrator or submitter
    FORBIDDEN = "forbidden"  # anyone else, and the registration is published: 403
    HIDDEN = "hidden"        # anyone else, and it is not: 404, as if it did not exist


def access(caller: Caller, *, submitter_id: UUID, public: bool) -> Access:
    if caller.is_admin or submitter_id == caller.user_id:
        return Access.FULL
    return Access.FORBIDDEN if public else Access.HIDDEN


def full_access(caller: Caller, *, submitter_id: UUID, public: bool, forbidden: str) -> None:
    """Raise unless the caller is an administrator or the submitter: 403 saying `forbidden` where the
    registration is public, else 404."""
    seen = access(caller, submitter_id=submitter_id, public=public)
    if seen is Access.FORBIDDEN:
        raise Forbidden(forbidden)
    if seen is Access.HIDDEN:
        raise NotFound(NOT_FOUND)


def may_filter_attestation(caller: Caller) -> bool:
    """Filters on probe outcomes and findings are for administrators."""
    return caller.is_admin


def may_read_user(caller: Caller, user_id: UUID) -> bool:
    return caller.is_admin or caller.user_id == user_id
