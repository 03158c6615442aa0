"""Response models of attestation probes (API.md, Attestation)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# Validators are built on first use (the first probe answer), not at import: the API's cold start
# does not pay for the attestation models.
_DEFERRED = ConfigDict(defer_build=True)

OMITTED = ("How many findings of each rule the caps left out of `findings` (at most 100 of a rule and 1,000 "
           "in all are listed, the least severe cut first), e.g. {\"ip_address\": 119901}; empty when none were.")

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

    rule: str = Field(description="hidden_characters, instruction_like, scan_incomplete (high); shadowing, "
                                  "confusable_name, oversized_description, oversized_instructions, unscanned_text, "
                                  "undeclared_tool (medium); url, email_address, ip_address, declared_tool_missing "
                                  "(low).")
    severity: Literal["high", "medium", "low"]
    pointer: str = Field(description="JSON pointer into this probe, e.g. /tools/2/description; an object key's "
                                     "finding points at its member, a prompt's or resource's text (read, not "
                                     "stored) at /prompts/n or /resources/n.")
    excerpt: str = Field(description="The text found, hidden characters written out as <U+XXXX>.")


class _ProbeHead(BaseModel):
    """What a probe and its summary in a list both begin with."""

    model_config = _DEFERRED

    probe_id: UUID
    registration_id: UUID
    revision: int
    checked_at: datetime
    outcome: Outcome
    duration_ms: int
    protocol_version: str | None


class ProbePublic(_ProbeHead):
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
    findings_omitted: dict[str, int] = Field(default_factory=dict, description=OMITTED)


class FindingCounts(BaseModel):
    model_config = _DEFERRED

    high: int
    medium: int
    low: int


class ProbeSummary(_ProbeHead):
    """A probe in a list: what it found, counted, without the surface (`GET …/probes/{probe_id}` has it)."""

    tool_count: int
    tools_hash: str | None
    findings: FindingCounts = Field(description="The findings listed in the probe, by severity.")
    findings_omitted: dict[str, int] = Field(description=OMITTED)
    error: str | None


class ProbeList(BaseModel):
    model_config = _DEFERRED

    results: list[ProbeSummary]


class ProbeQuery(BaseModel):
    model_config = _DEFERRED

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=2_147_483_647)] = 0
