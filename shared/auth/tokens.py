"""Access-token validation: `validate(token) -> Principal`, or an ApiError that says why not.

The signature is checked before any claim is believed: the header is read only for `kid`, to
pick one of the tenant's published keys (keys offered in the header, `jku`, `x5u`, `jwk`, are
never looked at), and the algorithm is pinned to RS256. PyJWT then checks the signature,
issuer, audience and lifetime; the authorisation rules (tenant, scopes, guests) run last.
Every failure is 401 with `WWW-Authenticate: Bearer error="invalid_token"`, or 403 for the
authorisation rules; each family of PyJWT errors has one fixed message that quotes nothing
from the token. A validated token is remembered until it expires, so a client sending the
same token on every request pays for one RSA verification, not one per request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

import jwt
from jwt.types import Options

from shared.auth import keys
from shared.auth.cache import TtlCache
from shared.auth.principal import Principal, from_claims, is_guest
from shared.config import get_settings
from shared.errors import Forbidden, InsufficientScope, Unauthorized

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 60
MAX_TOKEN_CHARS = 32 * 1024
CACHE_SIZE = 10_000
_OPTIONS: Options = {
    "require": ["exp", "iss", "aud", "tid", "oid"],
    "verify_signature": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": False,
    "enforce_minimum_key_length": True,
}

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

MALFORMED = "The token is malformed."
WRONG_ALGORITHM = "The token must be signed with RS256."
NO_KEY_ID = "The token does not name its signing key."
UNKNOWN_KEY = "The token is signed with a key the tenant does not publish."
WRONG_TENANT = "The token was not issued by the expected tenant."
NO_PERMISSIONS = "The token carries neither delegated scopes nor application roles."
GUEST_REFUSED = "Guest accounts may not use this API."

# First match wins, so subclasses come before their bases (InvalidSignatureError is a DecodeError).
_ERROR_DETAILS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidAudienceError, "The token was not issued for this API."),
    (jwt.InvalidIssuerError, WRONG_TENANT),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim."),
    (jwt.InvalidAlgorithmError, WRONG_ALGORITHM),
    (jwt.InvalidSignatureError, "The token signature is invalid."),
    (jwt.InvalidIssuedAtError, "The token carries a malformed claim."),
    (jwt.DecodeError, MALFORMED),
    (jwt.PyJWTError, "The token is invalid."),
)

# Keyed by the token's SHA-256 so the cache never holds a usable token.
_validated: TtlCache[bytes, Principal] = TtlCache(CACHE_SIZE, time.time)


def reset() -> None:
    """Forget validated tokens, for tests and tools that change the settings."""
    _validated.clear()


async def validate(token: str) -> Principal:
    if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        raise Unauthorized(MALFORMED)
    cache_key = hashlib.sha256(token.encode()).digest()
    principal = _validated.get(cache_key)
    if principal is None:
        claims, issuers = await _verified_claims(token)
        principal = _authorised(claims, issuers)
        _validated.put(cache_key, principal, float(claims["exp"]) - time.time())
    return principal


async def _verified_claims(token: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise _refusal(error) from error
    if header.get("alg") not in ALGORITHMS:
        raise Unauthorized(WRONG_ALGORITHM)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized(NO_KEY_ID)
    found = await keys.signing_key(kid)
    if found is None:
        raise Unauthorized(UNKNOWN_KEY)
    public_key, issuers = found
    try:
        claims = jwt.decode(token, public_key, algorithms=ALGORITHMS, options=_OPTIONS, leeway=LEEWAY_SECONDS,
                            audience=get_settings().entra.audiences, issuer=issuers)
    except jwt.PyJWTError as error:
        raise _refusal(error) from error
    return claims, issuers


def _authorised(claims: dict[str, Any], issuers: tuple[str, ...]) -> Principal:
    settings = get_settings().entra
    principal = from_claims(claims)
    # The issuer was matched exactly against the metadata; when it names a tenant (Entra's
    # issuers do), that tenant and `tid` must both be the configured one.
    named = {match.lower() for match in _GUID.findall(claims["iss"])}
    if principal.tenant_id != settings.tenant_id or (named and settings.tenant_id not in named):
        raise Unauthorized(WRONG_TENANT)
    if not principal.scopes and not principal.roles:
        raise Unauthorized(NO_PERMISSIONS)
    if is_guest(claims, issuers) and not settings.allow_guests:
        raise Forbidden(GUEST_REFUSED)
    required = settings.required_scope
    if required and not principal.is_app and required not in principal.scopes:
        raise InsufficientScope(f"The token lacks the required scope '{required}'.")
    return principal


def _refusal(error: jwt.PyJWTError) -> Unauthorized:
    detail = next(text for kind, text in _ERROR_DETAILS if isinstance(error, kind))
    log.info("token refused: %s", type(error).__name__)
    return Unauthorized(detail)
