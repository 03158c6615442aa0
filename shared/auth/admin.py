"""Who is an administrator: the ENTRA_ADMIN_ROLE app role, or membership of ENTRA_ADMIN_GROUP_ID.

Roles and groups are compared element by element, never as substrings. When a user belongs to
too many groups for the token to list ("group overage": `_claim_names.groups` or `hasgroups`),
Microsoft Graph is asked with the app's own credential whether the user is in the admin group.
The answer is cached per user for a few minutes; any failure on that path means "not admin".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic

from shared.auth.cache import TtlCache
from shared.auth.fetch import fetch_json
from shared.auth.principal import Principal
from shared.config import EntraSettings, get_settings
from shared.identity import TokenCredential, managed_credential

log = logging.getLogger(__name__)

ANSWER_TTL_SECONDS = 300.0
# Short, so a Graph outage does not demote an administrator for long, yet a burst of
# requests during the outage does not wait on Graph's timeout one request after another.
FAILURE_TTL_SECONDS = 30.0
CACHE_SIZE = 10_000


# Tests replace this factory.
graph_credential: Callable[[], TokenCredential] = managed_credential

_memberships: TtlCache[str, bool] = TtlCache(CACHE_SIZE, monotonic)


def reset() -> None:
    """Forget Graph answers, for tests and tools that change the settings."""
    _memberships.clear()


async def is_admin(principal: Principal) -> bool:
    settings = get_settings().entra
    if settings.admin_role in principal.roles:
        return True
    group_id = settings.admin_group_id
    if group_id is None:
        return False
    if any(group.lower() == group_id for group in principal.groups):
        return True
    return principal.has_group_overage and await _graph_says_member(principal.oid, group_id, settings)


async def _graph_says_member(oid: str, group_id: str, settings: EntraSettings) -> bool:
    cached = _memberships.get(oid)
    if cached is not None:
        return cached
    try:
        credential = graph_credential()
        access = await credential.get_token(f"{settings.graph_base_url}/.default")
        answer = await fetch_json(f"{settings.graph_base_url}/v1.0/users/{oid}/checkMemberGroups",
                                  body={"groupIds": [group_id]}, bearer=access.token)
        values = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(values, list):
            raise ValueError("checkMemberGroups answered without a value array")
    except Exception as error:  # every failure here means "not admin", whatever it is
        log.warning("admin group check through Microsoft Graph failed (%s); treating the user as not admin",
                    type(error).__name__)
        _memberships.put(oid, False, FAILURE_TTL_SECONDS)
        return False
    member = any(isinstance(value, str) and value.lower() == group_id for value in values)
    _memberships.put(oid, member, ANSWER_TTL_SECONDS)
    return member
