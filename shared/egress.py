"""The egress guard: the only way the registry reaches a URL that someone else chose.

Probes use it now, and the next outbound work (webhooks, package registries) goes through it too:
it lives beside the probe package rather than in it. A probe fetches URLs that users typed, from
inside our network. So a host name is resolved
once, through an injectable resolver; every address it resolves to must pass
`endpoint_policy.address_refusal` (the submission rules) unless an operator allowed its network;
and the connection goes to the address that was checked. The pinning sits in the network backend
under httpx (`connect_tcp` gets the host name and opens a socket to the pinned address instead),
so the URL, the `Host` header, SNI and certificate verification all keep the host name, and no
second lookup happens that a rebinding DNS server could answer differently. A host the guard did
not admit has no pin, so nothing (a redirect, an SSE `endpoint` event, a metadata URL) can
reach it. The same backend counts the bytes read, so one cap covers headers, bodies and streams.

That cap counts bytes on the wire, so it holds only while they are the bytes read: httpx would
undo up to five layers of `Content-Encoding` (two of gzip make 5,684 bytes 400 MiB), and the
MCP SDK reads a JSON answer whole. Every request therefore asks for `Accept-Encoding: identity`,
whatever a library set, and an answer sent encoded anyway is refused before any of it is decoded.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio
import httpcore2
import httpx2

from shared.endpoint_policy import IPAddress, IPNetwork, address_refusal

USER_AGENT = "mcp-endpoint-registry-probe/1.0 (attestation probe of a registered MCP endpoint)"
MAX_BYTES = 1024 * 1024
TIME_LIMIT = 10.0
# What a refusal or lookup error may quote of a URL or host (a submitted host can be long; the
# stored error has room for 2000 characters).
MAX_QUOTED = 200
MAX_REASON = 1000
# Headers that could carry a credential: none is ever sent, whatever a library would add.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


class Refused(Exception):
    """The guard will not let the probe reach this URL or address."""


class Unreachable(Exception):
    """The name did not resolve, or no connection could be made."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason[:MAX_REASON])


class EncodedAnswer(httpx2.DecodingError):
    """The endpoint answered with a Content-Encoding the probe did not ask for."""


def quoted(text: str) -> str:
    """`text` as a message may quote it: at most MAX_QUOTED characters."""
    return text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "..."


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, looked up off the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass
class Seen:
    """One HTTP answer the probe received (never its body)."""

    url: str
    status: int
    content_type: str
    www_authenticate: str | None
    location: str | None


@dataclass
class Budget:
    """What one probe may still read, and what happened at the network layer: the facts the
    outcome is classified from, whatever shape the MCP library's own errors take."""

    max_bytes: int = MAX_BYTES
    read: int = 0
    exceeded: bool = False
    refusal: str | None = None
    connect_error: str | None = None
    seen: list[Seen] = field(default_factory=list)
    # Ends the whole probe at once: a library may swallow the read error and wait for more.
    stop: Callable[[], None] | None = None

    def count(self, size: int) -> None:
        self.read += size
        if self.read > self.max_bytes:
            self.exceeded = True
            if self.stop is not None:
                self.stop()
            raise httpcore2.ReadError(f"the answers exceeded {self.max_bytes} bytes")


@dataclass(frozen=True)
class Target:
    """A URL the guard admitted: its host and port, and the one address to connect to."""

    url: str
    host: str
    port: int
    address: IPAddress


class _CappedStream(httpcore2.AsyncNetworkStream):
    def __init__(self, inner: httpcore2.AsyncNetworkStream, budget: Budget) -> None:
        self._inner = inner
        self._budget = budget

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        data = await self._inner.read(max_bytes, timeout)
        self._budget.count(len(data))
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore2.AsyncNetworkStream:  # noqa: ASYNC109
        return _CappedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout), self._budget)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore2.AsyncNetworkBackend):
    """Connects a host name only to the address the guard checked for it."""

    def __init__(self, pins: dict[tuple[str, int], IPAddress], connector: httpcore2.AsyncNetworkBackend,
                 budget: Budget) -> None:
        self._pins = pins
        self._connector = connector
        self._budget = budget

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None,
                          ) -> httpcore2.AsyncNetworkStream:
        address = self._pins.get((host.lower(), port))
        if address is None:
            self._budget.refusal = f"{quoted(host)}:{port} was not checked by the egress guard"
            raise httpcore2.ConnectError(self._budget.refusal)
        try:
            stream = await self._connector.connect_tcp(str(address), port, timeout=timeout)
        except httpcore2.ConnectError as error:
            self._budget.connect_error = (f"could not connect to {quoted(host)}:{port}: "
                                          f"{quoted(str(error) or 'connection failed')}")
            raise
        return _CappedStream(stream, self._budget)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("the probe connects to TCP hosts only")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx's own transport (its error mapping, HTTP/1.1 framing) over the pinned backend."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext, budget: Budget) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        # httpx offers no parameter for the network backend; the pool it would build is replaced by
        # the same pool over ours. The guard's tests fail loudly if a release changes this.
        assert isinstance(self._pool, httpcore2.AsyncConnectionPool)
        self._pool = httpcore2.AsyncConnectionPool(ssl_context=ssl_context, network_backend=backend, retries=0,
                                                   max_connections=4, http1=True, http2=False)
        self._budget = budget

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        for name in _CREDENTIAL_HEADERS:
            request.headers.pop(name, None)
        request.headers["accept-encoding"] = "identity"
        response = await super().handle_async_request(request)
        self._budget.seen.append(Seen(
            url=str(request.url.copy_with(query=None)), status=response.status_code,
            content_type=response.headers.get("content-type", "").split(";", 1)[0].strip().lower(),
            www_authenticate=response.headers.get("www-authenticate"), location=response.headers.get("location")))
        encodings = [coding.strip().lower() for value in response.headers.get_list("content-encoding")
                     for coding in value.split(",") if coding.strip()]
        if any(coding != "identity" for coding in encodings):
            await response.aclose()
            self._budget.refusal = (f"the endpoint answered with Content-Encoding "
                                    f"{quoted(', '.join(encodings))!r} although the probe asked for identity; "
                                    "the probe reads no compressed answer (its size cap counts bytes received)")
            raise EncodedAnswer(self._budget.refusal, request=request)
        return response


@cache
def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, hostname checking on: one context for every probe of a worker."""
    return ssl.create_default_context()


def default_connector() -> httpcore2.AsyncNetworkBackend:
    return httpcore2.AnyIOBackend()


class EgressGuard:
    """Admits URLs for one probe and hands out HTTP clients that reach only what it admitted."""

    def __init__(self, *, allowed_networks: Iterable[IPNetwork] = (), allow_http: bool = False,
                 resolver: Resolver = system_resolver, connector: httpcore2.AsyncNetworkBackend | None = None,
                 ssl_context: ssl.SSLContext | None = None, budget: Budget | None = None) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.allow_http = allow_http
        self.budget = budget or Budget()
        self._resolver = resolver
        self._pins: dict[tuple[str, int], IPAddress] = {}
        self._ssl_context = ssl_context or default_ssl_context()
        self._backend = _PinnedBackend(self._pins, connector or default_connector(), self.budget)

    async def admit(self, url: str) -> Target:
        """Check `url` and pin its host to one checked address; Refused or Unreachable otherwise."""
        try:
            parsed = httpx2.URL(url)
        except httpx2.InvalidURL as error:
            raise self._refuse(f"{quoted(url)!r} is not a URL: {error}") from None
        if parsed.scheme != "https" and not (parsed.scheme == "http" and self.allow_http):
            raise self._refuse(f"the scheme {parsed.scheme!r} is not allowed")
        if parsed.userinfo:
            raise self._refuse("the URL carries a user name or password")
        # The ASCII form (IDNA) is the one httpcore hands to the backend, so pins are keyed by it.
        host = parsed.raw_host.decode("ascii").lower()
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if (host, port) in self._pins:
            return Target(url, host, port, self._pins[(host, port)])
        addresses = await self._resolve(host, port)
        for address in addresses:
            reason = address_refusal(address, self.allowed_networks)
            if reason is not None:
                raise self._refuse(f"{quoted(host)} resolves to {address}, {reason}")
        self._pins[(host, port)] = addresses[0]
        return Target(url, host, port, addresses[0])

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            addresses = list(await self._resolver(host, port))
        except (OSError, UnicodeError) as error:
            raise Unreachable(f"{quoted(host)} did not resolve: {quoted(str(error))}") from None
        if not addresses:
            raise Unreachable(f"{quoted(host)} did not resolve to any address")
        return addresses

    def _refuse(self, reason: str) -> Refused:
        self.budget.refusal = reason[:MAX_REASON]
        return Refused(self.budget.refusal)

    def client(self, *, headers: dict[str, str] | None = None, timeout: float = TIME_LIMIT) -> httpx2.AsyncClient:
        """An HTTP client that follows no redirect, reads no environment (proxies, .netrc) and
        sends no credential; the MCP transports' own same-origin redirect following stops at
        `max_redirects=0` too."""
        transport = _GuardedTransport(self._backend, self._ssl_context, self.budget)
        return httpx2.AsyncClient(transport=transport, headers={**(headers or {}), "User-Agent": USER_AGENT,
                                                                "Accept-Encoding": "identity"},
                                  timeout=httpx2.Timeout(timeout), follow_redirects=False, max_redirects=0,
                                  trust_env=False)
