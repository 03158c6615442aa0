"""JSON over HTTP for sign-in: the OpenID metadata, the signing keys and Microsoft Graph.

The standard library's urllib does the HTTP, run in a worker thread so the event loop never
waits on the network. It is the smallest correct choice here: aiohttp and httpx are not runtime
dependencies, and urllib already verifies TLS against the system trust store, honours proxy
settings from the environment and handles chunked bodies. Each socket operation times out
after 5 seconds and `asyncio.wait_for` bounds the whole exchange to 10, so a server that
trickles bytes cannot hold a request for long. Redirects are refused: a redirect could lead
away from the hosts the URL policy allowed.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 5.0
TOTAL_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024
_LOOPBACK_NAMES = ("localhost",)


class FetchError(Exception):
    """The answer could not be obtained, or was not a JSON document. The message holds no secrets."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Loopback addresses are never sent through a proxy from the environment.
_PROXIED = urllib.request.build_opener(_RefuseRedirects)
_DIRECT = urllib.request.build_opener(_RefuseRedirects, urllib.request.ProxyHandler({}))


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> bool:
    """True for an https URL, or an http URL on a loopback host; the caller refuses anything else."""
    parts = urlsplit(url)
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


def _exchange(request: urllib.request.Request) -> Any:
    opener = _DIRECT if is_loopback(urlsplit(request.full_url).hostname) else _PROXIED
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as error:
        error.close()
        raise FetchError(f"HTTP status {error.code}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise FetchError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
    return json.loads(body)


async def fetch_json(url: str, *, body: Mapping[str, Any] | None = None, bearer: str | None = None) -> Any:
    """GET `url` (POST `body` as JSON when given) and return the decoded JSON answer."""
    if not check_url(url):
        raise FetchError("refused a URL that is neither https nor http on a loopback host")
    headers = {"Accept": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    method = "GET" if data is None else "POST"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - check_url above
    try:
        return await asyncio.wait_for(asyncio.to_thread(_exchange, request), TOTAL_TIMEOUT_SECONDS)
    except (OSError, ValueError, RecursionError, http.client.HTTPException) as error:
        # URLError and TimeoutError are OSErrors. Only the type is kept: an error's text can quote the URL.
        raise FetchError(type(error).__name__) from error
