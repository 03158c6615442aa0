"""Attestation probes: speak MCP to a registered endpoint through the egress guard, and say what
it exposes. Importing this package stays cheap: the MCP SDK and its HTTP stack load on the first
`probe(...)` call, so the API's cold start does not carry them."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.endpoint_policy import IPNetwork
from shared.probe.findings import Finding, Surface, scan
from shared.probe.result import OUTCOMES, Outcome, ProbeResult
from shared.probe.surface import clean, clean_text, surface_hash, tool_surface

if TYPE_CHECKING:
    import httpcore2

    from shared.config import ProbeSettings
    from shared.egress import EgressGuard, Resolver
    from shared.probe.client import Session, TransportName

__all__ = ["OUTCOMES", "Finding", "Outcome", "ProbeResult", "Target", "probe", "probe_target"]

# The probe's result says what went wrong with an endpoint. The SDK's and httpx's own records would
# log every URL at INFO and put endpoint-controlled text (bodies that failed to parse) into ours.
logging.getLogger("mcp").setLevel(logging.CRITICAL)
logging.getLogger("httpx2").setLevel(logging.WARNING)


class Target(Protocol):
    """What a probe needs of a registration: whoever stores the result holds the rest."""

    @property
    def endpoint_url(self) -> str: ...
    @property
    def transport(self) -> TransportName: ...
    @property
    def declared_tools(self) -> Sequence[str]: ...
    @property
    def known_tools(self) -> Mapping[str, str]: ...


async def probe_target(target: Target, settings: ProbeSettings) -> ProbeResult:
    """Probe a target under the probe settings' endpoint rules."""
    return await probe(target.endpoint_url, target.transport, allowed_networks=settings.endpoints.allowed_networks,
                       allow_http=settings.endpoints.allow_http, declared_tools=target.declared_tools,
                       known_tools=target.known_tools)


async def probe(url: str, transport: TransportName, *, allowed_networks: Iterable[IPNetwork] = (),
                allow_http: bool = False, declared_tools: Sequence[str] = (),
                known_tools: Mapping[str, str] | None = None, resolver: Resolver | None = None,
                connector: httpcore2.AsyncNetworkBackend | None = None, ssl_context: ssl.SSLContext | None = None,
                time_limit: float | None = None, max_bytes: int | None = None) -> ProbeResult:
    """Probe `url` over `transport`; never raises for anything the endpoint does.

    `resolver`, `connector` and `ssl_context` replace the system's (tests inject them so that no
    name is looked up and every connection attempt is seen); `known_tools` maps the tool names of
    other published servers to their server names, for the shadowing rule. The time limit covers
    the findings too, and `duration_ms` is the whole of it; the result is always storable.
    """
    from shared import egress
    from shared.probe.classify import describe

    started = time.monotonic()
    checked_at = datetime.now(UTC)
    limit = time_limit or egress.TIME_LIMIT
    try:
        result = await _probe(url, transport, started=started, checked_at=checked_at, limit=limit,
                              allowed_networks=allowed_networks, allow_http=allow_http, declared_tools=declared_tools,
                              known_tools=known_tools, resolver=resolver, connector=connector,
                              ssl_context=ssl_context, max_bytes=max_bytes)
    except Exception as failure:  # whatever the endpoint's answer made go wrong here is its probe's outcome
        result = ProbeResult(outcome="refused", checked_at=checked_at, duration_ms=0,
                             error=f"the registry could not process the endpoint's answer: {describe(failure)}")
    return dataclasses.replace(result.clipped(), duration_ms=int((time.monotonic() - started) * 1000))


async def _probe(url: str, transport: TransportName, *, started: float, checked_at: datetime, limit: float,
                 allowed_networks: Iterable[IPNetwork], allow_http: bool, declared_tools: Sequence[str],
                 known_tools: Mapping[str, str] | None, resolver: Resolver | None,
                 connector: httpcore2.AsyncNetworkBackend | None, ssl_context: ssl.SSLContext | None,
                 max_bytes: int | None) -> ProbeResult:
    import anyio

    from shared import egress
    from shared.probe.classify import classify

    budget = egress.Budget(max_bytes=max_bytes or egress.MAX_BYTES)
    guard = egress.EgressGuard(allowed_networks=allowed_networks, allow_http=allow_http,
                               resolver=resolver or egress.system_resolver, connector=connector,
                               ssl_context=ssl_context, budget=budget)
    session: Session | None = None
    outcome: Outcome
    error: str | None = None
    auth: dict[str, Any] | None = None
    with anyio.move_on_after(limit) as scope:
        budget.stop = scope.cancel
        outcome, session, error, auth = await _attempt(url, transport, guard, limit)
    if scope.cancelled_caught:
        session, auth = None, None
        outcome, error = "timeout", f"no complete answer within {limit:g} s"
        if budget.refusal is not None or budget.exceeded:
            outcome, error = classify(budget, None)
    if session is None:
        return ProbeResult(outcome=outcome, checked_at=checked_at, duration_ms=0, error=error,
                           auth=clean(auth) if auth is not None else None)
    return await _surface(session, outcome=outcome, checked_at=checked_at, error=error, deadline=started + limit,
                          declared_tools=declared_tools, known_tools=known_tools)


def _by_name(item: Mapping[str, Any]) -> str:
    return clean_text(str(item["name"]))


async def _surface(session: Session, *, outcome: Outcome, checked_at: datetime, error: str | None, deadline: float,
                   declared_tools: Sequence[str], known_tools: Mapping[str, str] | None) -> ProbeResult:
    """The findings over what the endpoint sent (within the probe's deadline), then the surface as
    stored and its hash. Everything is put in the stored order first (by the stored names), so
    the findings' pointers point into the stored probe."""
    import anyio.to_thread

    tools = sorted(session.tools, key=_by_name)
    prompts = sorted(session.prompt_texts or [{"name": name} for name in session.prompts], key=_by_name)
    resources = sorted(session.resource_texts or [{"name": name} for name in session.resources], key=_by_name)
    found = await scan(Surface(tools=tools, instructions=session.instructions, server_info=session.server_info,
                               prompts=prompts, resources=resources),
                       deadline=deadline, declared_tools=declared_tools, known_tools=known_tools)

    def stored() -> tuple[dict[str, Any], str]:
        surface = tool_surface(tools=clean(tools), instructions=clean(session.instructions),
                               prompts=[_by_name(prompt) for prompt in prompts],
                               resources=[_by_name(resource) for resource in resources])
        return surface, surface_hash(surface)

    # Off the event loop: a surface of many small strings takes a pure-Python JCS a while.
    surface, tools_hash = await anyio.to_thread.run_sync(stored)
    return ProbeResult(
        outcome=outcome, checked_at=checked_at, duration_ms=0, protocol_version=session.protocol_version,
        server_info=clean(session.server_info), instructions=surface["instructions"], tools=surface["tools"],
        prompts=surface["prompts"], resources=surface["resources"], tools_hash=tools_hash, findings=found.kept,
        findings_omitted=dict(found.omitted), error=error)


async def _attempt(url: str, transport: TransportName, guard: EgressGuard, limit: float,
                   ) -> tuple[Outcome, Session | None, str | None, dict[str, Any] | None]:
    from shared import egress
    from shared.probe.auth import protected_resource
    from shared.probe.classify import classify

    try:
        await guard.admit(url)
    except egress.Refused as refusal:
        return "refused", None, str(refusal), None
    except egress.Unreachable as problem:
        return "unreachable", None, str(problem), None
    session, failure = await _speak(url, transport, guard, limit)
    if session is not None:
        return "ok", session, None, None
    outcome, error = classify(guard.budget, failure)
    if outcome == "auth_required":
        return outcome, None, error, await protected_resource(url, guard)
    if outcome == "not_mcp" and not guard.budget.exceeded:
        other: TransportName = "sse" if transport == "streamable-http" else "streamable-http"
        session, _ = await _speak(url, other, guard, limit)
        if session is not None:
            return "wrong_transport", session, f"the endpoint speaks {other}, not {transport}", None
        outcome, error = classify(guard.budget, failure)
    return outcome, None, error, None


async def _speak(url: str, transport: TransportName, guard: EgressGuard, limit: float,
                 ) -> tuple[Session | None, BaseException | None]:
    from shared.probe.client import speak

    try:
        return await speak(url, transport, guard, limit=limit), None
    except Exception as failure:  # anything the endpoint makes the SDK raise is a finding, not a fault
        return None, failure

