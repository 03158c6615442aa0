"""What a probe found, as API.md's Probe object holds it (less the ids the store adds)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.probe.findings import Finding

Outcome = Literal["ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout",
                                 "refused")
# The `probes` columns' limits (sql/migrations/0004_attestation.sql: probes_error_check and the
# protocol_version check): whatever an endpoint made the error say, it is stored cut to fit.
MAX_ERROR = 2000
MAX_PROTOCOL_VERSION = 64


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
    # How many findings of each rule the caps left out of `findings`.
    findings_omitted: dict[str, int] = field(default_factory=dict)

    def failed(self, outcome: Outcome, error: str) -> ProbeResult:
        """This probe as a failed one: the outcome and error, nothing the endpoint sent."""
        return ProbeResult(outcome=outcome, checked_at=self.checked_at, duration_ms=self.duration_ms,
                           error=clip(error, MAX_ERROR))

    def clipped(self) -> ProbeResult:
        return dataclasses.replace(self, error=clip(self.error, MAX_ERROR),
                                   protocol_version=clip(self.protocol_version, MAX_PROTOCOL_VERSION))


def clip(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters, and storable (no U+0000, no lone surrogate)."""
    if text is None:
        return None
    from shared.probe.surface import clean_text

    cut = clean_text(text[:limit])
    return cut if len(cut) <= limit else cut[:limit - 1] + "…"
