"""On `auth_required`: record the challenge and the RFC 9728 protected-resource metadata it
names (or the well-known locations beside the endpoint), fetched under the same guard and never
followed further: no authorization server is contacted, no token asked for."""

from __future__ import annotations

from typing import Any

from mcp.client.auth.utils import build_protected_resource_metadata_discovery_urls, extract_field_from_www_auth
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import ValidationError

from shared.egress import EgressGuard, Refused, Unreachable

_HEADER = 1000


async def protected_resource(url: str, guard: EgressGuard) -> dict[str, Any]:
    import httpx2

    challenge = next(seen for seen in guard.budget.seen if seen.status in (401, 403) and seen.www_authenticate)
    response = httpx2.Response(challenge.status, headers={"WWW-Authenticate": challenge.www_authenticate or ""})
    pointed = extract_field_from_www_auth(response, "resource_metadata")
    record: dict[str, Any] = {"status": challenge.status, "resource_metadata_url": pointed, "resource_metadata": None,
                              "www_authenticate": (challenge.www_authenticate or "")[:_HEADER]}
    for candidate in build_protected_resource_metadata_discovery_urls(pointed, url):
        try:
            await guard.admit(candidate)
            async with guard.client() as http:
                answer = await http.get(candidate, headers={"Accept": "application/json"})
        except (Refused, Unreachable, httpx2.HTTPError) as error:
            record["error"] = f"{candidate}: {error}"[:_HEADER]
            break
        if answer.status_code != 200:
            continue
        try:
            metadata = ProtectedResourceMetadata.model_validate_json(answer.content)
        except ValidationError:
            record["error"] = f"{candidate}: not protected-resource metadata"
            continue
        record["resource_metadata_url"] = candidate
        record["resource_metadata"] = metadata.model_dump(mode="json", exclude_none=True)
        record.pop("error", None)
        break
    return record
