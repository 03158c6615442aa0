"""The body of `POST …/attestation/accept`: which probe the administrator reviewed."""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class DriftAcceptance(BaseModel):
    """Names the surface accepted, so that a probe recorded between the review and the click (a
    submitter re-probing a server that changed again) is never accepted unseen. Without a body
    (or with `{}`) the latest `ok` probe is accepted, as the contract has it for callers that name
    nothing; naming what was reviewed is what closes the swap."""

    BODY_OPTIONAL: ClassVar[bool] = True
    model_config = ConfigDict(extra="forbid")

    probe_id: UUID | None = Field(default=None, description="The probe reviewed (`GET …/probes/latest`).")
    tools_hash: Annotated[str | None, Field(pattern="^[0-9a-f]{64}$", description=(
        "The `tools_hash` reviewed (the registration's `attestation.tools_hash`)."))] = None
