"""The tenant's token-signing keys, found through its OpenID metadata and kept in process.

A refresh reads the v2 and v1 metadata documents under ENTRA_AUTHORITY/ENTRA_TENANT_ID (the
two issuers Entra signs access tokens as, and the `jwks_uri`), then the keys. Keys are kept for
24 hours. A token naming a key we do not hold triggers a refresh, but refreshes start at most
once every 30 seconds however many such tokens arrive, and concurrent callers share the one in
flight. A failed refresh keeps the keys we have; only with no keys at all does the caller get
ServiceUnavailable (503), because then no token can be judged either way.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWTError
from jwt.algorithms import RSAAlgorithm

from shared.auth.fetch import FetchError, fetch_json
from shared.config import EntraSettings, get_settings
from shared.errors import ServiceUnavailable

log = logging.getLogger(__name__)

KEYS_TTL_SECONDS = 24 * 3600.0
REFRESH_INTERVAL_SECONDS = 30.0
# With nothing cached every request fails, so a cold start retries sooner than a warm cache.
COLD_RETRY_SECONDS = 5.0
MIN_KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class KeySet:
    issuers: tuple[str, ...]
    keys: Mapping[str, RSAPublicKey]
    fetched_at: float


@dataclass
class _State:
    current: KeySet | None = None
    next_refresh: float = -math.inf
    refreshing: asyncio.Task[KeySet | None] | None = None


_state = _State()


def reset() -> None:
    """Forget every key, for tests and tools that change the settings."""
    global _state
    _state = _State()


async def signing_key(kid: str) -> tuple[RSAPublicKey, tuple[str, ...]] | None:
    """The public key named `kid` and the issuers it signs for, or None when the tenant has no such key."""
    key_set = _state.current
    if key_set is None or kid not in key_set.keys or monotonic() - key_set.fetched_at >= KEYS_TTL_SECONDS:
        key_set = await _refreshed(key_set)
    key = key_set.keys.get(kid)
    return None if key is None else (key, key_set.issuers)


async def _refreshed(current: KeySet | None) -> KeySet:
    state = _state
    loop = asyncio.get_running_loop()
    task = state.refreshing
    if task is None or task.done() or task.get_loop() is not loop:
        if monotonic() < state.next_refresh:
            task = None
        else:
            task = state.refreshing = loop.create_task(_refresh(state))
    # shield: one caller giving up must not cancel the refresh the others are waiting for.
    key_set = current if task is None else await asyncio.shield(task)
    if key_set is None:
        retry_after = max(1, math.ceil(state.next_refresh - monotonic()))
        raise ServiceUnavailable("The sign-in keys cannot be loaded right now. Try again shortly.",
                                 retry_after=retry_after)
    return key_set


async def _refresh(state: _State) -> KeySet | None:
    state.next_refresh = monotonic() + REFRESH_INTERVAL_SECONDS
    try:
        key_set = await _discover(get_settings().entra)
    except FetchError as error:
        if state.current is None:
            state.next_refresh = monotonic() + COLD_RETRY_SECONDS
            log.warning("signing keys could not be loaded (%s); retrying in %s s", error, COLD_RETRY_SECONDS)
        else:
            log.warning("signing keys not refreshed (%s); keeping the %s cached keys", error, len(state.current.keys))
        return state.current
    state.current = key_set
    log.info("signing keys refreshed: %s keys", len(key_set.keys))
    return key_set


async def _discover(settings: EntraSettings) -> KeySet:
    base = f"{settings.authority}/{settings.tenant_id}"
    v2 = await fetch_json(f"{base}/v2.0/.well-known/openid-configuration")
    try:
        v1_issuer = _issuer(await fetch_json(f"{base}/.well-known/openid-configuration"), settings.tenant_id)
    except FetchError as error:
        # Entra always publishes both; an authority without v1 metadata still signs v2 tokens,
        # and Entra's v1 issuer has one fixed form.
        v1_issuer = f"https://sts.windows.net/{settings.tenant_id}/"
        log.warning("no v1 OpenID metadata (%s); taking %s as the v1 issuer", error, v1_issuer)
    issuers = (_issuer(v2, settings.tenant_id), v1_issuer)
    # fetch_json refuses a jwks_uri that is neither https nor http on a loopback host.
    keys = _public_keys(await fetch_json(_field(v2, "jwks_uri")))
    if not keys:
        raise FetchError("the key set holds no usable RS256 key")
    return KeySet(issuers=issuers, keys=keys, fetched_at=monotonic())


def _field(document: Any, name: str) -> str:
    value = document.get(name) if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise FetchError(f"OpenID metadata without a {name}")
    return value


def _issuer(document: Any, tenant_id: str) -> str:
    # Multi-tenant metadata writes the issuer as a template; ours is the configured tenant's.
    return _field(document, "issuer").replace("{tenantid}", tenant_id)


def _public_keys(jwks: Any) -> dict[str, RSAPublicKey]:
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(entries, list):
        raise FetchError("the key set has no keys array")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            key = RSAAlgorithm.from_jwk(entry)
        except (PyJWTError, ValueError, TypeError):
            log.warning("skipped an unreadable signing key")
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_KEY_BITS:
            keys[kid] = key
    return keys
