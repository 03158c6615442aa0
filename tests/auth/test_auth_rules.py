"""Bearer parsing and the authorisation rules: scopes, app-only tokens, guests."""

from __future__ import annotations

import azure.functions as func
import pytest

from shared.auth import authenticate, tokens
from shared.errors import ApiError
from tests.auth.auth_kit import INVALID_TOKEN, Configure, assert_invalid, refusal, run, token
from tools.authority import DevAuthority

GUEST_REFUSED = "Guest accounts may not use this API."
APP_REFUSED = "App-only tokens are not accepted here: call this API on behalf of a signed-in user."
NOT_BEARER = "The Authorization header must hold 'Bearer <access token>'."
MISSING_SCOPE = "The token lacks the required scope 'access_as_user'."
INSUFFICIENT_SCOPE = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}


def request(authorization: str | None) -> func.HttpRequest:
    headers = {} if authorization is None else {"Authorization": authorization}
    return func.HttpRequest(method="GET", url="http://127.0.0.1/api/users/me", headers=headers, body=b"")


def assert_forbidden(error: ApiError, detail: str) -> None:
    assert (error.status, error.detail, error.headers) == (403, detail, {})


def test_no_authorization_header_is_401_without_an_error_code(issuer: DevAuthority) -> None:
    error = refusal(authenticate(request(None)))
    assert (error.status, error.detail, error.headers) == (
        401, "Sign in: send an Authorization header with a Bearer access token.", {"WWW-Authenticate": "Bearer"}
    )


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "abc"])
def test_another_scheme_or_an_empty_token_is_invalid_token(issuer: DevAuthority, authorization: str) -> None:
    assert_invalid(refusal(authenticate(request(authorization))), NOT_BEARER)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(issuer: DevAuthority, scheme: str) -> None:
    assert run(authenticate(request(f"{scheme} {token(issuer)}"))).scopes == ("access_as_user",)


def test_a_token_with_neither_scp_nor_roles_is_401(issuer: DevAuthority) -> None:
    bare = token(issuer, scopes=None)
    assert_invalid(refusal(tokens.validate(bare)), "The token carries neither delegated scopes nor application roles.")
    assert_invalid(refusal(tokens.validate(token(issuer, set_claims={"scp": "  "}))),
                   "The token carries neither delegated scopes nor application roles.")


@pytest.mark.parametrize(
    "claims",
    [{"roles": ["Registry.Read"]}, {"roles": ["Registry.Read"], "idtyp": "app"}, {"scp": "x", "idtyp": "app"}],
)
def test_app_only_tokens_are_refused_on_user_endpoints(issuer: DevAuthority, claims: dict[str, object]) -> None:
    drop = () if "scp" in claims else ("scp",)
    app_token = token(issuer, set_claims=claims, drop=drop, email=None, name="Nightly job")
    assert run(tokens.validate(app_token)).is_app is True
    assert_forbidden(refusal(authenticate(request(f"Bearer {app_token}"))), APP_REFUSED)
    assert run(authenticate(request(f"Bearer {app_token}"), allow_app=True)).is_app is True


def test_a_required_scope_must_be_among_the_scopes(issuer: DevAuthority, configure: Configure) -> None:
    configure(ENTRA_REQUIRED_SCOPE="access_as_user")
    run(tokens.validate(token(issuer, scopes=("openid", "access_as_user"))))
    for scopes in (("openid",), ("access_as_user_extended",), ("Access_As_User",)):
        error = refusal(tokens.validate(token(issuer, scopes=scopes)))
        assert (error.status, error.detail, error.headers) == (403, MISSING_SCOPE, INSUFFICIENT_SCOPE)


def test_without_a_required_scope_any_delegated_scope_will_do(issuer: DevAuthority) -> None:
    assert run(tokens.validate(token(issuer, scopes=("User.Read",)))).scopes == ("User.Read",)


@pytest.mark.parametrize(
    "claims",
    [
        {"acct": 1},
        {"idp": "https://sts.windows.net/0f5e2a34-7c1b-4d8e-9a6f-3b2c1d0e9f87/"},
        {"idp": "live.com"},
    ],
)
def test_guests_are_refused_unless_allowed(
    issuer: DevAuthority, configure: Configure, claims: dict[str, object]
) -> None:
    assert_forbidden(refusal(tokens.validate(token(issuer, set_claims=claims))), GUEST_REFUSED)
    configure(ENTRA_ALLOW_GUESTS="true")
    run(tokens.validate(token(issuer, set_claims=claims)))


def test_members_whose_idp_is_their_own_tenant_are_not_guests(issuer: DevAuthority) -> None:
    for idp in (issuer.v2_issuer, issuer.v1_issuer):
        run(tokens.validate(token(issuer, set_claims={"idp": idp, "acct": 0})))


def test_the_invalid_token_challenge_is_exactly_rfc_6750(issuer: DevAuthority) -> None:
    assert refusal(authenticate(request("Bearer not.a.token"))).headers == INVALID_TOKEN
