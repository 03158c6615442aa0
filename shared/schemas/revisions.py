"""Models of revisions and of the publication of a registration (API.md, *Revisions*)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.registrations import FREE_TEXT, Publication, Transport

RevisionStatus = Literal["Pending", "Approved", "Rejected", "Superseded"]


class Revision(BaseModel):
    """One revision as submitted, and its decision."""

    registration_id: UUID
    revision: int
    endpoint_url: str
    endpoint_name: str
    description: str | None
    owner_contact: str
    available_tools: list[str]
    server_name: str
    transport: Transport
    version: str
    status: RevisionStatus = Field(
        description="`Superseded`: a pending revision replaced by a newer edit before anyone decided it.")
    submitted_by: UUID
    submitted_at: datetime
    decided_by: UUID | None
    decided_at: datetime | None
    reason: str | None


class RevisionList(BaseModel):
    results: list[Revision] = Field(description="Oldest first.")


class PublicationChange(BaseModel):
    """Deprecate the published revision (with a message clients show) or make it active again."""

    model_config = ConfigDict(extra="forbid")

    publication: Publication
    message: Annotated[str | None, Field(max_length=500), FREE_TEXT] = None
