"""What a probe found, as API.md's Probe object holds it (less the ids the store adds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.probe.findings import Finding

Outcome = Literal["ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout",
                                 "refused")


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    checked_at: datetime
    duration_ms: int
    protocol_version: str | None = None
    server_info: dict[str, Any] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    tools_hash: str | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    # On `auth_required`: the challenge and the RFC 9728 protected-resource metadata it named.
    auth: dict[str, Any] | None = None
