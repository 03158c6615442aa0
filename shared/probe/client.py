"""One MCP session through the egress guard, with the official SDK: negotiate, then read the
server's identity, instructions and every page of its tools (and of its prompts and resources
where its capabilities advertise them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx2
import mcp_types
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from shared.egress import EgressGuard

TransportName = Literal["streamable-http", "sse"]
CLIENT_INFO = mcp_types.Implementation(name="mcp-endpoint-registry", version="1.0")
# A listing that keeps handing out cursors is cut here; the byte and time caps bound it too.
MAX_PAGES = 50
_SERVER_INFO_FIELDS = ("name", "title", "version", "description", "website_url")
_TOOL_FIELDS = {"name", "title", "description", "input_schema", "annotations"}

PageT = TypeVar("PageT", bound=mcp_types.PaginatedResult)


@dataclass
class Session:
    """What the server said about itself."""

    protocol_version: str | None = None
    server_info: dict[str, Any] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    # Their names, titles and descriptions, which the findings read (only the names are stored).
    prompt_texts: list[dict[str, Any]] = field(default_factory=list)
    resource_texts: list[dict[str, Any]] = field(default_factory=list)


def _transport(url: str, transport: TransportName, guard: EgressGuard, limit: float,
               ) -> AbstractAsyncContextManager[Any]:
    if transport == "sse":
        def factory(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
                    auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
            return guard.client(headers=headers, timeout=limit)  # no auth, whatever is asked for

        return sse_client(url, timeout=limit, sse_read_timeout=limit, httpx_client_factory=factory)
    return _streamable(url, guard, limit)


@asynccontextmanager
async def _streamable(url: str, guard: EgressGuard, limit: float) -> AsyncIterator[Any]:
    async with guard.client(timeout=limit) as http, streamable_http_client(url, http_client=http) as streams:
        yield streams


async def _pages(fetch: Callable[[str | None], Awaitable[PageT]]) -> list[PageT]:
    pages: list[PageT] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None or cursor in seen:
            break
        seen.add(cursor)
    return pages


def _tool(tool: mcp_types.Tool) -> dict[str, Any]:
    data = tool.model_dump(mode="json", by_alias=False, exclude_none=True, include=_TOOL_FIELDS)
    return {"name": tool.name, "title": data.get("title"), "description": data.get("description"),
            "input_schema": data.get("input_schema", {}), "annotations": data.get("annotations")}


def _texts(item: mcp_types.Prompt | mcp_types.Resource) -> dict[str, Any]:
    texts: dict[str, Any] = {"name": item.name, "title": item.title, "description": item.description}
    if isinstance(item, mcp_types.Prompt) and item.arguments:
        texts["arguments"] = [{"name": argument.name, "description": argument.description}
                              for argument in item.arguments]
    return texts


async def speak(url: str, transport: TransportName, guard: EgressGuard, *, limit: float) -> Session:
    """Run one session; raises whatever the SDK or the guard raised when it fails."""
    client = Client(_transport(url, transport, guard, limit), mode="auto", cache=None, client_info=CLIENT_INFO,
                    read_timeout_seconds=limit)
    async with client:
        session = Session(protocol_version=client.protocol_version, instructions=client.instructions)
        if client.server_info is not None:
            info = client.server_info.model_dump(mode="json", exclude_none=True)
            session.server_info = {key: info[key] for key in _SERVER_INFO_FIELDS if key in info}
        capabilities = client.server_capabilities
        pages = await _pages(lambda cursor: client.list_tools(cursor=cursor))
        session.tools = [_tool(tool) for page in pages for tool in page.tools]
        if capabilities.prompts is not None:
            prompt_pages = await _pages(lambda cursor: client.list_prompts(cursor=cursor))
            session.prompt_texts = [_texts(prompt) for page in prompt_pages for prompt in page.prompts]
            session.prompts = [prompt["name"] for prompt in session.prompt_texts]
        if capabilities.resources is not None:
            resource_pages = await _pages(lambda cursor: client.list_resources(cursor=cursor))
            session.resource_texts = [_texts(resource) for page in resource_pages for resource in page.resources]
            session.resources = [resource["name"] for resource in session.resource_texts]
    return session
