"""Helpers for the sign-in tests: one token builder, forged tokens, a fake Microsoft Graph."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.errors import ApiError
from tools.authority import DevAuthority, SigningKey, send_json

T = TypeVar("T")
Configure = Callable[..., None]

INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def run(awaitable: Awaitable[T]) -> T:
    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def refusal(awaitable: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        run(awaitable)
    return caught.value


def assert_invalid(error: ApiError, detail: str) -> None:
    assert (error.status, error.detail, error.headers) == (401, detail, INVALID_TOKEN)


def token(
    authority: DevAuthority,
    *,
    set_claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    header: dict[str, Any] | None = None,
    key: SigningKey | None = None,
    **options: Any,
) -> str:
    """A token from `authority`; `options` go to DevAuthority.claims, then claims are set and dropped."""
    claims = authority.claims(**options)
    claims.update(set_claims or {})
    for name in drop:
        claims.pop(name, None)
    signing_key = key or authority.keys[0]
    # PyJWS signs any payload bytes, where jwt.encode would refuse some of the bad claims we test.
    return jwt.api_jws.encode(json.dumps(claims).encode(), signing_key.private_key, algorithm="RS256",
                              headers={"kid": signing_key.kid, **(header or {})})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Any, claims: Any, signature: bytes = b"") -> str:
    """A compact JWS with arbitrary segments, for what PyJWT refuses to produce."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_with_public_key(authority: DevAuthority, claims: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC keyed with the RSA public key the verifier holds."""
    key = authority.keys[0]
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


def jwks_requests(authority: DevAuthority) -> int:
    return authority.requests[f"/{authority.tenant_id}/discovery/v2.0/keys"]


@dataclass
class GraphCall:
    path: str
    body: Any
    authorization: str | None


@dataclass
class FakeGraph:
    """Answers checkMemberGroups on loopback: with the group (`member`), without it, or a 500 (`fail`)."""

    member: bool = False
    fail: bool = False
    calls: list[GraphCall] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                graph.calls.append(GraphCall(self.path, body, self.headers.get("Authorization")))
                if graph.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                groups = body.get("groupIds", []) if isinstance(body, dict) else []
                send_json(self, {"value": groups if graph.member else []})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-graph", daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass(frozen=True)
class FakeAccessToken:
    token: str


@dataclass
class FakeCredential:
    """Stands in for DefaultAzureCredential; `broken` makes it fail like a missing identity."""

    broken: bool = False
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    async def get_token(self, *scopes: str) -> FakeAccessToken:
        self.scopes.append(scopes)
        if self.broken:
            raise RuntimeError("no managed identity here")
        return FakeAccessToken("graph-access-token")


class FakeClock:
    """A monotonic clock the tests move by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
