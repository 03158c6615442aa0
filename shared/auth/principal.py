"""Who a verified token speaks for, read from its claims with every JSON type checked.

Only `tokens.validate` calls these, and only after the signature, issuer, audience and lifetime
were verified. A claim of the wrong JSON type is a malformed token (401), never a 500.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from shared.errors import Unauthorized

MALFORMED_CLAIM = "The token carries a malformed claim."
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_EMAIL_CLAIMS = ("email", "preferred_username", "upn", "unique_name")


@dataclass(frozen=True, slots=True)
class Principal:
    oid: str
    tenant_id: str
    email: str | None
    display_name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    scopes: tuple[str, ...]
    is_app: bool
    has_group_overage: bool


def from_claims(claims: dict[str, Any]) -> Principal:
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise Unauthorized(MALFORMED_CLAIM)
    scopes = tuple(_text(claims, "scp", "").split())
    roles = _texts(claims, "roles")
    return Principal(
        oid=_object_id(claims),
        tenant_id=_guid(claims, "tid"),
        email=next((value for name in _EMAIL_CLAIMS if (value := _optional_text(claims, name))), None),
        display_name=_text(claims, "name", ""),
        roles=roles,
        groups=_texts(claims, "groups"),
        scopes=scopes,
        is_app=_optional_text(claims, "idtyp") == "app" or (bool(roles) and not scopes),
        has_group_overage=_has_group_overage(claims),
    )


def is_guest(claims: dict[str, Any], tenant_issuers: tuple[str, ...]) -> bool:
    """A guest: `acct` says so, or the identity provider is not this tenant (B2B, personal account).

    `idp` is compared with both of the tenant's issuers, not only with `iss`, so that a member's
    token carrying its home issuer in the other (v1 or v2) form is not taken for a guest.
    """
    account = claims.get("acct")
    if account is not None and not (isinstance(account, int) and not isinstance(account, bool)):
        raise Unauthorized(MALFORMED_CLAIM)
    provider = _optional_text(claims, "idp")
    return account == 1 or (provider is not None and provider not in tenant_issuers)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise Unauthorized(MALFORMED_CLAIM)
    return value


def _text(claims: dict[str, Any], name: str, default: str) -> str:
    value = _optional_text(claims, name)
    return default if value is None else value


def _texts(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthorized(MALFORMED_CLAIM)
    return tuple(value)


def _object_id(claims: dict[str, Any]) -> str:
    """`oid`: Entra's are GUIDs (kept in canonical form); any other id must be a plain token of
    letters, digits, `.`, `_` and `-`, because it ends up in a Microsoft Graph URL path."""
    value = _optional_text(claims, "oid") or ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        if _PLAIN_ID.fullmatch(value):
            return value
    raise Unauthorized(MALFORMED_CLAIM)


def _guid(claims: dict[str, Any], name: str) -> str:
    # A GUID, because the value ends up in a Microsoft Graph URL path and as the users key.
    value = _optional_text(claims, name)
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        raise Unauthorized(MALFORMED_CLAIM) from None


def _has_group_overage(claims: dict[str, Any]) -> bool:
    names = claims.get("_claim_names")
    if names is not None and not isinstance(names, dict):
        raise Unauthorized(MALFORMED_CLAIM)
    flag = claims.get("hasgroups")
    if flag is not None and not isinstance(flag, bool):
        raise Unauthorized(MALFORMED_CLAIM)
    return flag is True or (names is not None and "groups" in names)
