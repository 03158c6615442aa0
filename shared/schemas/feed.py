"""The MCP Registry v0.1 feed: its query, its cursor, and the ServerResponse a registration becomes.

Every field of a ServerResponse stays within the limits of the official `server.schema.json`
(2025-12-11): `title` and `description` are cut to 100 characters, the rest of a registration
already satisfies them when it is stored.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.schemas.common import has_control_characters
from shared.schemas.registrations import SERVER_NAME_PATTERN, Transport, plain_search_text

SERVER_SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
OFFICIAL_META: Final = "io.modelcontextprotocol.registry/official"
LATEST = "latest"
TEXT_LIMIT = 100
ELLIPSIS = "…"
MAX_CURSOR_LENGTH = 4096

_SERVER_NAME = re.compile(SERVER_NAME_PATTERN)
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$")
_CURSOR_FIELDS: TypeAdapter[tuple[str, UUID, str | None, str | None, datetime | None, bool]] = TypeAdapter(
    tuple[str, UUID, str | None, str | None, datetime | None, bool]
)
_FILTERS = ("search", "version", "updated_since", "include_deleted")
# Server names are at most this long, so a longer search matches nothing.
MAX_SEARCH = 200
_NOT_A_CURSOR = "is not a cursor issued by this feed; send metadata.nextCursor as it was returned"


def summary(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` on one line, cut on a word boundary and ended with an ellipsis when it is too long."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    space = flat.rfind(" ", 0, limit)
    # A boundary in the first half would throw most of the text away; cut inside the word instead.
    head = flat[:space] if space >= limit // 2 else flat[: limit - len(ELLIPSIS)]
    return head + ELLIPSIS


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError("must be an RFC 3339 date-time with an offset, such as 2025-08-07T13:15:04Z")
        return datetime.fromisoformat(value.upper())
    return value


def in_utc_range(value: datetime) -> datetime:
    """A time with an offset that has a UTC form, as the driver sends it: year 1 at +14:00 or year 9999
    at -14:00 has none (an OverflowError there, a 500), so it is refused here."""
    if value.tzinfo is None:
        raise ValueError("must carry an offset")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall within the years 0001 to 9999 once converted to UTC") from None
    return value


def _printable(value: str | None) -> str | None:
    if value is not None and has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


def is_server_name(value: str) -> bool:
    return bool(_SERVER_NAME.fullmatch(value)) and 3 <= len(value) <= 200


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(in_utc_range)]
SearchText = Annotated[str | None, Field(max_length=MAX_SEARCH,
                                         description="Case-insensitive substring of the server name."),
                       AfterValidator(plain_search_text)]
# VS Code sends whatever the user typed: a search too long for any name answers an empty page, not 422.
QuerySearch = Annotated[str | None, Field(
    description=f"Case-insensitive substring of the server name; longer than {MAX_SEARCH} characters, it matches "
                "nothing."), AfterValidator(plain_search_text)]
IncludeDeleted = Annotated[bool | None, Field(
    description="`true` also lists servers that were published and are now deleted or withdrawn, with status "
                "`deleted`. Implied by `updated_since`. Default `false`.")]
VersionFilter = Annotated[str | None, Field(min_length=1, max_length=255, description="`latest` or one exact version."),
                          AfterValidator(_printable)]


class FeedCursor(BaseModel):
    """Where the previous page stopped, and the filters of the listing it belongs to.

    The position is the last row's sort key (its `server_name`, or its `updated_at` in an
    `updated_since` listing) and id, never an offset, so rows approved between two pages
    neither repeat nor push others out. The filters travel with it because clients (VS Code)
    send only `cursor`, `limit` and `version` for the pages after the first.
    """

    model_config = ConfigDict(frozen=True)

    after_key: str
    after_id: UUID
    search: SearchText
    version: VersionFilter
    updated_since: Annotated[datetime, AfterValidator(in_utc_range)] | None
    include_deleted: bool

    @model_validator(mode="after")
    def _key_fits_the_order(self) -> FeedCursor:
        # The key goes to SQL as a parameter: a forged one must still be a name or a time.
        if self.updated_since is not None:
            in_utc_range(datetime.fromisoformat(self.after_key))
        elif not is_server_name(self.after_key):
            raise ValueError("after_key must be a server name")
        return self

    @property
    def after_time(self) -> datetime:
        return datetime.fromisoformat(self.after_key)

    def encode(self) -> str:
        """Base64url without padding: VS Code appends the cursor to its URL without encoding it."""
        since = None if self.updated_since is None else self.updated_since.isoformat()
        fields = [self.after_key, str(self.after_id), self.search, self.version, since, self.include_deleted]
        raw = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> FeedCursor:
        if len(text) > MAX_CURSOR_LENGTH:
            raise ValueError(_NOT_A_CURSOR)
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            key, after_id, search, version, since, deleted = _CURSOR_FIELDS.validate_json(raw)
            return cls(after_key=key, after_id=after_id, search=search, version=version, updated_since=since,
                       include_deleted=deleted)
        except (ValueError, ValidationError):
            raise ValueError(_NOT_A_CURSOR) from None


def _cursor(value: Any) -> Any:
    return FeedCursor.decode(value) if isinstance(value, str) else value


class ServerQuery(BaseModel):
    """Query of the per-server operations. Unknown query parameters are ignored."""

    include_deleted: IncludeDeleted = None


class FeedQuery(BaseModel):
    """Query of `GET /v0.1/servers`. Unknown query parameters are ignored; an empty value is absent
    (shared.http.parse_query), so an empty `cursor` asks for the first page, as in the official registry."""

    search: QuerySearch = None
    version: VersionFilter = None
    updated_since: Annotated[Rfc3339 | None, Field(
        description="RFC 3339. Entries changed after it, including withdrawn or deleted ones (status `deleted`), "
                    "oldest change first.")] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 30
    include_deleted: IncludeDeleted = None
    # Decoded on the way in, but to clients an opaque string.
    cursor: Annotated[FeedCursor | None, BeforeValidator(_cursor), WithJsonSchema({"type": "string"}),
                      Field(description="`metadata.nextCursor` of the previous page.")] = None

    @field_validator("cursor")
    @classmethod
    def _cursor_fits_the_query(cls, cursor: FeedCursor | None, info: ValidationInfo) -> FeedCursor | None:
        for name in _FILTERS:
            sent = info.data.get(name)
            if cursor is not None and sent is not None and sent != getattr(cursor, name):
                raise ValueError(f"was issued for a listing with a different {name}")
        return cursor

    @model_validator(mode="after")
    def _continue_the_cursor_listing(self) -> FeedQuery:
        if self.cursor is not None:
            for name in _FILTERS:
                setattr(self, name, getattr(self.cursor, name))
        return self


class Remote(BaseModel):
    type: Transport
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", examples=["https://mcp.contoso.com/weather"])]


class ServerDetail(BaseModel):
    """The official `ServerDetail` (server.json), limited to what a registration carries."""

    schema_url: str = Field(SERVER_SCHEMA_URL, alias="$schema")
    name: Annotated[str, Field(min_length=3, max_length=200, pattern=SERVER_NAME_PATTERN,
                               examples=["com.contoso.mcp/weather-tools"])]
    title: Annotated[str, Field(min_length=1, max_length=TEXT_LIMIT, examples=["Weather Tools"])]
    description: Annotated[str, Field(min_length=1, max_length=TEXT_LIMIT)]
    version: Annotated[str, Field(min_length=1, max_length=255, examples=["1.0.0"])]
    remotes: list[Remote]


class OfficialMeta(BaseModel):
    status: Literal["active", "deprecated", "deleted"] = Field(
        description="`deprecated`: still usable, with `statusMessage` saying why not to; `deleted`: only in an "
                    "`updated_since` listing, for a server that left the registry.")
    status_message: str | None = Field(None, alias="statusMessage",
                                       description="Why a server is deprecated, shown by clients; absent otherwise.")
    published_at: datetime = Field(alias="publishedAt")
    updated_at: datetime = Field(alias="updatedAt")
    is_latest: bool = Field(True, alias="isLatest", description="Marks the version the registry serves for the name.")


class AttestationMeta(BaseModel):
    """`<REGISTRY_META_NAMESPACE>/attestation`: the latest probe of the published revision."""

    model_config = ConfigDict(populate_by_name=True)

    outcome: str
    checked_at: datetime = Field(alias="checkedAt")
    tool_count: int = Field(alias="toolCount")
    tools_hash: str | None = Field(alias="toolsHash")
    drifted: bool


class ResponseMeta(BaseModel):
    # Beside the official entry, "<REGISTRY_META_NAMESPACE>/attestation" (its key is a setting).
    model_config = ConfigDict(extra="allow")

    official: OfficialMeta = Field(alias=OFFICIAL_META)


class ServerResponse(BaseModel):
    server: ServerDetail
    meta: ResponseMeta = Field(alias="_meta")


class ListMetadata(BaseModel):
    next_cursor: str | None = Field(None, alias="nextCursor", description="Absent on the last page.")
    count: int


class ServerList(BaseModel):
    servers: list[ServerResponse]
    metadata: ListMetadata


def server_response(row: Mapping[str, Any], meta_namespace: str) -> ServerResponse:
    """A feed row (see services.feed) as the official ServerResponse."""
    status = (row["publication"] or "active") if row["active"] else "deleted"
    attested: dict[str, Any] = {}
    if row["attestation"] is not None and row["active"]:
        attested[f"{meta_namespace}/attestation"] = AttestationMeta.model_validate(row["attestation"]).model_dump(
            mode="json", by_alias=True)
    return ServerResponse.model_validate({
        "server": {
            "$schema": SERVER_SCHEMA_URL,
            "name": row["server_name"],
            "title": summary(row["endpoint_name"]),
            "description": summary(row["description"] or "") or summary(row["endpoint_name"]),
            "version": row["version"],
            "remotes": [{"type": row["transport"], "url": row["endpoint_url"]}],
        },
        "_meta": {OFFICIAL_META: {
            "status": status,
            "statusMessage": row["publication_message"] if status == "deprecated" else None,
            "publishedAt": row["published_at"],
            "updatedAt": row["updated_at"],
            "isLatest": row["is_latest"],
        }, **attested},
    })


def server_list(rows: Sequence[Mapping[str, Any]], next_cursor: FeedCursor | None, meta_namespace: str,
                ) -> ServerList:
    return ServerList.model_validate({
        "servers": [server_response(row, meta_namespace) for row in rows],
        "metadata": {"nextCursor": None if next_cursor is None else next_cursor.encode(), "count": len(rows)},
    })
