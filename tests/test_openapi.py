"""The OpenAPI document: it describes every trigger and nothing else, validates as OpenAPI 3.1, and
is served with the interactive documentation and its files."""

from __future__ import annotations

import gzip
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from azure.functions.decorators.http import HttpTrigger
from openapi_spec_validator import validate
from pydantic import ValidationError

import function_app
from shared import api, openapi
from shared.auth import NOT_ADMIN
from shared.config import Settings
from shared.declare import Answer, MissingText, Routes
from shared.routes import docs
from shared.schemas.registrations import RegistrationCreate
from shared.schemas.urls import validation_context
from tests.registry import assert_problem, submit
from tests.support import Caller
from tools.devhost import indexed_functions

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "6c1f3c2e-3b7a-4a8e-9d43-0f6f1d6a2b10"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def make_settings(**overrides: str) -> Settings:
    env = {"DATABASE_URL": "postgresql://registry@127.0.0.1/registry", "ENTRA_TENANT_ID": TENANT,
           "ENTRA_API_CLIENT_ID": CLIENT, **overrides}
    return Settings.from_env(env)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build(make_settings(ENTRA_REQUIRED_SCOPE="access_as_user"), api.OPERATIONS)


def triggers() -> tuple[tuple[str, str, str], ...]:
    """(Functions route, lower-case method, function name) of every HTTP trigger of the app."""
    found = []
    for function in indexed_functions(function_app.app):
        trigger = function.get_trigger()
        if not isinstance(trigger, HttpTrigger):
            continue
        name = function.get_function_name()
        assert trigger.route is not None
        assert name is not None
        for method in trigger.methods or ():
            found.append((trigger.route, str(method.value).lower(), name))
    return tuple(found)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_the_host_indexes_each_declaration_as_a_plain_http_trigger() -> None:
    served = set(triggers())
    assert len(served) >= 19
    declared = {(entry.route, entry.method.lower(), entry.function) for entry in api.OPERATIONS}
    assert declared == served


def test_a_catch_all_trigger_documents_each_path_it_serves(document: dict[str, Any]) -> None:
    server = [(openapi.documented_path(entry), entry.method) for entry in api.OPERATIONS
              if entry.function == "feed_server"]
    assert server == [("/v0.1/servers/{serverName}/versions", "GET"),
                      ("/v0.1/servers/{serverName}/versions/{version}", "GET"),
                      ("/v0.1/servers/{serverName}/versions", "OPTIONS"),
                      ("/v0.1/servers/{serverName}/versions/{version}", "OPTIONS")]
    assert "/v0.1/servers/{serverName}/{rest}" not in document["paths"]
    parameters = document["paths"]["/v0.1/servers/{serverName}/versions/{version}"]["get"]["parameters"]
    assert [(parameter["name"], parameter["in"]) for parameter in parameters][:2] == [
        ("serverName", "path"), ("version", "path")]


def test_the_feed_documents_its_query_on_every_operation(document: dict[str, Any]) -> None:
    for path in ("/v0.1/servers", "/v0.1/servers/{serverName}/versions",
                 "/v0.1/servers/{serverName}/versions/{version}"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert parameters["include_deleted"]["schema"] == {"type": "boolean"}
        assert not parameters["include_deleted"]["required"]
    listing = {p["name"]: p for p in document["paths"]["/v0.1/servers"]["get"]["parameters"]}
    assert set(listing) == {"search", "version", "updated_since", "limit", "include_deleted", "cursor"}
    assert "maxLength" not in listing["search"]["schema"]
    assert "matches nothing" in listing["search"]["description"]


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_paths_are_relative_to_the_route_prefix_server(document: dict[str, Any]) -> None:
    assert openapi.route_prefix() == "api"
    assert document["servers"] == [{"url": "/api", "description": "This host."}]
    assert "/registrations/{registration_id}" in document["paths"]
    assert not any(path.startswith("/api/") for path in document["paths"])


def test_guid_route_constraints_become_uuid_path_parameters(document: dict[str, Any]) -> None:
    parameters = document["paths"]["/users/{user_id}"]["get"]["parameters"]
    assert parameters == [{"name": "user_id", "in": "path", "required": True,
                           "schema": {"type": "string", "format": "uuid"}, "description": "The user's id."}]


def test_list_query_comes_from_the_query_model(document: dict[str, Any]) -> None:
    for path in ("/registrations", "/registrations/my"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert set(parameters) == {"status", "submitter_id", "search", "limit", "offset", "outcome", "drifted",
                                   "findings"}
        assert all(p["in"] == "query" and not p["required"] and p["allowEmptyValue"] for p in parameters.values())
        assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
        assert parameters["status"]["schema"]["enum"] == ["Pending", "Approved", "Rejected"]
        assert parameters["submitter_id"]["schema"] == {"type": "string", "format": "uuid"}
        assert parameters["findings"]["schema"]["enum"] == ["high", "medium", "low"]


def test_bodies_and_answers_reference_the_handlers_models(document: dict[str, Any]) -> None:
    create = document["paths"]["/registrations"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/RegistrationCreate"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegistrationPublic"}
    assert create["responses"]["201"]["headers"]["Location"]["required"] is True
    schemas = document["components"]["schemas"]
    assert schemas["RegistrationCreate"]["additionalProperties"] is False
    assert set(schemas["RegistrationCreate"]["required"]) == {"endpoint_url", "endpoint_name", "owner_contact"}
    assert schemas["Problem"]["required"] == ["title", "status", "detail"]
    assert "$defs" not in str(document)


@pytest.mark.parametrize(("path", "method", "statuses"), [
    ("/health", "get", {"200", "503", "500"}),
    ("/users", "post", {"200", "201", "401", "403", "503", "500"}),
    ("/users/{user_id}", "get", {"200", "401", "403", "404", "503", "500"}),
    ("/registrations", "post", {"201", "400", "401", "403", "409", "413", "415", "422", "429", "503", "500"}),
    ("/registrations", "get", {"200", "401", "403", "422", "503", "500"}),
    ("/registrations/{registration_id}", "patch",
     {"200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "429", "503", "500"}),
    ("/registrations/{registration_id}/status", "patch",
     {"200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "428", "503", "500"}),
    ("/registrations/{registration_id}/revisions", "get", {"200", "401", "403", "404", "503", "500"}),
    ("/registrations/{registration_id}/revisions/{revision}", "get", {"200", "401", "403", "404", "503", "500"}),
    ("/registrations/{registration_id}/revisions/{revision}/publish", "post",
     {"200", "401", "403", "404", "409", "503", "500"}),
    ("/registrations/{registration_id}/publication", "patch",
     {"200", "400", "401", "403", "404", "409", "413", "415", "422", "503", "500"}),
    ("/registrations/{registration_id}", "delete", {"204", "401", "403", "404", "503", "500"}),
    ("/registrations/{registration_id}/audit", "get", {"200", "401", "403", "404", "503", "500"}),
    ("/v0.1/servers", "get", {"200", "304", "422", "503", "500"}),
    ("/v0.1/servers/{serverName}/versions", "get", {"200", "304", "404", "422", "503", "500"}),
    ("/v0.1/servers/{serverName}/versions/{version}", "get", {"200", "304", "404", "422", "503", "500"}),
    ("/v0.1/servers", "options", {"204", "500"}),
    ("/docs/{asset}", "get", {"200", "304", "404", "500"}),
])
def test_each_operation_documents_its_statuses(
    document: dict[str, Any], path: str, method: str, statuses: set[str]
) -> None:
    responses = document["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status, response in responses.items():
        if int(status) >= 400 and (path, status) != ("/health", "503"):
            media = response["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert media["example"]["status"] == int(status)


def test_errors_document_their_headers(document: dict[str, Any]) -> None:
    responses = document["paths"]["/registrations"]["post"]["responses"]
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    feed = document["paths"]["/v0.1/servers"]["get"]["responses"]
    assert all("Access-Control-Allow-Origin" in response["headers"] for response in feed.values())


def test_revisions_document_their_etag_and_if_match(document: dict[str, Any]) -> None:
    by_id = document["paths"]["/registrations/{registration_id}"]
    assert by_id["get"]["responses"]["200"]["headers"]["ETag"]["schema"]["pattern"] == '^"[1-9][0-9]*"$'
    for operation in (by_id["patch"], document["paths"]["/registrations/{registration_id}/status"]["patch"]):
        headers = [p for p in operation["parameters"] if p["in"] == "header"]
        assert [(p["name"], p["required"]) for p in headers] == [("If-Match", False)]
    schemas = document["components"]["schemas"]
    assert {"revision", "published_revision", "published_version", "publication", "publication_message"} <= set(
        schemas["RegistrationPublic"]["properties"])
    assert "revision" in schemas["StatusChange"]["properties"]
    assert "revision" in schemas["AuditLogEntry"]["properties"]
    assert schemas["Revision"]["properties"]["status"]["enum"] == ["Pending", "Approved", "Rejected", "Superseded"]
    revision = document["paths"]["/registrations/{registration_id}/revisions/{revision}"]["get"]["parameters"]
    assert revision[1] == {"name": "revision", "in": "path", "required": True, "schema": {"type": "integer"},
                           "description": "The revision's number (1, 2, 3 …)."}
    official = schemas["OfficialMeta"]["properties"]
    assert official["status"]["enum"] == ["active", "deprecated", "deleted"]
    assert "statusMessage" in official


def test_security_follows_the_operation_and_the_feed_setting(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/health"]["get"]["security"] == []
    assert paths["/docs"]["get"]["security"] == []
    assert paths["/v0.1/servers"]["get"]["security"] == []
    signed_in = [{"bearer": []}, {"entra": [f"api://{CLIENT}/access_as_user"]}]
    assert paths["/registrations"]["post"]["security"] == signed_in
    assert paths["/registrations/{registration_id}"]["delete"]["security"] == signed_in
    entra_feed = openapi.build(make_settings(REGISTRY_FEED_AUTH="entra"), api.OPERATIONS)
    feed = entra_feed["paths"]["/v0.1/servers"]["get"]
    assert feed["security"] == [{"bearer": []}, {"entra": [f"api://{CLIENT}/.default"]}]
    assert {"401", "403"} <= set(feed["responses"])
    assert entra_feed["paths"]["/v0.1/servers"]["options"]["security"] == []


def test_security_schemes_name_the_tenant_authority_and_scope(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] | {"description": ""} == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                      "description": ""}
    flow = schemes["entra"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize"
    assert flow["tokenUrl"] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert list(flow["scopes"]) == [f"api://{CLIENT}/access_as_user"]


def test_request_examples_pass_the_request_models() -> None:
    checked = 0
    context = validation_context(make_settings().endpoints)
    for operation in api.OPERATIONS:
        if operation.request is not None and operation.request_example is not None:
            operation.request.model_validate(operation.request_example, context=context)
            checked += 1
    assert checked == 6


def test_an_endpoint_url_validates_only_with_the_settings_given() -> None:
    # The rules are the deployment's, handed in; a model validated without them refuses to guess.
    example = {"endpoint_url": "http://10.20.0.7/mcp", "endpoint_name": "Weather Tools",
               "owner_contact": "weather-team@contoso.com"}
    with pytest.raises(TypeError, match="validates with the endpoint settings"):
        RegistrationCreate.model_validate(example)
    with pytest.raises(ValidationError) as caught:
        RegistrationCreate.model_validate(example, context=validation_context(make_settings().endpoints))
    assert caught.value.errors()[0]["type"] == "url_scheme"
    lenient = make_settings(ALLOW_HTTP_ENDPOINTS="true", ALLOWED_ENDPOINT_NETWORKS="10.20.0.0/16").endpoints
    created = RegistrationCreate.model_validate(example, context=validation_context(lenient))
    assert created.endpoint_url == "http://10.20.0.7/mcp"


def test_every_tag_is_declared_and_used(document: dict[str, Any]) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == ["health", "users", "registrations", "attestation", "notifications", "feed", "demand", "docs"]
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert used == set(declared)


def test_the_built_document_is_cached_per_settings() -> None:
    settings = make_settings()
    assert api.document(settings) is api.document(settings)


# Served over HTTP by the dev host.

def test_openapi_json_is_served_anonymously_with_an_etag(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    validate(served)
    assert {operation["operationId"] for _, _, operation in operations(served)} >= {"health", "docs_page"}
    again = client.get("/openapi.json", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    # One conditional GET for the document, its page's files and the feed (RFC 9110 section 13.1.2):
    # `*`, a weak tag and a list are honoured here as on the feed.
    for held in ("*", f"W/{response.headers['etag']}", f'"other", {response.headers["etag"]}'):
        assert client.get("/openapi.json", headers={"If-None-Match": held}).status_code == 304
    assert client.get("/openapi.json", headers={"If-None-Match": '"other"'}).status_code == 200


def documented_access(operation: dict[str, Any]) -> str:
    """Who the document says may call an operation: anyone (no security), or a signed-in user, or an
    administrator (a 403 that says the caller is not one)."""
    if not operation["security"]:
        return "anonymous"
    return "admin" if "not an administrator" in operation["responses"]["403"]["description"] else "user"


def test_every_operation_enforces_its_documented_access_rule(
    client: httpx.Client, make_caller: Callable[..., Caller]
) -> None:
    served = client.get("/openapi.json").json()
    declared = {openapi.operation_id(entry): entry.access for entry in api.OPERATIONS}
    user, admin = make_caller(), make_caller(admin=True)
    values = {"registration_id": submit(client, user)["registration_id"], "version": "latest", "asset": "docs.js",
              "subscription_id": str(uuid.uuid4()),
              "user_id": client.post("/users", headers=user.headers).json()["user_id"],
              "serverName": "com.example/none", "revision": "1", "probe_id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"}
    callers = {"anonymous": {}, "user": user.headers, "admin": admin.headers}
    checked = 0
    # The registration is deleted last, so that every other operation meets it.
    for path, method, operation in sorted(operations(served), key=lambda item: item[1] == "delete"):
        access = documented_access(operation)
        assert access == {"feed": "anonymous"}.get(declared[operation["operationId"]],
                                                   declared[operation["operationId"]])
        url = re.sub(r"\{(\w+)\}", lambda match: values[match[1]], path)
        body: dict[str, Any] | None = {} if "requestBody" in operation else None
        statuses = {}
        for name, headers in callers.items():
            response = client.request(method.upper(), url, json=body, headers=headers)
            assert str(response.status_code) in operation["responses"], (method, path, name, response.text)
            statuses[name] = response.status_code
            if access == "admin" and name == "user":
                assert_problem(response, 403, NOT_ADMIN)
        refused = {name for name, status in statuses.items() if status in (401, 403)}
        expected = {"anonymous": set(), "user": {"anonymous"}, "admin": {"anonymous", "user"}}[access]
        assert refused == expected, (method, path, statuses)
        if access != "anonymous":
            assert statuses["anonymous"] == 401
        if access == "admin":
            assert statuses["user"] == 403
        checked += 1
    assert checked == len(declared)


def test_docs_page_loads_only_its_own_files_under_a_strict_policy(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in response.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources == [
        "data:,",
        f"/api/docs/swagger-ui.css?v={docs.asset('swagger-ui.css').digest}",
        f"/api/docs/swagger-ui-bundle.js?v={docs.asset('swagger-ui-bundle.js').digest}",
        f"/api/docs/docs.js?v={docs.asset('docs.js').digest}",
    ]
    for source in sources[1:]:
        asset = client.get(source.removeprefix("/api"))
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(("name", "content_type"), [
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("oauth2-redirect.html", "text/html; charset=utf-8"),
    ("LICENSE", "text/plain; charset=utf-8"),
])
def test_docs_assets_have_their_content_type_and_revalidate_without_a_version(
    client: httpx.Client, name: str, content_type: str
) -> None:
    response = client.get(f"/docs/{name}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == docs.asset(name).body
    again = client.get(f"/docs/{name}", headers={"If-None-Match": response.headers["etag"],
                                                  "Accept-Encoding": "identity"})
    assert again.status_code == 304
    assert again.content == b""


def test_docs_assets_are_gzipped_for_clients_that_take_it() -> None:
    name = "swagger-ui-bundle.js"
    content = docs.asset(name)
    assert len(content.gzipped) < len(content.body) / 2
    assert gzip.decompress(content.gzipped) == content.body


def test_gzipped_asset_over_http(client: httpx.Client) -> None:
    response = client.get("/docs/swagger-ui.css", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["etag"].endswith('-gz"')
    assert response.content == docs.asset("swagger-ui.css").body


@pytest.mark.parametrize("name", ["index.html", "swagger-ui.js", "README.md", "docs.js.map"])
def test_only_listed_docs_assets_are_served(client: httpx.Client, name: str) -> None:
    response = client.get(f"/docs/{name}")
    assert_problem(response, 404, "No such documentation file.")


def test_an_encoded_slash_in_an_asset_name_never_reaches_the_app(client: httpx.Client) -> None:
    # Decoded before routing, as on Azure: `docs/../openapi.py` is no route, and the host answers.
    response = client.get("/docs/..%2Fopenapi.py")
    assert (response.status_code, response.content) == (404, b"")


# A declaration that names a text shared/texts.py lacks fails as its module is imported, not on the
# first GET /openapi.json.

async def _never_called(call: object) -> Any:
    raise AssertionError("only declared")


def test_an_unknown_tag_fails_at_declaration() -> None:
    with pytest.raises(MissingText, match=r"^the tag 'widgets' is not in texts.TAGS"):
        Routes("widgets")


@pytest.mark.parametrize(("declared", "named"), [
    ({"answers": (Answer(200, "Fine.", None, ("X-Widget",)),)}, "response header 'X-Widget' (texts.HEADERS)"),
    ({"answers": (Answer(200, "Fine."),), "request_headers": ("If-Widget",)},
     "request header 'If-Widget' (texts.REQUEST_HEADERS)"),
    ({"answers": (Answer(200, "Fine."),), "errors": {418: "A teapot."}},
     "problem status 418 (texts.PROBLEM_TITLES, texts.PROBLEM_EXAMPLES)"),
])
def test_an_unknown_header_or_problem_status_fails_at_declaration(declared: dict[str, Any], named: str) -> None:
    routes = Routes("docs")
    with pytest.raises(MissingText) as caught:
        routes.declare("GET", "widgets/never-registered", access="anonymous", summary="Never served",
                       **declared)(_never_called)
    assert str(caught.value) == (f"{__name__}._never_called (GET widgets/never-registered) names texts that "
                                 f"shared/texts.py lacks: {named}")
    assert routes.operations == []


def test_a_guid_route_parameter_without_its_unknown_id_text_fails_at_declaration() -> None:
    with pytest.raises(MissingText, match=r"route parameter 'widget_id' \(texts.UNKNOWN_ID\)$"):
        Routes("docs").declare("GET", "widgets/{widget_id:guid}", access="anonymous", summary="Never served",
                               answers=(Answer(200, "Fine."),))(_never_called)
