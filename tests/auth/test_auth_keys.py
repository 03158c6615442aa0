"""The signing-key cache: discovery, rotation, floods of unknown keys, an authority that is down."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import tokens
from shared.auth.fetch import FetchError, check_url, fetch_json
from shared.errors import ApiError, ServiceUnavailable
from tests.auth.auth_kit import FakeClock, assert_invalid, jwks_requests, refusal, run, token
from tools.authority import DevAuthority, SigningKey

UNKNOWN_KEY = "The token is signed with a key the tenant does not publish."
KEYS_UNAVAILABLE = "The sign-in keys cannot be loaded right now. Try again shortly."


@pytest.fixture(scope="module")
def attacker() -> Iterator[DevAuthority]:
    """Another authority on loopback, with its own key, that must never be asked anything."""
    authority = DevAuthority()
    authority.start()
    yield authority
    authority.stop()


def test_discovery_reads_both_metadata_documents_and_the_keys_once(issuer: DevAuthority) -> None:
    for version in ("v2", "v1", "v2"):
        run(tokens.validate(token(issuer, version=version)))
    base = f"/{issuer.tenant_id}"
    assert dict(issuer.requests) == {
        f"{base}/v2.0/.well-known/openid-configuration": 1,
        f"{base}/.well-known/openid-configuration": 1,
        f"{base}/discovery/v2.0/keys": 1,
    }


def test_concurrent_cold_requests_share_one_fetch(issuer: DevAuthority) -> None:
    async def many() -> None:
        await asyncio.gather(*(tokens.validate(token(issuer, name=f"User {n}")) for n in range(20)))

    run(many())
    assert jwks_requests(issuer) == 1


def test_a_rotated_key_is_accepted_after_one_refresh(issuer: DevAuthority, clock: FakeClock) -> None:
    run(tokens.validate(token(issuer)))
    old_key = issuer.keys[0]
    issuer.rotate()
    clock.advance(31)
    run(tokens.validate(token(issuer)))
    run(tokens.validate(token(issuer, key=old_key, name="Old key")))
    assert jwks_requests(issuer) == 2


def test_unknown_keys_refresh_at_most_once_every_thirty_seconds(issuer: DevAuthority, clock: FakeClock) -> None:
    run(tokens.validate(token(issuer)))
    issuer.rotate()
    assert_invalid(refusal(tokens.validate(token(issuer))), UNKNOWN_KEY)
    assert jwks_requests(issuer) == 1
    clock.advance(29)
    assert_invalid(refusal(tokens.validate(token(issuer, name="Again"))), UNKNOWN_KEY)
    assert jwks_requests(issuer) == 1


def test_a_flood_of_unknown_kids_makes_at_most_two_key_fetches(issuer: DevAuthority, clock: FakeClock) -> None:
    run(tokens.validate(token(issuer)))
    clock.advance(31)
    flood = [token(issuer, header={"kid": f"unknown-{n}"}) for n in range(50)]

    async def send() -> list[BaseException | Any]:
        return await asyncio.gather(*(tokens.validate(item) for item in flood), return_exceptions=True)

    for outcome in run(send()):
        assert isinstance(outcome, ApiError)
        assert_invalid(outcome, UNKNOWN_KEY)
    for item in flood:
        assert_invalid(refusal(tokens.validate(item)), UNKNOWN_KEY)
    assert jwks_requests(issuer) <= 2


def test_a_cold_flood_of_unknown_kids_makes_one_fetch(issuer: DevAuthority) -> None:
    async def send() -> list[BaseException | Any]:
        flood = (tokens.validate(token(issuer, header={"kid": f"unknown-{n}"})) for n in range(50))
        return await asyncio.gather(*flood, return_exceptions=True)

    assert all(getattr(outcome, "detail", None) == UNKNOWN_KEY for outcome in run(send()))
    assert jwks_requests(issuer) == 1


@pytest.mark.parametrize("header_key", ["jku", "x5u", "jwk"])
def test_keys_offered_in_the_header_are_never_fetched_or_used(
    issuer: DevAuthority, attacker: DevAuthority, header_key: str
) -> None:
    evil_key = attacker.keys[0]
    offered: dict[str, Any] = {
        "jku": f"{attacker.url}/{attacker.tenant_id}/discovery/v2.0/keys",
        "x5u": f"{attacker.url}/cert.pem",
        "jwk": evil_key.jwk(),
    }
    forged = token(issuer, key=evil_key, header={header_key: offered[header_key]})
    assert_invalid(refusal(tokens.validate(forged)), UNKNOWN_KEY)
    impostor = SigningKey(issuer.keys[0].kid, evil_key.private_key)
    forged_with_our_kid = token(issuer, key=impostor, header={header_key: offered[header_key]})
    assert_invalid(refusal(tokens.validate(forged_with_our_kid)), "The token signature is invalid.")
    assert sum(attacker.requests.values()) == 0
    assert jwks_requests(issuer) == 1


def test_a_down_authority_with_a_warm_cache_still_validates(issuer: DevAuthority, clock: FakeClock) -> None:
    run(tokens.validate(token(issuer)))
    issuer.available = False
    clock.advance(25 * 3600)
    run(tokens.validate(token(issuer, name="After a day")))
    assert jwks_requests(issuer) == 1  # the metadata answered 503, so the key set was not asked
    run(tokens.validate(token(issuer, name="Soon after")))
    assert sum(issuer.requests.values()) == 4  # one failed refresh: the v2 metadata answered 503


def test_keys_older_than_a_day_are_refreshed(issuer: DevAuthority, clock: FakeClock) -> None:
    run(tokens.validate(token(issuer)))
    clock.advance(24 * 3600)
    run(tokens.validate(token(issuer, name="Next day")))
    assert jwks_requests(issuer) == 2


def test_a_down_authority_on_a_cold_start_is_503_not_401(issuer: DevAuthority, clock: FakeClock) -> None:
    issuer.available = False
    error = refusal(tokens.validate(token(issuer)))
    assert isinstance(error, ServiceUnavailable)
    assert (error.status, error.detail, error.headers) == (503, KEYS_UNAVAILABLE, {"Retry-After": "5"})
    asked = sum(issuer.requests.values())
    clock.advance(2)
    assert refusal(tokens.validate(token(issuer))).headers == {"Retry-After": "3"}
    assert sum(issuer.requests.values()) == asked
    issuer.available = True
    clock.advance(4)
    run(tokens.validate(token(issuer)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_weak_and_foreign_keys_in_the_key_set_are_skipped(
    issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = SigningKey("weak", rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - the point
    encryption = SigningKey.generate("encryption")
    original = DevAuthority.answer

    def answer(self: DevAuthority, path: str) -> dict[str, Any] | None:
        document = original(self, path)
        if document is None or "keys" not in document:
            return document
        return {"keys": [
            *document["keys"], weak.jwk(), {**encryption.jwk(), "use": "enc"}, {**encryption.jwk(), "kid": 5},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}, {"kty": "RSA", "kid": "bad", "n": "!!"},
            "not a key",
        ]}

    monkeypatch.setattr(DevAuthority, "answer", answer)
    for foreign in (weak, encryption):
        assert_invalid(refusal(tokens.validate(token(issuer, key=foreign))), UNKNOWN_KEY)
    run(tokens.validate(token(issuer)))


def test_a_key_set_on_a_plain_http_host_is_refused(issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    original = DevAuthority.metadata

    def metadata(self: DevAuthority, version: str) -> dict[str, Any]:
        return {**original(self, version), "jwks_uri": "http://keys.example.com/keys"}

    monkeypatch.setattr(DevAuthority, "metadata", metadata)
    assert refusal(tokens.validate(token(issuer))).status == 503
    assert jwks_requests(issuer) == 0


def test_a_templated_issuer_in_the_metadata_names_the_configured_tenant(
    issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = DevAuthority.metadata

    def metadata(self: DevAuthority, version: str) -> dict[str, Any]:
        document = original(self, version)
        return {**document, "issuer": document["issuer"].replace(self.tenant_id, "{tenantid}")}

    monkeypatch.setattr(DevAuthority, "metadata", metadata)
    run(tokens.validate(token(issuer)))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration", True),
        ("http://127.0.0.1:7072/keys", True),
        ("http://127.0.0.2/keys", True),
        ("http://localhost:8080/keys", True),
        ("http://[::1]:8080/keys", True),
        ("http://login.microsoftonline.com/keys", False),
        ("http://10.0.0.1/keys", False),
        ("https://user:secret@login.microsoftonline.com/keys", False),
        ("file:///etc/passwd", False),
        ("ftp://127.0.0.1/keys", False),
        ("https:///keys", False),
        ("keys", False),
    ],
)
def test_only_https_or_loopback_http_is_fetched(url: str, allowed: bool) -> None:
    assert check_url(url) is allowed


def test_redirects_are_not_followed(attacker: DevAuthority) -> None:
    target = f"{attacker.url}/{attacker.tenant_id}/discovery/v2.0/keys"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with pytest.raises(FetchError, match="HTTP status 302"):
            run(fetch_json(f"http://127.0.0.1:{server.server_address[1]}/keys"))
    finally:
        server.shutdown()
        server.server_close()
    assert sum(attacker.requests.values()) == 0
