"""What a dev host writes to its log, requests with tokens and e-mail addresses, failures and an
outage included: nothing that would let a reader sign in, connect to the database or mail a
user. The same scan runs over every host's log at the end of the session (tests/logscan.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests import logscan
from tests.registry import body
from tests.support import APP_ROLE, Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority, SigningKey
from tools.pgserver import PgServer

HostFactory = Callable[[Mapping[str, str]], RunningHost]


def test_the_scan_finds_each_kind_of_secret_and_nothing_in_ordinary_lines() -> None:
    text = "\n".join([
        "INFO shared.auth.tokens: token refused: ExpiredSignatureError",
        'WARNING shared.db: database unavailable while creating the pool: ConnectionRefusedError',
        "DEBUG asyncpg: connecting to postgresql://postgres@127.0.0.1:5432/registry",
        "got Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
        "claims eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiIxIn0.c2ln in a message",
        "DSN postgresql://registry_app:hunter2@127.0.0.1:5432/registry",
        "owner is ada.lovelace@contoso.com",
        "the role password is pw-1234",
    ])
    findings = logscan.scan_text(text, "sample.log", {"pw-1234"})
    assert [(finding.line, finding.kind) for finding in findings] == [
        (4, "bearer token"), (5, "JWT"), (6, "password in a URL"), (7, "e-mail address"), (8, "forbidden text"),
    ]
    assert "hunter2" not in " ".join(str(finding) for finding in findings)


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))


def test_a_host_logs_no_token_no_password_and_no_email(
    dedicated_server: PgServer, authority: DevAuthority, host_factory: HostFactory,
    make_caller: Callable[..., Caller], pytestconfig: pytest.Config,
) -> None:
    server = dedicated_server
    server.start()
    url = PostgresCluster(server.url, server).migrated_database()
    password, wrong_password = f"secret-{uuid.uuid4().hex}", f"secret-{uuid.uuid4().hex}"
    sql = Sql(url)
    # The app's role, granted by migrated_database as in Azure, gets a password to sign in with.
    # DDL takes no parameters; the password is hex digits after a fixed prefix.
    sql.execute(f"ALTER ROLE {APP_ROLE} PASSWORD '{password}'")
    for secret in (password, wrong_password):
        logscan.forbid(pytestconfig, secret)

    host = host_factory(app_environment(with_credentials(url, APP_ROLE, password), authority, LOG_LEVEL="DEBUG"))
    refused = host_factory(app_environment(with_credentials(url, APP_ROLE, wrong_password), authority,
                                           LOG_LEVEL="DEBUG"))
    user, admin = make_caller(), make_caller(admin=True)
    # The contract does not say whether a refused database password is 500 or 503; only the log matters here.
    assert httpx.get(f"{refused.base_url}/users/me", headers=admin.headers, timeout=30).status_code in (500, 503)
    expired = authority.mint(oid=user.oid, email=user.email, lifetime=-3600)
    foreign = authority.sign(authority.claims(oid=user.oid, email=user.email), key=SigningKey.generate())
    statuses = []
    with httpx.Client(base_url=host.base_url, timeout=30) as client:
        def send(method: str, path: str, caller_headers: Mapping[str, str], **options: Any) -> None:
            statuses.append(client.request(method, path, headers=dict(caller_headers), **options).status_code)

        created = client.post("/registrations", headers=user.headers, json=body(owner_contact="owner.x@contoso.com"))
        statuses.append(created.status_code)
        path = f"/registrations/{created.json()['registration_id']}"
        send("GET", path, user.headers)
        send("GET", f"{path}/audit", admin.headers)
        send("GET", "/users/me", {"Authorization": f"Bearer {expired}"})
        send("GET", "/users/me", {"Authorization": f"Bearer {foreign}"})
        send("GET", "/users/me", {"Authorization": "Bearer not.a.jwt"})
        send("PATCH", f"{path}/status", user.headers, json={"status": "Approved"})
        send("POST", "/registrations", user.headers,
             json={**body(description="write to leak.me@example.org"), "contact_email": "leak.me@example.org"})
        send("POST", "/registrations", user.headers, json=body(endpoint_url=created.json()["endpoint_url"]))
        send("GET", "/users/me", admin.headers)
        server.stop("fast")
        send("GET", "/registrations", user.headers)
        send("POST", "/registrations", user.headers, json=body(owner_contact="during.outage@contoso.com"))
    assert statuses == [201, 200, 200, 401, 401, 401, 403, 422, 409, 200, 503, 503]

    log = host.log() + refused.log()
    # The failures were logged: the scan below looks at lines that could have leaked.
    for expected in ("token refused: ExpiredSignatureError", "token refused: DecodeError", "InvalidPasswordError"):
        assert expected in log
    secrets = {password, wrong_password, user.token, admin.token, expired, foreign}
    assert logscan.scan_text(log, "devhost.log", secrets) == []
