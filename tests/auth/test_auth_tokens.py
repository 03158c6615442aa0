"""validate(): real RS256 tokens from a loopback authority, good and bad."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from shared.auth import tokens
from shared.auth.principal import Principal
from shared.errors import ApiError
from tests.auth.auth_kit import assert_invalid, b64url, forge, hs256_with_public_key, refusal, run, token
from tools.authority import DevAuthority, SigningKey

OTHER_TENANT = "0f5e2a34-7c1b-4d8e-9a6f-3b2c1d0e9f87"
EXPIRED = "The token has expired."
NOT_YET = "The token is not valid yet."
WRONG_AUDIENCE = "The token was not issued for this API."
WRONG_TENANT = "The token was not issued by the expected tenant."
MISSING_CLAIM = "The token lacks a required claim."
WRONG_ALGORITHM = "The token must be signed with RS256."
BAD_SIGNATURE = "The token signature is invalid."
MALFORMED = "The token is malformed."
MALFORMED_CLAIM = "The token carries a malformed claim."
INVALID = "The token is invalid."


def test_a_v2_token_gives_its_principal(issuer: DevAuthority) -> None:
    oid = str(uuid.uuid4())
    principal = run(tokens.validate(token(issuer, oid=oid, name="Ada Lovelace", email="ada@example.com")))
    assert principal == Principal(
        oid=oid, tenant_id=issuer.tenant_id, email="ada@example.com", display_name="Ada Lovelace", roles=(),
        groups=(), scopes=("access_as_user",), is_app=False, has_group_overage=False,
    )


def test_a_v1_token_with_the_api_uri_audience_is_accepted(issuer: DevAuthority) -> None:
    principal = run(tokens.validate(token(issuer, version="v1", roles=("Registry.Admin",))))
    assert principal.roles == ("Registry.Admin",)
    assert principal.is_app is False


@pytest.mark.parametrize(
    ("claims", "email"),
    [
        ({"preferred_username": "pref@example.com"}, "pref@example.com"),
        ({"upn": "upn@example.com"}, "upn@example.com"),
        ({"unique_name": "unique@example.com"}, "unique@example.com"),
        ({}, None),
    ],
)
def test_email_falls_back_through_the_username_claims(
    issuer: DevAuthority, claims: dict[str, Any], email: str | None
) -> None:
    principal = run(tokens.validate(token(issuer, email=None, set_claims=claims)))
    assert principal.email == email


def test_the_user_key_is_oid_never_sub_or_email(issuer: DevAuthority) -> None:
    oid = str(uuid.uuid4())
    principal = run(tokens.validate(token(issuer, oid=oid, set_claims={"sub": "someone-else"})))
    assert principal.oid == oid


@pytest.mark.parametrize(
    ("shift", "detail"),
    [
        ({"exp": -61}, EXPIRED),
        ({"nbf": 120}, NOT_YET),
        ({"iat": 120}, NOT_YET),
    ],
)
def test_lifetime_outside_the_leeway_is_refused(issuer: DevAuthority, shift: dict[str, int], detail: str) -> None:
    now = int(time.time())
    claims = {name: now + seconds for name, seconds in shift.items()}
    assert_invalid(refusal(tokens.validate(token(issuer, set_claims=claims))), detail)


@pytest.mark.parametrize("shift", [{"exp": -30}, {"nbf": 30}, {"iat": 30}])
def test_lifetime_within_the_sixty_second_leeway_is_accepted(issuer: DevAuthority, shift: dict[str, int]) -> None:
    now = int(time.time())
    run(tokens.validate(token(issuer, set_claims={name: now + seconds for name, seconds in shift.items()})))


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"aud": "api://another-api"}, WRONG_AUDIENCE),
        ({"aud": ["api://another-api"]}, WRONG_AUDIENCE),
        ({"aud": {"value": "x"}}, WRONG_AUDIENCE),
        ({"iss": "https://login.microsoftonline.com/evil/v2.0"}, WRONG_TENANT),
        ({"iss": f"https://sts.windows.net/{OTHER_TENANT}/"}, WRONG_TENANT),
        ({"tid": OTHER_TENANT}, WRONG_TENANT),
        ({"iss": 42}, WRONG_TENANT),
    ],
)
def test_audience_issuer_and_tenant_must_be_ours(issuer: DevAuthority, claims: dict[str, Any], detail: str) -> None:
    assert_invalid(refusal(tokens.validate(token(issuer, set_claims=claims))), detail)


def test_tid_must_agree_with_the_issuer_even_when_metadata_says_otherwise(
    issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The metadata publishes a v1 issuer naming another tenant: matching it exactly is not enough.
    monkeypatch.setattr(DevAuthority, "v1_issuer", property(lambda self: f"{self.url}/sts/{OTHER_TENANT}/"))
    assert_invalid(refusal(tokens.validate(token(issuer, version="v1"))), WRONG_TENANT)
    run(tokens.validate(token(issuer, version="v2")))


@pytest.mark.parametrize("claim", ["oid", "exp", "iss", "aud", "tid"])
def test_required_claims_must_be_present(issuer: DevAuthority, claim: str) -> None:
    assert_invalid(refusal(tokens.validate(token(issuer, drop=(claim,)))), MISSING_CLAIM)


def test_alg_none_is_refused(issuer: DevAuthority) -> None:
    forged = forge({"alg": "none", "typ": "JWT", "kid": issuer.keys[0].kid}, issuer.claims())
    assert_invalid(refusal(tokens.validate(forged)), WRONG_ALGORITHM)


def test_hs256_keyed_with_the_public_key_is_refused(issuer: DevAuthority) -> None:
    assert_invalid(refusal(tokens.validate(hs256_with_public_key(issuer, issuer.claims()))), WRONG_ALGORITHM)


def test_ps256_with_the_right_key_is_still_refused(issuer: DevAuthority) -> None:
    key = issuer.keys[0]
    signed = jwt.encode(issuer.claims(), key.private_key, algorithm="PS256", headers={"kid": key.kid})
    assert_invalid(refusal(tokens.validate(signed)), WRONG_ALGORITHM)


def test_the_right_kid_with_the_wrong_key_is_refused(issuer: DevAuthority) -> None:
    impostor = SigningKey(issuer.keys[0].kid, SigningKey.generate().private_key)
    assert_invalid(refusal(tokens.validate(token(issuer, key=impostor))), BAD_SIGNATURE)


def test_a_tampered_payload_is_refused(issuer: DevAuthority) -> None:
    head, _, signature = token(issuer).split(".")
    promoted = issuer.claims(admin=True)
    tampered = f"{head}.{b64url(json.dumps(promoted).encode())}.{signature}"
    assert_invalid(refusal(tokens.validate(tampered)), BAD_SIGNATURE)


def test_a_token_without_kid_is_refused(issuer: DevAuthority) -> None:
    unsigned_kid = forge({"alg": "RS256", "typ": "JWT"}, issuer.claims(), b"x" * 256)
    assert_invalid(refusal(tokens.validate(unsigned_kid)), "The token does not name its signing key.")


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"oid": 12345}, MALFORMED_CLAIM),
        ({"oid": "not a guid"}, MALFORMED_CLAIM),
        ({"oid": ".."}, MALFORMED_CLAIM),
        ({"oid": "../../groups"}, MALFORMED_CLAIM),
        ({"oid": ""}, MALFORMED_CLAIM),
        ({"tid": 7}, MALFORMED_CLAIM),
        ({"scp": ["access_as_user"]}, MALFORMED_CLAIM),
        ({"roles": "Registry.Admin"}, MALFORMED_CLAIM),
        ({"roles": [1, 2]}, MALFORMED_CLAIM),
        ({"groups": "0f5e2a34-7c1b-4d8e-9a6f-3b2c1d0e9f87"}, MALFORMED_CLAIM),
        ({"name": {"first": "Ada"}}, MALFORMED_CLAIM),
        ({"email": ["ada@example.com"]}, MALFORMED_CLAIM),
        ({"idtyp": 1}, MALFORMED_CLAIM),
        ({"idp": 1}, MALFORMED_CLAIM),
        ({"acct": "1"}, MALFORMED_CLAIM),
        ({"acct": True}, MALFORMED_CLAIM),
        ({"hasgroups": "true"}, MALFORMED_CLAIM),
        ({"_claim_names": ["groups"]}, MALFORMED_CLAIM),
        ({"exp": str(int(time.time()) + 3600)}, MALFORMED_CLAIM),
        ({"exp": True}, EXPIRED),
        ({"exp": [1]}, MALFORMED),
        ({"nbf": "soon"}, MALFORMED),
        ({"iat": "now"}, MALFORMED_CLAIM),
        ({"iat": None, "exp": None}, MISSING_CLAIM),
        ({"sub": 5}, INVALID),
        ({"jti": 5}, INVALID),
    ],
)
def test_claims_of_the_wrong_json_type_are_401(issuer: DevAuthority, claims: dict[str, Any], detail: str) -> None:
    assert_invalid(refusal(tokens.validate(token(issuer, set_claims=claims))), detail)


def _nasty_tokens(issuer: DevAuthority) -> list[str]:
    kid = issuer.keys[0].kid
    good = token(issuer)
    head, body, signature = good.split(".")
    nested_header = b64url(b"{" * 5000)
    nested_body = b64url(b"[" * 100_000)
    huge_number = b64url(b'{"exp": 1' + b"0" * 5000 + b"}")
    binary = b64url(bytes(range(256)))
    return [
        "", "a", "a.b", "a.b.c", "...", "é.é.é", good + "x", good.replace(".", "..", 1), f"{head}.{body}",
        f"{head}.{body}.{signature}.{signature}", "x" * 40_000, good + "\x00",
        forge(["alg", "RS256"], {}), forge({"alg": ["RS256"], "kid": kid}, {}), forge({"alg": "RS256", "kid": 5}, {}),
        forge({"alg": "RS256", "kid": {"id": kid}}, {}), forge({"alg": "RS256", "kid": kid}, ["claims"]),
        forge({"alg": "RS256", "kid": kid}, "text"), forge({"alg": "RS256", "kid": kid, "crit": ["exp"]}, {}),
        forge({"alg": "RS256", "kid": kid, "b64": False, "crit": ["b64"]}, {}),
        forge({"alg": "RS256", "kid": kid, "b64": False}, {}), forge(None, None), forge(1e309, 1e309),
        f"{nested_header}.{body}.{signature}", f"{head}.{nested_body}.{signature}",
        f"{head}.{huge_number}.{signature}", f"{head}.{binary}.{signature}", f"{head}.!!!!.{signature}",
    ]


def test_whatever_the_bytes_the_answer_is_401(issuer: DevAuthority) -> None:
    for nasty in _nasty_tokens(issuer):
        error = refusal(tokens.validate(nasty))
        assert (error.status, error.headers) == (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}), nasty[:80]


def test_a_validated_token_is_verified_once_until_its_exp(
    issuer: DevAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[str] = []
    real_decode: Callable[..., dict[str, Any]] = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> dict[str, Any]:
        decodes.append("decode")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    issued = token(issuer, lifetime=600)
    first = run(tokens.validate(issued))
    assert all(run(tokens.validate(issued)) == first for _ in range(20))
    assert len(decodes) == 1
    monkeypatch.setattr(tokens._validated, "clock", lambda: time.time() + 601)
    assert run(tokens.validate(issued)) == first
    assert len(decodes) == 2


def test_refusals_are_not_cached_as_successes(issuer: DevAuthority) -> None:
    expired = token(issuer, lifetime=-120)
    for _ in range(3):
        assert isinstance(refusal(tokens.validate(expired)), ApiError)


@pytest.mark.parametrize(("oid", "kept_as"), [
    ("user-42", "user-42"),
    ("6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
])
def test_object_ids_are_kept_plain_or_as_canonical_guids(issuer: DevAuthority, oid: str, kept_as: str) -> None:
    principal = run(tokens.validate(token(issuer, set_claims={"oid": oid})))
    assert principal.oid == kept_as
