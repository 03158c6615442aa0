"""Fixtures for the sign-in tests: a dev authority of their own on loopback, settings, clocks, Graph."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import shared.auth
from shared.auth import admin, keys
from shared.config import reset_settings
from tests.auth.auth_kit import Configure, FakeClock, FakeCredential, FakeGraph
from tools.authority import DevAuthority, SigningKey

_SETTINGS_PREFIXES = ("ENTRA_", "GRAPH_", "DB_", "REGISTRY_", "CORS_")

@pytest.fixture(scope="session")
def tenant_key() -> SigningKey:
    # Generating RSA keys is the slow part; one per session is enough for the tenant's own key.
    return SigningKey.generate()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """Set environment variables (None removes one), then start from fresh settings and caches."""
    for name in list(os.environ):
        if name.startswith(_SETTINGS_PREFIXES) or name in ("DATABASE_URL", "AZURE_CLIENT_ID"):
            monkeypatch.delenv(name)

    def apply(**values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_settings()
        shared.auth.reset()

    yield apply
    monkeypatch.undo()
    reset_settings()
    shared.auth.reset()


@pytest.fixture(scope="session")
def tenant_authority(tenant_key: SigningKey) -> Iterator[DevAuthority]:
    # Separate from the root `authority` fixture, which the dev host trusts: these tests rotate
    # its keys and take it down.
    authority = DevAuthority(keys=[tenant_key])
    authority.start()
    yield authority
    authority.stop()


@pytest.fixture
def issuer(tenant_authority: DevAuthority, tenant_key: SigningKey, configure: Configure) -> DevAuthority:
    """The tenant's authority as a fresh test expects it, with the API's settings pointing at it."""
    tenant_authority.keys[:] = [tenant_key]
    tenant_authority.available = True
    tenant_authority.requests.clear()
    configure(
        ENTRA_TENANT_ID=tenant_authority.tenant_id,
        ENTRA_API_CLIENT_ID=tenant_authority.client_id,
        ENTRA_AUTHORITY=tenant_authority.url,
        DATABASE_URL="postgresql://x@127.0.0.1/x",
    )
    return tenant_authority


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The key cache's clock, moved by hand."""
    fake = FakeClock()
    monkeypatch.setattr(keys, "monotonic", fake)
    return fake


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> FakeCredential:
    fake = FakeCredential()
    monkeypatch.setattr(admin, "graph_credential", lambda: fake)
    return fake


@pytest.fixture
def graph(issuer: DevAuthority, configure: Configure, credential: FakeCredential) -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    configure(GRAPH_BASE_URL=fake.url)
    yield fake
    fake.stop()
