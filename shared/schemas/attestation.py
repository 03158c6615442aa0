"""Response models of attestation probes (API.md, Attestation)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# Validators are built on first use (the first probe answer), not at import: the API's cold start
# does not pay for the attestation models.
_DEFERRED = ConfigDict(defer_build=True)

Outcome = Literal["ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout", "refused"]


class ProbeTool(BaseModel):
    model_config = _DEFERRED

    name: str
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)
    annotations: dict[str, Any] | None = None


class ProbeFinding(BaseModel):
    model_config = _DEFERRED

    rule: str = Field(description="hidden_characters, instruction_like, shadowing, confusable_name, url, "
                                  "email_address, ip_address, oversized_description, oversized_instructions, "
                                  "undeclared_tool or declared_tool_missing.")
    severity: Literal["high", "medium", "low"]
    pointer: str = Field(description="JSON pointer into this probe, e.g. /tools/2/description.")
    excerpt: str = Field(description="The text found, hidden characters written out as <U+XXXX>.")


class ProbePublic(BaseModel):
    model_config = _DEFERRED

    probe_id: UUID
    registration_id: UUID
    revision: int
    checked_at: datetime
    outcome: Outcome
    duration_ms: int
    protocol_version: str | None
    server_info: dict[str, Any] | None
    instructions: str | None
    tools: list[ProbeTool]
    prompts: list[str]
    resources: list[str]
    tools_hash: str | None = Field(description="SHA-256 (hex) of the RFC 8785 JSON of the tool surface: tools "
                                               "sorted by name, instructions, prompt and resource names.")
    findings: list[ProbeFinding]
    error: str | None
    auth: dict[str, Any] | None = Field(
        default=None, description="On auth_required: the challenge and the RFC 9728 protected-resource metadata it "
                                  "names (status, www_authenticate, resource_metadata_url, resource_metadata).")


class ProbeList(BaseModel):
    model_config = _DEFERRED

    results: list[ProbePublic]


class ProbeQuery(BaseModel):
    model_config = _DEFERRED

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=2_147_483_647)] = 0
