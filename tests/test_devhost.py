"""The development host: route matching as the Functions host does it, settings, CORS, the
route list at start, clean stops, and an app module that does no I/O at import."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from tests.support import PROJECT_ROOT, RunningHost, app_environment
from tools.authority import DevAuthority
from tools.devhost import (
    DevHost,
    RouteError,
    build_application,
    collect_routes,
    function_params,
    load_local_settings,
    split_path,
)
from tools.pgserver import free_port

GUID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
FRONTEND = "http://localhost:5173"

HostFactory = Callable[[Mapping[str, str]], RunningHost]


def echo_app(*routes: tuple[str, str, list[str]]) -> func.FunctionApp:
    """An app whose functions answer with their name and route values, one per (name, route, methods)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, route, methods in routes:

        def make(function_name: str) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
            async def handler(req: func.HttpRequest) -> func.HttpResponse:
                return func.HttpResponse(json.dumps({"function": function_name, "values": dict(req.route_params)}),
                                         mimetype="application/json")

            handler.__name__ = function_name
            return handler

        app.function_name(name)(app.route(route=route, methods=methods)(make(name)))
    return app


def matched(host: DevHost, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = host.find(method, path)
    return None if found is None else (found[0].function_name, found[1])


# Route matching, on a small app of our own so the rules are tested apart from the real routes.


def test_a_guid_constraint_takes_guids_only_and_leaves_literals_to_their_route() -> None:
    host = DevHost(echo_app(("item", "items/{item_id:guid}", ["GET"]), ("mine", "items/my", ["GET"])), prefix="api")
    assert matched(host, "GET", f"/api/items/{GUID}") == ("item", {"item_id": GUID})
    assert matched(host, "GET", f"/api/items/{GUID.upper()}") == ("item", {"item_id": GUID.upper()})
    assert matched(host, "GET", "/api/items/my") == ("mine", {})
    assert matched(host, "GET", "/api/items/not-a-guid") is None
    assert matched(host, "GET", f"/api/items/{GUID}/extra") is None


@pytest.mark.parametrize("spelled", [
    GUID.replace("-", ""),
    "{" + GUID + "}",
    "(" + GUID.upper() + ")",
    "{0x0b1c2d3e,0x4f50,0x4a6b,{0x8c,0x7d,0x9e,0x0f,0x1a,0x2b,0x3c,0x4d}}",
    " " + GUID + " ",
])
def test_a_guid_constraint_takes_every_format_dotnet_parses(spelled: str) -> None:
    # ASP.NET Core's GuidRouteConstraint is Guid.TryParse (Microsoft Learn: route constraints; Guid.TryParse).
    host = DevHost(echo_app(("item", "items/{item_id:guid}", ["GET"])), prefix="api")
    assert matched(host, "GET", f"/api/items/{quote(spelled, safe='{},()')}") == ("item", {"item_id": spelled})


@pytest.mark.parametrize("spelled", [
    GUID[:8] + GUID[9:],
    "{" + GUID,
    "(" + GUID + "}",
    GUID + "0",
    "{0x0b1c2d3e,0x4f50,0x4a6b,{0x8c,0x7d,0x9e,0x0f,0x1a,0x2b,0x3c}}",
    GUID.replace("0", "g"),
])
def test_a_guid_constraint_refuses_what_dotnet_refuses(spelled: str) -> None:
    host = DevHost(echo_app(("item", "items/{item_id:guid}", ["GET"])), prefix="api")
    assert matched(host, "GET", f"/api/items/{quote(spelled, safe='{},()')}") is None


def test_literals_and_the_prefix_match_case_insensitively() -> None:
    # ASP.NET Core routing (Microsoft Learn, "Routing in ASP.NET Core": text matching is case-insensitive).
    host = DevHost(echo_app(("mine", "items/my", ["GET"])), prefix="api")
    assert matched(host, "GET", "/API/ITEMS/MY") == ("mine", {})
    assert matched(host, "GET", "/Api/Items/My") == ("mine", {})


def test_query_values_reach_the_function_as_the_host_passes_them() -> None:
    # azure-functions-host, GrpcMessageConversionExtensions.ToRpcHttp: values joined with ",", empty ones dropped.
    query = MultiDict([("limit", ""), ("search", "a"), ("search", "b"), ("Search", "c"), ("version", "1.0"),
                       ("twice", ""), ("twice", ""), ("one", "x")])
    assert function_params(query) == {"search": "a,b,c", "version": "1.0", "twice": ",", "one": "x"}


def test_a_method_the_route_does_not_declare_matches_nothing() -> None:
    host = DevHost(echo_app(("item", "items/{item_id:guid}", ["GET"])), prefix="api")
    assert matched(host, "DELETE", f"/api/items/{GUID}") is None
    assert matched(host, "GET", f"/api/items/{GUID}") == ("item", {"item_id": GUID})


def test_routes_match_only_under_the_prefix() -> None:
    host = DevHost(echo_app(("item", "items/{item_id:guid}", ["GET"])), prefix="api")
    assert matched(host, "GET", f"/items/{GUID}") is None
    assert matched(host, "GET", f"/other/items/{GUID}") is None


def test_int_optional_and_catch_all_segments() -> None:
    host = DevHost(
        echo_app(
            ("page", "pages/{number:int}", ["GET"]),
            ("version", "servers/{name}/versions/{version?}", ["GET"]),
            ("file", "files/{*rest}", ["GET"]),
        ),
        prefix="api",
    )
    assert matched(host, "GET", "/api/pages/42") == ("page", {"number": "42"})
    assert matched(host, "GET", "/api/pages/-7") == ("page", {"number": "-7"})
    assert matched(host, "GET", "/api/pages/4x") is None
    assert matched(host, "GET", "/api/servers/weather/versions") == ("version", {"name": "weather"})
    assert matched(host, "GET", "/api/servers/weather/versions/1.0.0") == (
        "version", {"name": "weather", "version": "1.0.0"}
    )
    assert matched(host, "GET", "/api/servers/weather/versions/1.0.0/more") is None
    assert matched(host, "GET", "/api/files/a/b/c.txt") == ("file", {"rest": "a/b/c.txt"})
    assert matched(host, "GET", "/api/files") == ("file", {"rest": ""})


def test_the_path_is_decoded_once_an_encoded_slash_included_before_routing_as_on_azure() -> None:
    # azure-functions-host #9290, #3998, #5619: Azure's front end decodes %2F before the host routes.
    assert split_path("/api/v0.1/servers/com.example%2Fweather/versions") == [
        "api", "v0.1", "servers", "com.example", "weather", "versions"
    ]
    assert split_path("/api/a%2fb/c%20d/3.0.0-%2541") == ["api", "a", "b", "c d", "3.0.0-%41"]
    host = DevHost(echo_app(("versions", "v0.1/servers/{server_name}/versions", ["GET"]),
                            ("server", "v1/servers/{head}/{*rest}", ["GET"])), prefix="api")
    # A route that works only with an encoded slash fails here as it does on Azure...
    assert matched(host, "GET", "/api/v0.1/servers/com.example%2Fweather/versions") is None
    assert matched(host, "GET", "/api/v0.1/servers/weather/versions") == ("versions", {"server_name": "weather"})
    # ...and a catch-all takes the name either way.
    assert matched(host, "GET", "/api/v1/servers/com.example%2Fweather/versions") == (
        "server", {"head": "com.example", "rest": "weather/versions"}
    )


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("items/{item_id:guid}", "items/my", False),
        ("items/{item_id}", "items/my", True),
        ("items/{number:int}", "items/my", False),
        ("items/{number:int}", "items/42", True),
        ("items/{number:int}", "items/{word:alpha}", False),
        ("items/{item_id:guid}", "items/{key}", True),
        ("items/{key?}", "items", True),
        ("files/{*rest}", "files/special/one", True),
        ("items/{item_id:guid}", "items/{item_id:guid}/audit", False),
        ("ITEMS/my", "items/MY", True),
    ],
)
def test_routes_that_can_match_the_same_request_are_refused(first: str, second: str, overlap: bool) -> None:
    app = echo_app(("first", first, ["GET"]), ("second", second, ["GET"]))
    if not overlap:
        assert [route.template for route in collect_routes(app)] == [first, second]
        return
    with pytest.raises(RouteError) as caught:
        collect_routes(app)
    assert str(caught.value) == f"routes {first!r} (first) and {second!r} (second) can match the same request"


def test_the_same_route_with_different_methods_does_not_overlap() -> None:
    app = echo_app(("read", "items/{item_id}", ["GET"]), ("remove", "items/{item_id}", ["DELETE"]))
    assert [sorted(route.methods) for route in collect_routes(app)] == [["GET"], ["DELETE"]]


def test_served_over_http_a_guid_route_answers_and_a_non_guid_is_404() -> None:
    app = echo_app(("item", "items/{item_id:guid}", ["GET"]), ("mine", "items/my", ["GET"]),
                   ("versions", "servers/{server_name}/versions", ["GET"]))

    async def exchange() -> list[tuple[int, bytes]]:
        async with TestClient(TestServer(build_application(DevHost(app, prefix="api")))) as client:
            answers = []
            for path in (f"/api/items/{GUID}", "/api/items/my", "/api/items/not-a-guid",
                         "/api/servers/com.example%2Fweather/versions", "/api/servers/weather/versions"):
                response = await client.get(path)
                answers.append((response.status, await response.read()))
            return answers

    assert asyncio.run(exchange()) == [
        (200, json.dumps({"function": "item", "values": {"item_id": GUID}}).encode()),
        (200, json.dumps({"function": "mine", "values": {}}).encode()),
        (404, b""),
        (404, b""),
        (200, json.dumps({"function": "versions", "values": {"server_name": "weather"}}).encode()),
    ]


def inspecting_app() -> func.FunctionApp:
    """An app whose one function answers with the query parameters and body it was given."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="inspect", methods=["GET", "POST"])
    async def inspect(req: func.HttpRequest) -> func.HttpResponse:
        seen = {"params": dict(req.params), "body": (req.get_body() or b"").decode()}
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    return app


def test_served_over_http_query_body_and_content_type_are_what_the_host_passes() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a":'
        yield b" 1}"

    async def exchange() -> list[tuple[int, str, dict[str, Any]]]:
        async with TestClient(TestServer(build_application(DevHost(inspecting_app(), prefix="api")))) as client:
            answers = []
            for response in (
                await client.get("/API/Inspect?limit=&search=a&search=b&version=1.0"),
                await client.post("/api/inspect", data=b'{"a": 1}'),
                await client.post("/api/inspect", data=chunks()),
            ):
                answers.append((response.status, response.headers["Content-Type"], await response.json()))
            return answers

    assert asyncio.run(exchange()) == [
        (200, "application/json", {"params": {"search": "a,b", "version": "1.0"}, "body": ""}),
        (200, "application/json", {"params": {}, "body": '{"a": 1}'}),
        # Chunked: no Content-Length, so the host forwards no body.
        (200, "application/json", {"params": {}, "body": ""}),
    ]


# Settings from local.settings.json.


def test_local_settings_fill_only_what_the_environment_leaves_out(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {"DATABASE_URL": "postgresql://from-file/registry", "LOG_LEVEL": "DEBUG",
                   "ENTRA_ALLOW_GUESTS": True, "DB_POOL_MAX_SIZE": 5, "NESTED": {"ignored": 1}},
        "Host": {"CORS": "*"},
    }))
    environment = {"DATABASE_URL": "postgresql://from-environment/registry", "LOG_LEVEL": ""}
    load_local_settings(tmp_path, environment)
    assert environment == {
        "DATABASE_URL": "postgresql://from-environment/registry",
        "LOG_LEVEL": "",
        "ENTRA_ALLOW_GUESTS": "true",
        "DB_POOL_MAX_SIZE": "5",
    }


def test_without_local_settings_the_environment_is_left_alone(tmp_path: Path) -> None:
    environment = {"DATABASE_URL": "postgresql://from-environment/registry"}
    load_local_settings(tmp_path, environment)
    assert environment == {"DATABASE_URL": "postgresql://from-environment/registry"}


# The real app through `python -m tools.devhost`.


@pytest.fixture(scope="module")
def cors_host(database_url: str, authority: DevAuthority, host_factory: HostFactory) -> RunningHost:
    return host_factory(app_environment(database_url, authority, CORS_ORIGINS=FRONTEND))


def test_each_route_is_listed_at_start(cors_host: RunningHost) -> None:
    assert f"        health: [GET,OPTIONS] {cors_host.base_url}/health\n" in cors_host.log()
    # Of the triggers that share a route, the first takes its preflights.
    assert f"        registrations_list: [GET] {cors_host.base_url}/registrations\n" in cors_host.log()


def test_a_non_guid_where_the_real_app_wants_a_guid_is_a_404_from_the_host(cors_host: RunningHost) -> None:
    refused = httpx.get(f"{cors_host.base_url}/users/not-a-guid")
    assert (refused.status_code, refused.content) == (404, b"")
    assert "X-Content-Type-Options" not in refused.headers
    # The same path with a GUID reaches the function, which answers (401: no token) through the app's edge.
    reached = httpx.get(f"{cors_host.base_url}/users/{GUID}")
    assert reached.status_code == 401
    assert reached.headers["X-Content-Type-Options"] == "nosniff"


def test_with_no_platform_cors_every_options_request_reaches_the_app(cors_host: RunningHost) -> None:
    # As on Azure with no platform CORS configured (infra/README.md, "CORS"), CORS_ORIGINS is the
    # app's setting: the preflight reaches the function that takes the route's OPTIONS, and the
    # app answers it (tests/test_cors.py has the exact headers).
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    listed = httpx.options(f"{cors_host.base_url}/registrations", headers={"Origin": FRONTEND, **preflight})
    assert listed.status_code == 204
    assert listed.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert listed.headers["Access-Control-Max-Age"] == "86400"
    assert listed.headers["X-Content-Type-Options"] == "nosniff"  # the app's edge, not the host's
    # The feed answers its own preflights with `*`, whatever CORS_ORIGINS lists.
    feed = httpx.options(f"{cors_host.base_url}/v0.1/servers/com.example/weather/versions/latest",
                         headers={"Origin": "https://vscode.dev", **preflight})
    assert (feed.status_code, feed.headers["Access-Control-Allow-Origin"]) == (204, "*")
    # A route nobody serves stays the host's 404: nothing answers a preflight before routing.
    nowhere = httpx.options(f"{cors_host.base_url}/no/such/route", headers={"Origin": FRONTEND, **preflight})
    assert (nowhere.status_code, nowhere.content) == (404, b"")
    assert not [name for name in nowhere.headers if name.lower().startswith("access-control-")]


def test_an_options_request_reaches_only_a_trigger_that_takes_options() -> None:
    app = echo_app(("read", "items", ["GET"]), ("answer", "things", ["GET", "OPTIONS"]))
    preflight = {"Origin": FRONTEND, "Access-Control-Request-Method": "GET"}

    async def exchange() -> list[tuple[int, bytes, list[str]]]:
        async with TestClient(TestServer(build_application(DevHost(app, prefix="api")))) as session:
            answers = []
            for path in ("/api/items", "/api/things"):
                response = await session.options(path, headers=preflight)
                answers.append((response.status, await response.read(),
                                [name for name in response.headers if name.lower().startswith("access-control-")]))
            return answers

    assert asyncio.run(exchange()) == [
        (404, b"", []),
        (200, json.dumps({"function": "answer", "values": {}}).encode(), []),
    ]


def test_route_literals_match_case_insensitively_in_the_real_app(cors_host: RunningHost) -> None:
    response = httpx.get(cors_host.base_url.replace("/api", "/API") + "/HEALTH")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_host_stops_cleanly_on_a_signal(
    stop_signal: signal.Signals, database_url: str, authority: DevAuthority, host_factory: HostFactory
) -> None:
    host = host_factory(app_environment(database_url, authority))
    assert httpx.get(f"{host.base_url}/health").status_code == 200

    host.process.send_signal(stop_signal)
    code = host.process.wait(30)
    assert code == 0
    assert "Traceback" not in host.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{host.base_url}/health")


def test_the_host_refuses_to_start_with_a_configuration_error(database_url: str, authority: DevAuthority) -> None:
    # Malformed rather than missing, so a developer's local.settings.json cannot fill the gap.
    environment = app_environment(database_url, authority, ENTRA_TENANT_ID="not-a-guid")
    result = subprocess.run(
        [sys.executable, "-m", "tools.devhost", "--port", str(free_port())],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "devhost: ENTRA_TENANT_ID must be a GUID, got 'not-a-guid'"


# The app module itself.

NO_NETWORK_IMPORT = """
import socket, sys

def refuse(*args, **kwargs):
    raise AssertionError("network I/O while importing function_app")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import function_app

assert function_app.app.get_functions()
loaded = sorted(name for name in sys.modules if name.startswith(("azure.identity", "azure.monitor")))
assert not loaded, loaded
print("imported")
"""


def test_importing_the_app_does_no_network_or_database_io() -> None:
    environment = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("ENTRA_", "DB_", "APPLICATIONINSIGHTS_")) and name != "DATABASE_URL"
    }
    environment.update({
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/registry",
        "ENTRA_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "ENTRA_API_CLIENT_ID": "6c1f3c2e-3b7a-4a8e-9d43-0f6f1d6a2b10",
        "ENTRA_AUTHORITY": f"http://127.0.0.1:{free_port()}",
    })
    result = subprocess.run([sys.executable, "-c", NO_NETWORK_IMPORT], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "imported\n", "")
