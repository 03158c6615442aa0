"""Schemathesis over every operation of the OpenAPI document, as a user and as an administrator,
against the dev host: no 5xx, and every answer has a documented status, content type, headers and
body.

The schema is the one `shared.openapi` builds, loaded at import so that schemathesis makes one
pytest item per operation (its fixture-based loader does not run under pytest 9.2);
`test_the_fuzzed_document_is_the_served_one` holds it to what `/api/openapi.json` serves.
FUZZ_EXAMPLES sets how many generated cases each operation gets (default 50; `make fuzz` 500).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared import api, openapi
from shared.config import Settings
from shared.http import PROBLEM_TYPE
from tests.registry import decide, submit
from tests.support import Caller
from tools.authority import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID
from tools.devhost import GUID

Case = schemathesis.Case[Any]
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
# The work of each test is bounded by its count of examples; the suite's 300 s guard would make it
# depend on the machine's speed instead (a loaded machine shrinking a failure needs longer).
pytestmark = pytest.mark.timeout(60 * max(20, FUZZ_EXAMPLES // 5))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


SETTINGS = Settings.from_env({
    "DATABASE_URL": "postgresql://registry@127.0.0.1/registry",
    "ENTRA_TENANT_ID": DEFAULT_TENANT_ID,
    "ENTRA_API_CLIENT_ID": DEFAULT_CLIENT_ID,
})
DOCUMENT = openapi.build(SETTINGS, api.OPERATIONS)
# CORS preflights are answered before an operation's parameters are read (as a platform's CORS
# would), so they accept what the operation itself refuses by design; tests/test_cors.py holds
# them to their contract.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(method="OPTIONS")
fuzz_settings = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


# Route parameters constrained to GUIDs (`{registration_id:guid}`), and the host's test for them.
GUID_PARAMETERS = frozenset(
    parameter["name"]
    for item in DOCUMENT["paths"].values() for operation in item.values()
    for parameter in operation.get("parameters", ())
    if parameter["in"] == "path" and parameter["schema"].get("format") == "uuid"
)
# Route parameters constrained to integers (`{revision:int}`), and the host's test for them.
INT_PARAMETERS = frozenset(
    parameter["name"]
    for item in DOCUMENT["paths"].values() for operation in item.values()
    for parameter in operation.get("parameters", ())
    if parameter["in"] == "path" and parameter["schema"].get("type") == "integer"
)
INTEGER = re.compile(r"^-?[0-9]+$")
# The dev host's (aiohttp's) limit on the request target, as sent: path and query.
MAX_REQUEST_TARGET = 8190


@pytest.fixture(scope="session")
def fuzz_user(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller("Fuzz User")


@pytest.fixture(scope="session")
def fuzz_admin(make_caller: Callable[..., Caller]) -> Caller:
    return make_caller("Fuzz Admin", admin=True)


def host_answer(case: Case, url: str) -> tuple[int, ...]:
    """The statuses the host answers by itself, for a request that never reaches a trigger; none
    when it does: 404 without a body for a value that is not a GUID (or an integer) where the route
    requires one;
    for a request target over 8 KiB, 414 from the Functions host, 400 from the dev host."""
    parts = urlsplit(url)
    if len(parts.path) + len(f"?{parts.query}" if parts.query else "") > MAX_REQUEST_TARGET:
        return (400, 414)
    path_values = (case.path_parameters or {}).items()
    if any(name in GUID_PARAMETERS and not GUID.match(unquote(str(value))) for name, value in path_values):
        return (404,)
    if any(name in INT_PARAMETERS and not INTEGER.match(unquote(str(value))) for name, value in path_values):
        return (404,)
    return ()


def lost_in_the_dev_host(case: Case, response: Any) -> bool:
    """The dev host's router (aiohttp) cannot match most paths whose decoded form holds a line
    break, and answers a plain 404 itself; the Functions host routes them to the app."""
    line_break = any("\n" in unquote(str(value)) for value in (case.path_parameters or {}).values())
    content_type = (response.headers.get("content-type") or [""])[0]
    return line_break and response.status_code == 404 and not content_type.startswith(PROBLEM_TYPE)


def call_and_validate(case: Case, api: str, caller: Caller) -> None:
    response = case.call(base_url=api, headers=caller.headers, timeout=30)
    expected = host_answer(case, str(response.request.url))
    if expected:
        assert response.status_code in expected, response.text
        return
    if lost_in_the_dev_host(case, response):
        return
    # A query parameter generated as null or empty is not sent, or is dropped by the host: the
    # contract reads it as absent, so a case "invalid" only through it is a valid request.
    absent = any(value is None or value == "" or value == [] for value in (case.query or {}).values())
    checks = [check for check in CHECKS if check is not negative_data_rejection] if absent else CHECKS
    case.validate_response(response, checks=checks, headers=caller.headers,
                           transport_kwargs={"base_url": api, "headers": caller.headers, "timeout": 30})


@schema.parametrize()
@fuzz_settings
def test_as_a_user(case: Case, api: str, fuzz_user: Caller) -> None:
    call_and_validate(case, api, fuzz_user)


@schema.parametrize()
@fuzz_settings
def test_as_an_administrator(case: Case, api: str, fuzz_admin: Caller) -> None:
    call_and_validate(case, api, fuzz_admin)


def test_the_fuzzed_document_is_the_served_one(client: httpx.Client) -> None:
    served = client.get("/openapi.json").json()
    assert served["paths"] == DOCUMENT["paths"]
    assert served["components"]["schemas"] == DOCUMENT["components"]["schemas"]


@pytest.fixture
def real_ids(client: httpx.Client, fuzz_user: Caller, fuzz_admin: Caller,
             make_caller: Callable[..., Caller]) -> dict[str, list[str]]:
    """Registrations in every state, the fuzzing user's own and others', and their users' ids."""
    other = make_caller()
    owners = (fuzz_user, fuzz_user, fuzz_user, other, other, fuzz_admin)
    registrations = [submit(client, owner)["registration_id"] for owner in owners]
    for index, status in ((1, "Approved"), (2, "Rejected"), (4, "Approved")):
        decide(client, fuzz_admin, registrations[index], status)
    users = [client.post("/users", headers=caller.headers).json()["user_id"] for caller in (fuzz_user, other)]
    # Probing is off on this host, so no probe exists: a probe id is one nobody has (404 every time).
    # Nor is any subscription made: a subscription's URL would be called by the notifications timer.
    return {"registration_id": registrations, "user_id": users, "revision": ["1", "2"],
            "probe_id": [str(uuid.uuid4())], "subscription_id": [str(uuid.uuid4())]}


@pytest.mark.parametrize("label", sorted(
    f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method, operation in item.items()
    if method != "options"
    and any(parameter["name"] in GUID_PARAMETERS for parameter in operation.get("parameters", ()))
))
def test_on_real_resources(label: str, api: str, real_ids: dict[str, list[str]], fuzz_user: Caller,
                           fuzz_admin: Caller) -> None:
    """Random ids almost always answer 404: here the ids are real, the rest of each request generated."""
    method, path = label.split(" ", 1)
    operation = schema[path][method]

    @given(case=operation.as_strategy(), data=st.data())
    @fuzz_settings
    def run(case: Case, data: st.DataObject) -> None:
        case.path_parameters = {name: data.draw(st.sampled_from(real_ids[name])) for name in case.path_parameters}
        call_and_validate(case, api, data.draw(st.sampled_from((fuzz_user, fuzz_admin))))

    run()
