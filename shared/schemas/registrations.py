"""Request and response models of registrations, with every validation rule of API.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from shared.schemas.common import has_control_characters
from shared.schemas.text import check_text, email, name_text
from shared.schemas.urls import context_settings, normalise_url

Status = Literal["Pending", "Approved", "Rejected"]
ProbeOutcome = Literal["ok", "auth_required", "wrong_transport", "not_mcp", "unreachable", "timeout", "refused"]
Severity = Literal["high", "medium", "low"]
Decision = Literal["Approved", "Rejected"]
Transport = Literal["streamable-http", "sse"]
Publication = Literal["active", "deprecated"]
AuditAction = Literal["Created", "Updated", "Approved", "Rejected", "Deleted", "Deprecated", "Reactivated", "Published",
                      "Drifted", "DriftAccepted"]
RevisionNumber = Annotated[int, Field(ge=1, le=2_147_483_647)]

SERVER_NAME_PATTERN = r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"


def _endpoint_url(value: str, info: ValidationInfo) -> str:
    # The deployment's endpoint rules come in the validation context; a validator reads no setting.
    return normalise_url(value, context_settings(info))


def _name(value: str) -> str:
    return name_text(value, 3, 200, "the name")


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    trimmed = check_text(value, multiline=True).strip()
    return trimmed or None


def _tools(value: list[str]) -> list[str]:
    tools = [name_text(tool, 1, 128, "each tool name") for tool in value]
    if len(set(tools)) != len(tools):
        raise PydanticCustomError("tool_names_not_distinct",
                                  "tool names must be distinct after NFKC normalisation and trimming; drop repeats")
    return tools


def plain_search_text(value: str | None) -> str | None:
    """A search string as the lists take it: no control characters; empty means no search."""
    if value is not None and has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value or None


def _version(value: str) -> str:
    if value.strip().lower() == "latest":
        raise ValueError("must not be 'latest'; name the version, such as 1.0.0")
    if value != value.strip() or not value or " " in value:
        raise ValueError("must be a version without spaces, such as 1.0.0")
    return check_text(value)


_TEXT_RULE = (
    "No control characters, and no Unicode format characters (bidi controls such as U+202E, zero-width "
    "characters), private-use characters or line/paragraph separators (categories Cf, Co, Zl, Zp), nor any "
    "other character that displays as nothing (default-ignorable code points such as U+FE0F and U+034F, Hangul "
    "fillers, U+2800): `text_invisible_character`, `text_ignorable_character`."
)
_ONE_SCRIPT = (
    "Written in one script (Unicode TR39 *highly restrictive*: Latin may stand beside Han, Hiragana, Katakana, "
    "Bopomofo or Hangul), so no lookalike letters of another script: `text_mixed_script`."
)
ENDPOINT_URL_RULES = (
    "Absolute `https` URL (`http` only where the setting `ALLOW_HTTP_ENDPOINTS=true`), at most 2048 characters, "
    "ASCII (an internationalised host in its `xn--` form), no user-info, no fragment. Refused: `localhost` and "
    "`*.localhost`; a host whose last label is all digits or starts with `0x` (`2130706433`, `0x7f.1`); IP "
    "literals that are loopback, private, shared (100.64.0.0/10), link-local (169.254.0.0/16, where cloud "
    "metadata answers; fe80::/10), site-local (fec0::/10), documentation (3fff::/20 and the like), the 6to4 "
    "relay anycast 192.88.99.0/24, unique-local, multicast, reserved or unspecified, in IPv4-mapped and other "
    "IPv6 forms too, and Azure's platform address 168.63.129.16, except networks listed in "
    "`ALLOWED_ENDPOINT_NETWORKS`; a host over 253 characters or with a label over 63 (`url_host_too_long`, "
    "`url_host_label_too_long`); a query parameter named like a credential (`code`, `key`, `apikey`, `api_key`, "
    "`sig`, `signature`, `token`, `access_token`, `secret`, `password`, `subscription-key`, `client_secret`, "
    "`id_token`, `refresh_token`, `sas`, `jwt`, `pwd`, `auth`...; compared by letters and digits alone, "
    "case-insensitive, an array suffix such as `token[]` ignored, `;` read as a separator as `&` is): "
    "secrets travel in headers. Stored normalised (RFC 3986 section 6): scheme and host lower-cased, a trailing "
    "dot on the host dropped, the default port dropped, percent-encoding normalised (unreserved characters "
    "decoded, hex upper-cased, characters that may not stand bare encoded), dot-segments removed; a trailing "
    "`/` is kept (`/mcp/` and `/mcp` can be different resources, and clients compare the published URL byte "
    "for byte). Unique in that form, a trailing `/` on a non-root path also ignored (`/mcp/` collides with "
    "`/mcp`), among registrations that are not deleted (409). "
    "Each refusal's `errors[].type` names the rule (`url_scheme`, `url_address_refused`, `url_numeric_host`, "
    "`url_host_refused`, `url_credential_parameter`...)."
)

EndpointUrl = Annotated[str, Field(max_length=2048, examples=["https://mcp.contoso.com/weather"],
                                   description=ENDPOINT_URL_RULES,
                                   json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^@#\\s]+$"}),
                        AfterValidator(_endpoint_url)]
EndpointName = Annotated[str, Field(max_length=400, examples=["Weather Tools"], description=(
    f"3 to 200 characters after NFKC normalisation and trimming. {_TEXT_RULE} {_ONE_SCRIPT}")),
                        AfterValidator(_name)]
Description = Annotated[str | None, Field(max_length=2000, description=(
    "At most 2000 characters; tabs and line breaks allowed. " + _TEXT_RULE.replace("No control characters",
                                                                                   "No other control characters"))),
                        AfterValidator(_description)]
OwnerContact = Annotated[str, Field(max_length=254, examples=["weather-team@contoso.com"], description=(
    "An ASCII e-mail address of at most 254 characters; an internationalised domain in its `xn--` form."),
                                    json_schema_extra={"format": "email"}), AfterValidator(email)]
ToolNames = Annotated[list[Annotated[str, Field(max_length=256)]], Field(
    max_length=100, examples=[["forecast"]], description=(
    f"0 to 100 distinct tool names, each 1 to 128 characters after NFKC normalisation and trimming. {_TEXT_RULE} "
    f"{_ONE_SCRIPT}")),
                      AfterValidator(_tools)]
ServerName = Annotated[str, Field(min_length=3, max_length=200, pattern=SERVER_NAME_PATTERN,
                                  examples=["com.contoso.mcp/weather-tools"], description=(
    "Unique among live registrations. Unless an administrator gives it, its namespace (before `/`) is the "
    "endpoint host's labels reversed or a parent domain of it down to the host's registrable domain by the "
    "Public Suffix List (`io.github.attacker/...` for `attacker.github.io`, never `io.github/...`: "
    "`namespace_mismatch`, `namespace_public_suffix`), and not in `RESERVED_NAMESPACES` or below one unless it "
    "is the host's labels reversed in full (`namespace_reserved`). Derived from the URL host and the name when "
    "absent."))]
Version = Annotated[str, Field(min_length=1, max_length=255, examples=["1.0.0"],
                               description=f"At most 255 characters, no spaces, not `latest`. {_TEXT_RULE}"),
                    AfterValidator(_version)]
# The rules of free text a person writes about a registration: a decision's reason, a deprecation message.
FREE_TEXT = AfterValidator(_description)


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
    reason: Annotated[str | None, Field(max_length=1000, description=(
        "At most 1000 characters; tabs and line breaks allowed. " + _TEXT_RULE.replace(
            "No control characters", "No other control characters"))), FREE_TEXT] = None
    revision: RevisionNumber | None = Field(
        default=None, description="The revision decided, as `If-Match` names it; 412 when it is not the latest.")
    tools_hash: Annotated[str | None, Field(pattern="^[0-9a-f]{64}$", description=(
        "The `tools_hash` of the probe the reviewer looked at. Optional; when given, 412 unless it is still "
        "the decided revision's latest `ok` probe, so an approval takes as its drift baseline the surface "
        "that was reviewed, not one a re-probe put there after the review."))] = None


class RegistrationQuery(BaseModel):
    """Query of the registration lists. Unknown query parameters are ignored."""

    status: Status | None = None
    submitter_id: UUID | None = None
    search: Annotated[str | None, Field(max_length=200), AfterValidator(plain_search_text)] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=2_147_483_647)] = 0
    # Administrators only (403 for anyone else): by the latest probe, and by drift.
    outcome: ProbeOutcome | None = None
    drifted: bool | None = None
    findings: Severity | None = None

    @property
    def filters_attestation(self) -> bool:
        return self.outcome is not None or self.drifted is not None or self.findings is not None


class FindingCounts(BaseModel):
    high: int
    medium: int
    low: int


class AttestationSummary(BaseModel):
    """The registration's latest probe in brief (API.md, *Attestation*)."""

    outcome: ProbeOutcome
    checked_at: datetime
    tool_count: int
    tools_hash: str | None
    drifted: bool = Field(description="An `ok` probe of the published revision answered another tools_hash than "
                                      "its baseline, and no administrator has accepted it yet.")
    findings: FindingCounts = Field(description="How many findings of each severity the probe has.")


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
    revision: int = Field(description="The latest revision; to those who see only the published one, that one.")
    published_revision: int | None = Field(description="The revision the feed serves; null while none was approved.")
    published_version: str | None = Field(description="`version` of the published revision.")
    publication: Publication | None = Field(description="How the feed shows the published revision; null while none.")
    publication_message: str | None = Field(description="Shown by clients with a deprecated server.")
    attestation: AttestationSummary | None = Field(
        default=None, description="Its latest probe (to those who see only the published revision: the latest "
                                  "probe of that revision); null before the first.")


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
    user_id: UUID | None = Field(description="Who acted; null for entries the registry makes on its own.")
    action: AuditAction
    previous_status: Status | None
    new_status: Status | None
    revision: int = Field(description="The revision the entry is about.")
    metadata: dict[str, object]
    timestamp: datetime


class AuditTrail(BaseModel):
    results: list[AuditLogEntry]
