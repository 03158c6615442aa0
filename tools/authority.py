"""A local sign-in authority for development and tests.

It serves what the API reads from Entra ID — the v2 and v1 OpenID metadata of one tenant and
its signing keys — over loopback HTTP, and mints RS256 access tokens shaped like Entra's. The
API's validator is the production one; it only learns a different `ENTRA_AUTHORITY`.

    python -m tools.authority --port 7072      # serve until Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tools.signals import wait_until_stopped

DEFAULT_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEFAULT_CLIENT_ID = "6c1f3c2e-3b7a-4a8e-9d43-0f6f1d6a2b10"
DEFAULT_SCOPE = "access_as_user"
DEFAULT_KEY_DIR = Path(".data") / "authority"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def send_json(handler: BaseHTTPRequestHandler, body: Any) -> None:
    """Answer a stdlib HTTP handler's request with 200 and `body` as JSON."""
    payload = json.dumps(body).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or uuid.uuid4().hex[:16], rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def load_or_create(cls, directory: Path) -> SigningKey:
        """The key kept under `directory`, so tokens minted on one run stay valid on the next."""
        path = directory / "signing-key.pem"
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            return cls((directory / "signing-key.kid").read_text().strip(), loaded)
        key = cls.generate()
        directory.mkdir(parents=True, exist_ok=True)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        (directory / "signing-key.kid").write_text(key.kid)
        return key

    def jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64url_uint(numbers.n),
                "e": _b64url_uint(numbers.e)}


@dataclass
class DevAuthority:
    """Metadata, keys and tokens of one tenant, served on loopback in a background thread."""

    tenant_id: str = DEFAULT_TENANT_ID
    client_id: str = DEFAULT_CLIENT_ID
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate()])
    requests: Counter[str] = field(default_factory=Counter)
    available: bool = True
    # Where a running authority is reached, for minting tokens without serving (tools/token.py).
    base_url: str | None = None
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None and self.base_url is not None:
            return self.base_url.rstrip("/")
        assert self._server is not None, "authority not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def v2_issuer(self) -> str:
        return f"{self.url}/{self.tenant_id}/v2.0"

    @property
    def v1_issuer(self) -> str:
        # Entra's v1 issuer lives on another host; keep that shape with a path of our own.
        return f"{self.url}/sts/{self.tenant_id}/"

    def metadata(self, version: str) -> dict[str, Any]:
        issuer = self.v2_issuer if version == "v2" else self.v1_issuer
        return {
            "issuer": issuer,
            "jwks_uri": f"{self.url}/{self.tenant_id}/discovery/v2.0/keys",
            "authorization_endpoint": f"{self.url}/{self.tenant_id}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.url}/{self.tenant_id}/oauth2/v2.0/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                authority.requests[path] += 1
                body = authority.answer(path)
                if body is None or not authority.available:
                    self.send_response(404 if authority.available else 503)
                    self.end_headers()
                    return
                send_json(self, body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="dev-authority", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, path: str) -> dict[str, Any] | None:
        base = f"/{self.tenant_id}"
        if path == f"{base}/v2.0/.well-known/openid-configuration":
            return self.metadata("v2")
        if path == f"{base}/.well-known/openid-configuration":
            return self.metadata("v1")
        if path == f"{base}/discovery/v2.0/keys":
            return {"keys": [key.jwk() for key in self.keys]}
        return None

    def rotate(self) -> SigningKey:
        """Publish a new key alongside the current ones and sign with it from now on."""
        key = SigningKey.generate()
        self.keys.insert(0, key)
        return key

    def claims(
        self,
        *,
        oid: str | None = None,
        name: str = "Dev User",
        email: str | None = "dev.user@example.com",
        admin: bool = False,
        scopes: tuple[str, ...] | None = (DEFAULT_SCOPE,),
        roles: tuple[str, ...] = (),
        lifetime: int = 3600,
        version: str = "v2",
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": self.client_id if version == "v2" else f"api://{self.client_id}",
            "iss": self.v2_issuer if version == "v2" else self.v1_issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "oid": oid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"dev-user:{name}")),
            "sub": uuid.uuid4().hex,
            "name": name,
            "ver": "2.0" if version == "v2" else "1.0",
        }
        if email is not None:
            claims["preferred_username"] = email
            claims["email"] = email
        if scopes is not None:
            claims["scp"] = " ".join(scopes)
        all_roles = (*roles, "Registry.Admin") if admin else roles
        if all_roles:
            claims["roles"] = list(all_roles)
        return claims

    def sign(
        self, claims: dict[str, Any], *, key: SigningKey | None = None, headers: dict[str, Any] | None = None
    ) -> str:
        signing_key = key or self.keys[0]
        return jwt.encode(claims, signing_key.private_key, algorithm="RS256",
                          headers={"kid": signing_key.kid, **(headers or {})})

    def mint(self, **options: Any) -> str:
        return self.sign(self.claims(**options))


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a local Entra-like sign-in authority on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7072, help="port to listen on (default 7072)")
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR, help="where the signing key is kept")
    args = parser.parse_args()
    authority = DevAuthority(keys=[SigningKey.load_or_create(args.key_dir)])
    print(f"authority: {authority.start(args.host, args.port)}  tenant {authority.tenant_id}", flush=True)
    wait_until_stopped()
    authority.stop()


if __name__ == "__main__":
    main()
