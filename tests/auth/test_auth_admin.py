"""Who is an administrator: the app role, the group claim, and Microsoft Graph on group overage."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared import identity
from shared.auth import admin, tokens
from shared.auth.principal import Principal
from tests.auth.auth_kit import Configure, FakeCredential, FakeGraph, run, token
from tools.authority import DevAuthority

ADMIN_GROUP = "5b0e7c4a-2f61-4a8b-9d3e-8c1f0a7b6e52"


def person(**changes: Any) -> Principal:
    base = Principal(oid=str(uuid.uuid4()), tenant_id=str(uuid.uuid4()), email=None, display_name="Ada", roles=(),
                     groups=(), scopes=("access_as_user",), is_app=False, has_group_overage=False)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (("Registry.Admin",), True),
        (("Registry.Reader", "Registry.Admin"), True),
        (("Registry.Admins",), False),
        (("registry.admin",), False),
        (("Registry",), False),
        ((), False),
    ],
)
def test_the_admin_role_is_matched_element_by_element(
    issuer: DevAuthority, roles: tuple[str, ...], expected: bool
) -> None:
    assert run(admin.is_admin(person(roles=roles))) is expected


def test_the_admin_role_name_is_configurable(issuer: DevAuthority, configure: Configure) -> None:
    configure(ENTRA_ADMIN_ROLE="Catalog.Owner")
    assert run(admin.is_admin(person(roles=("Catalog.Owner",)))) is True
    assert run(admin.is_admin(person(roles=("Registry.Admin",)))) is False


def test_a_role_claim_from_a_real_token_makes_an_admin(issuer: DevAuthority) -> None:
    assert run(admin.is_admin(run(tokens.validate(token(issuer, admin=True))))) is True
    assert run(admin.is_admin(run(tokens.validate(token(issuer, name="Plain"))))) is False


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((ADMIN_GROUP,), True),
        (("0f5e2a34-7c1b-4d8e-9a6f-3b2c1d0e9f87", ADMIN_GROUP.upper()), True),
        ((f"x{ADMIN_GROUP}",), False),
        ((ADMIN_GROUP[:-1],), False),
        ((f"{ADMIN_GROUP},{ADMIN_GROUP}",), False),
        ((), False),
    ],
)
def test_the_admin_group_is_matched_element_by_element(
    issuer: DevAuthority, configure: Configure, groups: tuple[str, ...], expected: bool
) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    assert run(admin.is_admin(person(groups=groups))) is expected


def test_groups_mean_nothing_without_a_configured_admin_group(issuer: DevAuthority, graph: FakeGraph) -> None:
    assert run(admin.is_admin(person(groups=(ADMIN_GROUP,), has_group_overage=True))) is False
    assert graph.calls == []


@pytest.mark.parametrize("overage", [{"hasgroups": True}, {"_claim_names": {"groups": "src1"}}])
def test_overage_claims_are_recognised(issuer: DevAuthority, overage: dict[str, Any]) -> None:
    assert run(tokens.validate(token(issuer, set_claims=overage))).has_group_overage is True
    assert run(tokens.validate(token(issuer, name="No overage"))).has_group_overage is False


def test_on_overage_graph_is_asked_with_the_apps_credential(
    issuer: DevAuthority, configure: Configure, graph: FakeGraph, credential: FakeCredential
) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    graph.member = True
    member = person(has_group_overage=True)
    assert run(admin.is_admin(member)) is True
    assert [(call.path, call.body, call.authorization) for call in graph.calls] == [
        (f"/v1.0/users/{member.oid}/checkMemberGroups", {"groupIds": [ADMIN_GROUP]}, "Bearer graph-access-token")
    ]
    assert credential.scopes == [(f"{graph.url}/.default",)]


def test_graph_saying_no_means_not_admin(issuer: DevAuthority, configure: Configure, graph: FakeGraph) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    assert run(admin.is_admin(person(has_group_overage=True))) is False
    assert len(graph.calls) == 1


def test_graph_failing_means_not_admin(issuer: DevAuthority, configure: Configure, graph: FakeGraph) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    graph.member, graph.fail = True, True
    assert run(admin.is_admin(person(has_group_overage=True))) is False


def test_a_credential_failing_means_not_admin(
    issuer: DevAuthority, configure: Configure, graph: FakeGraph, credential: FakeCredential
) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    graph.member, credential.broken = True, True
    assert run(admin.is_admin(person(has_group_overage=True))) is False
    assert graph.calls == []


def test_graph_unreachable_means_not_admin(
    issuer: DevAuthority, configure: Configure, credential: FakeCredential
) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP, GRAPH_BASE_URL="http://127.0.0.1:9")
    assert run(admin.is_admin(person(has_group_overage=True))) is False


def test_answers_are_cached_per_user(issuer: DevAuthority, configure: Configure, graph: FakeGraph) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    graph.member = True
    member, other = person(has_group_overage=True), person(has_group_overage=True)
    assert [run(admin.is_admin(member)) for _ in range(5)] == [True] * 5
    graph.member = False
    assert run(admin.is_admin(other)) is False
    assert run(admin.is_admin(member)) is True
    assert len(graph.calls) == 2


def test_failures_are_cached_briefly(issuer: DevAuthority, configure: Configure, graph: FakeGraph) -> None:
    configure(ENTRA_ADMIN_GROUP_ID=ADMIN_GROUP)
    graph.fail = True
    member = person(has_group_overage=True)
    assert [run(admin.is_admin(member)) for _ in range(3)] == [False] * 3
    assert len(graph.calls) == 1


def test_the_default_credential_is_built_without_aiohttp_transport() -> None:
    # aiohttp, azure.identity.aio's default transport, is not a runtime dependency.
    credential: Any = identity.managed_credential.__wrapped__()  # a fresh one: the cached one stays open
    assert type(credential).__name__ == "DefaultAzureCredential"
    run(credential.close())


@pytest.mark.parametrize("first", ["function_app", "shared.services.users", "shared.auth"])
def test_importing_the_app_does_not_import_azure_identity(first: str) -> None:
    # Any import order works (services.users and shared.auth import each other) and stays light.
    probe = (
        f"import sys, {first}, function_app, shared.auth, shared.routes.users; "
        "sys.exit('azure.identity imported' if 'azure.identity' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr + result.stdout
