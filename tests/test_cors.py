"""CORS as the app answers it, over real HTTP through the dev host, which like Azure as deployed
has no platform CORS: the API answers the origins in CORS_ORIGINS, the feed every origin with `*`
(infra/README.md, "CORS")."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import httpx
import pytest

from tests.registry import body
from tests.support import Caller, RunningHost, app_environment
from tools.authority import DevAuthority

FRONTEND = "http://localhost:5173"
PORTAL = "https://registry.contoso.com"
STRANGER = "https://evil.example.com"
GUID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
# What a preflight from a listed origin is answered, whatever it asked for: the browser compares.
API_PREFLIGHT = {
    "access-control-allow-headers": "Authorization, Content-Type, If-Match, If-None-Match",
    "access-control-max-age": "86400",
}
EXPOSED = "ETag, Location, Retry-After, WWW-Authenticate"
# The feed's answer to every origin (tests/test_feed.py holds the same).
FEED = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type",
}

HostFactory = Callable[[Mapping[str, str]], RunningHost]


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


def preflight(url: str, origin: str, method: str, headers: str = "authorization, content-type") -> httpx.Response:
    return httpx.options(url, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                       "Access-Control-Request-Headers": headers})


@pytest.fixture(scope="module")
def listed(database_url: str, authority: DevAuthority, host_factory: HostFactory) -> RunningHost:
    return host_factory(app_environment(database_url, authority, CORS_ORIGINS=f"{FRONTEND}, {PORTAL}"))


@pytest.fixture
def session(listed: RunningHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=listed.base_url) as http:
        yield http


# The API: listed origins only.


@pytest.mark.parametrize("origin", [FRONTEND, PORTAL])
def test_a_preflight_from_a_listed_origin_is_204_with_what_the_route_allows(listed: RunningHost, origin: str) -> None:
    response = preflight(f"{listed.base_url}/registrations/{GUID}", origin, "PATCH",
                         "authorization, content-type, if-match")
    assert (response.status_code, response.content) == (204, b"")
    assert cors_headers(response) == {**API_PREFLIGHT, "access-control-allow-origin": origin,
                                      "access-control-allow-methods": "GET, PATCH, DELETE"}
    assert response.headers["Vary"] == "Origin"
    assert response.headers["Allow"] == "GET, PATCH, DELETE, OPTIONS"
    assert "access-control-allow-credentials" not in response.headers


def test_a_route_served_by_two_triggers_names_both_methods_in_its_preflight(listed: RunningHost) -> None:
    response = preflight(f"{listed.base_url}/registrations", FRONTEND, "POST")
    assert response.status_code == 204
    assert cors_headers(response) == {**API_PREFLIGHT, "access-control-allow-origin": FRONTEND,
                                      "access-control-allow-methods": "POST, GET"}


def test_the_actual_request_from_a_listed_origin_exposes_what_the_frontend_reads(
    session: httpx.Client, make_caller: Callable[..., Caller]
) -> None:
    caller = make_caller()
    created = session.post("/registrations", json=body(), headers={**caller.headers, "Origin": FRONTEND})
    assert created.status_code == 201, created.text
    assert created.headers["Location"]
    assert cors_headers(created) == {"access-control-allow-origin": FRONTEND,
                                     "access-control-expose-headers": EXPOSED}
    assert created.headers["Vary"] == "Origin"

    read = session.get(f"/registrations/{created.json()['registration_id']}",
                   headers={**caller.headers, "Origin": PORTAL})
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert cors_headers(read) == {"access-control-allow-origin": PORTAL, "access-control-expose-headers": EXPOSED}


def test_an_error_answer_carries_cors_headers_so_the_frontend_can_read_it(session: httpx.Client) -> None:
    refused = session.get("/users/me", headers={"Origin": FRONTEND})
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert cors_headers(refused) == {"access-control-allow-origin": FRONTEND,
                                     "access-control-expose-headers": EXPOSED}


def test_an_answer_that_already_varies_keeps_its_vary(session: httpx.Client) -> None:
    response = session.get("/openapi.json", headers={"Origin": FRONTEND, "Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Vary"] == "Accept-Encoding, Origin"
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND


@pytest.mark.parametrize("origin", [STRANGER, "http://localhost:5174", "HTTP://LOCALHOST:5173", "null"])
def test_an_unlisted_origin_gets_no_cors_headers_so_the_browser_refuses(listed: RunningHost, origin: str) -> None:
    answer = preflight(f"{listed.base_url}/registrations", origin, "POST")
    assert (answer.status_code, answer.content) == (204, b"")
    assert cors_headers(answer) == {}
    assert answer.headers["Vary"] == "Origin"
    assert answer.headers["Allow"] == "POST, GET, OPTIONS"

    actual = httpx.get(f"{listed.base_url}/health", headers={"Origin": origin})
    assert actual.status_code == 200
    assert cors_headers(actual) == {}
    assert actual.headers["Vary"] == "Origin"


def test_an_options_request_that_is_no_preflight_answers_allow(listed: RunningHost) -> None:
    plain = httpx.options(f"{listed.base_url}/users/me")
    assert (plain.status_code, plain.content) == (204, b"")
    assert plain.headers["Allow"] == "GET, OPTIONS"
    assert cors_headers(plain) == {}
    # From a listed origin, but without Access-Control-Request-Method: an actual OPTIONS request.
    with_origin = httpx.options(f"{listed.base_url}/users/me", headers={"Origin": FRONTEND})
    assert with_origin.status_code == 204
    assert cors_headers(with_origin) == {"access-control-allow-origin": FRONTEND}


def test_a_preflight_is_answered_before_sign_in_and_never_reaches_the_handler(listed: RunningHost) -> None:
    # An expired or absent token does not matter: a browser never sends credentials on a preflight.
    response = httpx.options(f"{listed.base_url}/registrations/{GUID}/status", headers={
        "Origin": FRONTEND, "Access-Control-Request-Method": "PATCH", "Authorization": "Bearer not-a-token"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Methods"] == "PATCH"


def test_without_cors_origins_no_origin_is_answered(client: httpx.Client) -> None:
    answer = client.options("/registrations", headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"})
    assert (answer.status_code, answer.content) == (204, b"")
    assert cors_headers(answer) == {}
    actual = client.get("/health", headers={"Origin": FRONTEND})
    assert cors_headers(actual) == {}


# The feed: every origin, listed or not.


@pytest.mark.parametrize("origin", [FRONTEND, STRANGER, "https://vscode.dev"])
def test_the_feed_answers_every_origin_with_a_star(listed: RunningHost, origin: str) -> None:
    for path in ("/v0.1/servers", "/v0.1/servers/com.example%2Fweather/versions/latest"):
        answer = preflight(f"{listed.base_url}{path}", origin, "GET", "authorization")
        assert (answer.status_code, answer.content) == (204, b"")
        assert cors_headers(answer) == {**FEED, "access-control-max-age": "86400"}
        assert "Vary" not in answer.headers
    actual = httpx.get(f"{listed.base_url}/v0.1/servers", headers={"Origin": origin})
    assert actual.status_code == 200
    assert cors_headers(actual) == FEED
