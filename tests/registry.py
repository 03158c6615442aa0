"""Small factories for registration tests."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.support import Caller


def unique_host() -> str:
    return f"mcp-{uuid.uuid4().hex[:10]}.example.com"


def body(**overrides: Any) -> dict[str, Any]:
    host = unique_host()
    fields: dict[str, Any] = {
        "endpoint_url": f"https://{host}/mcp",
        "endpoint_name": f"Tools {host[4:14]}",
        "description": "Example tools for tests.",
        "owner_contact": "owner@example.com",
        "available_tools": ["alpha", "beta"],
    }
    namespace = str(overrides.get("server_name", "")).split("/")[0]
    if "endpoint_url" not in overrides and re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", namespace):
        # A host the name's namespace covers (com.contoso/x -> mcp-….contoso.com), as submitters must use.
        domain = ".".join(reversed(namespace.split(".")))
        fields["endpoint_url"] = f"https://mcp-{uuid.uuid4().hex[:10]}.{domain}/mcp"
    fields.update(overrides)
    return fields


def submit(client: httpx.Client, caller: Caller, **overrides: Any) -> dict[str, Any]:
    response = client.post("/registrations", json=body(**overrides), headers=caller.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def decide(client: httpx.Client, admin: Caller, registration_id: str, status: str, reason: str | None = None
           ) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": status}
    if reason is not None:
        payload["reason"] = reason
    response = client.patch(f"/registrations/{registration_id}/status", json=payload, headers=admin.headers)
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    return decided


def assert_problem(response: httpx.Response, status: int, detail: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == "about:blank"
    assert problem["status"] == status
    assert isinstance(problem["detail"], str)
    if detail is not None:
        assert problem["detail"] == detail
    return problem
