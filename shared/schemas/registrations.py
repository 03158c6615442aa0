"""Request and response models of registrations, with every validation rule of API.md."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.schemas.common import has_control_characters

Status = Literal["Pending", "Approved", "Rejected"]
Decision = Literal["Approved", "Rejected"]
Transport = Literal["streamable-http", "sse"]
AuditAction = Literal["Created", "Updated", "Approved", "Rejected", "Deleted"]

SERVER_NAME_PATTERN = r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalise_url(value: str) -> str:
    """Absolute http(s), no user-info or fragment; scheme and host lower-cased, default port and
    a trailing slash on a non-root path dropped, an empty path made `/`."""
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    if not value.isascii() or any(character.isspace() for character in value) or has_control_characters(value):
        raise ValueError("must be an ASCII URL without spaces (percent-encode the path, use punycode hosts)")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    if "@" in parts.netloc:
        raise ValueError("must not contain user information")
    if parts.fragment or value.endswith("#"):
        raise ValueError("must not contain a fragment")
    host = parts.hostname
    if not host or not (_HOST_NAME.match(host) or _is_ip_literal(host)):
        raise ValueError("must name a valid host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    normalised = urlunsplit((scheme, netloc, path, parts.query, ""))
    if len(normalised) > 2048:
        raise ValueError("must be at most 2048 characters")
    return normalised


def _name(value: str) -> str:
    trimmed = value.strip()
    if has_control_characters(trimmed):
        raise ValueError("must not contain control characters")
    if not 3 <= len(trimmed) <= 200:
        raise ValueError("must be 3 to 200 characters after trimming")
    return trimmed


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    if has_control_characters(value, allow_whitespace=True):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    trimmed = value.strip()
    return trimmed or None


def _email(value: str) -> str:
    trimmed = value.strip()
    if len(trimmed) > 254 or not _EMAIL.match(trimmed) or has_control_characters(trimmed):
        raise ValueError("must be an e-mail address of at most 254 characters")
    return trimmed


def _tools(value: list[str]) -> list[str]:
    tools = [tool.strip() for tool in value]
    for tool in tools:
        if not 1 <= len(tool) <= 128:
            raise ValueError("each tool name must be 1 to 128 characters after trimming")
        if has_control_characters(tool):
            raise ValueError("tool names must not contain control characters")
    if len(set(tools)) != len(tools):
        raise ValueError("tool names must be distinct")
    return tools


def plain_search_text(value: str | None) -> str | None:
    """A search string as the lists take it: no control characters; empty means no search."""
    if value is not None and has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value or None


def _version(value: str) -> str:
    if value.strip().lower() == "latest":
        raise ValueError("must not be 'latest'")
    if value != value.strip() or not value or has_control_characters(value) or " " in value:
        raise ValueError("must be a version without spaces, such as 1.0.0")
    return value


EndpointUrl = Annotated[str, Field(max_length=2048, examples=["https://mcp.contoso.com/weather"],
                                   json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^@#\\s]+$"}),
                        AfterValidator(normalise_url)]
EndpointName = Annotated[str, Field(max_length=400, examples=["Weather Tools"]), AfterValidator(_name)]
Description = Annotated[str | None, Field(max_length=2000), AfterValidator(_description)]
OwnerContact = Annotated[str, Field(max_length=254, examples=["weather-team@contoso.com"],
                                    json_schema_extra={"format": "email"}), AfterValidator(_email)]
ToolNames = Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=100, examples=[["forecast"]]),
                      AfterValidator(_tools)]
ServerName = Annotated[str, Field(min_length=3, max_length=200, pattern=SERVER_NAME_PATTERN,
                                  examples=["com.contoso.mcp/weather-tools"])]
Version = Annotated[str, Field(min_length=1, max_length=255, examples=["1.0.0"]), AfterValidator(_version)]


class RegistrationCreate(BaseModel):
    """A new submission. `server_name` is derived from the URL and name when absent."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: EndpointUrl
    endpoint_name: EndpointName
    description: Description = None
    owner_contact: OwnerContact
    available_tools: ToolNames = Field(default_factory=list)
    server_name: ServerName | None = None
    transport: Transport = "streamable-http"
    version: Version = "1.0.0"


class RegistrationUpdate(BaseModel):
    """Any subset of the submission's fields; `description` may be set to null."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: EndpointUrl | None = None
    endpoint_name: EndpointName | None = None
    description: Description = None
    owner_contact: OwnerContact | None = None
    available_tools: ToolNames | None = None
    server_name: ServerName | None = None
    transport: Transport | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> RegistrationUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        for field in self.model_fields_set - {"description"}:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Decision
    reason: Annotated[str | None, Field(max_length=1000), AfterValidator(_description)] = None


class RegistrationQuery(BaseModel):
    """Query of the registration lists. Unknown query parameters are ignored."""

    status: Status | None = None
    submitter_id: UUID | None = None
    search: Annotated[str | None, Field(max_length=200), AfterValidator(plain_search_text)] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=2_147_483_647)] = 0


class RegistrationPublic(BaseModel):
    registration_id: UUID
    endpoint_url: str
    endpoint_name: str
    description: str | None
    owner_contact: str
    available_tools: list[str]
    status: Status
    submitter_id: UUID
    approver_id: UUID | None
    approved_at: datetime | None
    status_reason: str | None
    server_name: str
    transport: Transport
    version: str
    created_at: datetime
    updated_at: datetime


class RegistrationList(BaseModel):
    total: int = Field(description="How many registrations match, counted up to 10,000.")
    total_exact: bool = Field(
        default=True, exclude_if=lambda exact: exact,
        description="Present, and false, only when more than 10,000 match: `total` then reads 10,000.",
    )
    limit: int
    offset: int
    results: list[RegistrationPublic]


class AuditLogEntry(BaseModel):
    log_id: int
    registration_id: UUID
    user_id: UUID
    action: AuditAction
    previous_status: Status | None
    new_status: Status | None
    metadata: dict[str, object]
    timestamp: datetime


class AuditTrail(BaseModel):
    results: list[AuditLogEntry]
