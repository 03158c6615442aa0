"""Notifications: the subscriptions API over real HTTP through the dev host, and deliveries sent
by the round (driven explicitly here) to loopback receivers, signatures checked with the Standard
Webhooks reference library. Receivers are named by 127.0.0.1 (admitted through an allowed
network) or by a name an injected resolver maps: no name is ever looked up by the system."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.types import Receive, Scope, Send

from shared.config import DatabaseSettings, EndpointSettings, NotifySettings
from shared.db import Database
from shared.endpoint_policy import parse_networks
from shared.jobs import notify
from tests import mcp_fixtures as fx
from tests.support import Caller, PostgresCluster, RunningHost, Sql, _app_urls, app_environment
from tools.authority import DevAuthority

HostFactory = Callable[[Mapping[str, str]], RunningHost]
ENDPOINTS = EndpointSettings(allow_http=True, allowed_networks=parse_networks(["127.0.0.0/8"]))
FAST = NotifySettings(test_backoff_seconds=0.0, public_url="https://registry.contoso.com/api")
ROUNDS = 60


class Receiver:
    """Records every request by path; `/fail-twice` answers 500 twice then 200, `/never` never
    answers, `/redirect` sends 302 to `/ok`, anything else 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    def on(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for seen, headers, body in self.requests if seen == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        self.requests.append((path, {k.decode().lower(): v.decode() for k, v in scope["headers"]}, body))
        status, headers = 204, []
        if path == "/never":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # the fixture's shutdown
                return
        elif path == "/fail-twice" and len(self.on(path)) <= 2:
            status = 500
        elif path == "/redirect":
            status, headers = 302, [(b"location", f"http://127.0.0.1:{scope['server'][1]}/ok".encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    app = Receiver()
    servers = fx.LoopbackServers()
    servers.add("hooks", app)
    servers.start()
    yield app, servers.port("hooks")
    servers.stop()


@pytest.fixture(scope="module")
def owner_url(postgres: PostgresCluster) -> str:
    return postgres.migrated_database("registry_notify")


@pytest.fixture(scope="module")
def host(owner_url: str, authority: DevAuthority, host_factory: HostFactory) -> RunningHost:
    return host_factory(app_environment(owner_url, authority, ALLOW_HTTP_ENDPOINTS="true",
                                        ALLOWED_ENDPOINT_NETWORKS="127.0.0.0/8"))


def run_rounds(owner_url: str, until: Callable[[], bool], **options: Any) -> None:
    """Run the round as the app's role until `until()` holds; a guard of ROUNDS rounds, not a clock."""
    async def one_round() -> None:
        db = Database(lambda: DatabaseSettings.from_env({"DATABASE_URL": _app_urls[owner_url]}))
        try:
            await notify.run_round(db=db, settings=FAST, endpoints=ENDPOINTS, **options)
        finally:
            await db.close()

    for _ in range(ROUNDS):
        asyncio.run(one_round())
        if until():
            return
    raise AssertionError(f"not done after {ROUNDS} rounds")


def subscribe(host: RunningHost, admin: Caller, url: str, events: list[str] | None = None,
              channel: str = "webhook") -> dict[str, Any]:
    created = httpx.post(f"{host.base_url}/subscriptions", headers=admin.headers, timeout=30, json={
        "channel": channel, "url": url, "events": events or list(notify.EVENTS.values()), "description": "test"})
    assert created.status_code == 201, created.text
    return dict(created.json())


def submit(host: RunningHost, caller: Caller, port: int) -> str:
    tag = uuid.uuid4().hex[:8]
    created = httpx.post(f"{host.base_url}/registrations", headers=caller.headers, timeout=30, json={
        "endpoint_url": f"https://mcp-{tag}.contoso.com/mcp", "endpoint_name": f"Weather {tag}",
        "owner_contact": "weather-team@contoso.com"})
    assert created.status_code == 201, created.text
    return str(created.json()["registration_id"])


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


def test_the_subscriptions_api(host: RunningHost, make_caller: Callable[..., Caller]) -> None:
    admin, user = make_caller(admin=True), make_caller()
    base = f"{host.base_url}/subscriptions"
    created = subscribe(host, admin, "https://hooks.contoso.com/flow?api-version=1&sig=s3cr3t", ["approved"])
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"][6:])) >= 24
    assert created["url"] == "https://hooks.contoso.com/flow?api-version=redacted&sig=redacted"
    one = f"{base}/{created['subscription_id']}"
    read = httpx.get(one, headers=admin.headers, timeout=30).json()
    assert "secret" not in read
    assert read["url"] == created["url"]
    assert read["events"] == ["approved"]
    changed = httpx.patch(one, headers=admin.headers, timeout=30, json={"events": ["approved", "drifted"]})
    assert (changed.status_code, changed.json()["events"]) == (200, ["approved", "drifted"])
    listed = httpx.get(base, headers=admin.headers, timeout=30).json()["results"]
    assert created["subscription_id"] in [row["subscription_id"] for row in listed]
    teams = subscribe(host, admin, "https://contoso.webhook.office.com/workflows/x?sig=abc", ["drifted"], "teams")
    assert teams["secret"] is None
    assert httpx.get(base, headers=user.headers, timeout=30).status_code == 403
    for url, rule in (("http://169.254.169.254/latest", "url_address_refused"),
                      ("https://10.1.2.3/hook", "url_address_refused"), ("https://localhost/hook", "url_host_refused"),
                      ("ftp://hooks.contoso.com/", "url_scheme")):
        refused = httpx.post(base, headers=admin.headers, timeout=30,
                             json={"channel": "webhook", "url": url, "events": ["approved"]})
        assert refused.status_code == 422, url
        assert refused.json()["errors"][0]["type"] == rule
    bad_event = httpx.post(base, headers=admin.headers, timeout=30,
                           json={"channel": "webhook", "url": "https://hooks.contoso.com/", "events": ["nope"]})
    assert bad_event.status_code == 422
    assert httpx.delete(one, headers=admin.headers, timeout=30).status_code == 204
    assert httpx.get(one, headers=admin.headers, timeout=30).status_code == 404
    assert httpx.delete(f"{base}/{teams['subscription_id']}", headers=admin.headers, timeout=30).status_code == 204
    assert "s3cr3t" not in host.log()


def test_each_event_is_delivered_signed_and_in_order(host: RunningHost, owner_url: str,
                                                     receiver: tuple[Receiver, int],
                                                     make_caller: Callable[..., Caller]) -> None:
    app, port = receiver
    admin, submitter = make_caller(admin=True), make_caller()
    subscription = subscribe(host, admin, f"http://127.0.0.1:{port}/all")
    registration_id = submit(host, submitter, port)
    one = f"{host.base_url}/registrations/{registration_id}"

    def ok(response: httpx.Response) -> None:
        assert response.status_code in (200, 204), response.text

    ok(httpx.patch(f"{one}/status", headers=admin.headers, timeout=30, json={"status": "Approved"}))
    ok(httpx.patch(one, headers=submitter.headers, timeout=30,
                   json={"description": "Now with alerts.", "owner_contact": "new-team@contoso.com"}))
    ok(httpx.patch(f"{one}/status", headers=admin.headers, timeout=30, json={"status": "Approved"}))
    ok(httpx.post(f"{one}/revisions/1/publish", headers=admin.headers, timeout=30))
    ok(httpx.patch(one, headers=submitter.headers, timeout=30, json={"description": "Rejected edit."}))
    ok(httpx.patch(f"{one}/status", headers=admin.headers, timeout=30,
                   json={"status": "Rejected", "reason": "Not yet."}))
    ok(httpx.patch(f"{one}/publication", headers=admin.headers, timeout=30, json={"publication": "deprecated"}))
    ok(httpx.patch(f"{one}/publication", headers=admin.headers, timeout=30, json={"publication": "active"}))
    ok(httpx.delete(one, headers=admin.headers, timeout=30))
    expected = ["submitted", "approved", "updated", "approved", "published", "updated", "rejected", "deprecated",
                "reactivated", "deleted"]
    run_rounds(owner_url, lambda: len(app.on("/all")) >= len(expected))
    payloads = [verified(subscription["secret"], headers, body) for headers, body in app.on("/all")]
    assert [payload["type"] for payload in payloads] == expected
    assert {payload["data"]["registration_id"] for payload in payloads} == {registration_id}
    edit = payloads[2]["data"]
    assert edit["actor"]["display_name"] == submitter.name
    assert edit["revision"] == 2
    assert edit["changes"]["owner_contact"] == {"hidden": True}
    assert edit["changes"]["description"]["new"] == "Now with alerts."
    raw = b"".join(body for _, body in app.on("/all"))
    assert b"@" not in raw  # no e-mail address, of the submitter or the owner contact
    assert payloads[6]["data"]["reason"] == "Not yet."
    log = httpx.get(f"{host.base_url}/subscriptions/{subscription['subscription_id']}/deliveries",
                    headers=admin.headers, timeout=30).json()["results"]
    assert [row["event"] for row in log] == expected[::-1]
    assert {(row["status"], row["attempt"], row["status_code"]) for row in log} == {("delivered", 1, 204)}
    httpx.delete(f"{host.base_url}/subscriptions/{subscription['subscription_id']}", headers=admin.headers,
                 timeout=30)


def test_a_failing_receiver_gets_the_event_again_under_the_same_id_and_a_silent_one_fails_alone(
        host: RunningHost, owner_url: str, receiver: tuple[Receiver, int],
        make_caller: Callable[..., Caller]) -> None:
    app, port = receiver
    admin, submitter = make_caller(admin=True), make_caller()
    flaky = subscribe(host, admin, f"http://127.0.0.1:{port}/fail-twice", ["submitted"])
    silent = subscribe(host, admin, f"http://127.0.0.1:{port}/never", ["submitted"])
    healthy = subscribe(host, admin, f"http://127.0.0.1:{port}/healthy", ["submitted"])
    submit(host, submitter, port)
    sql = Sql(owner_url)

    def status(subscription: dict[str, Any]) -> str:
        return str(sql.fetchval("SELECT status FROM deliveries WHERE subscription_id = $1",
                                uuid.UUID(subscription["subscription_id"])))

    run_rounds(owner_url, lambda: status(silent) == "failed" and status(flaky) == "delivered", time_limit=0.5)
    attempts = app.on("/fail-twice")
    assert len(attempts) == 3
    assert len({headers["webhook-id"] for headers, _ in attempts}) == 1
    for headers, body in attempts:
        verified(flaky["secret"], headers, body)
    assert len(app.on("/healthy")) == 1
    assert status(healthy) == "delivered"
    failed = sql.fetchrow("SELECT attempt, error FROM deliveries WHERE subscription_id = $1",
                          uuid.UUID(silent["subscription_id"]))
    assert failed is not None
    assert failed["attempt"] == len(notify.BACKOFF) + 1
    assert "no answer" in failed["error"]
    for subscription in (flaky, silent, healthy):
        httpx.delete(f"{host.base_url}/subscriptions/{subscription['subscription_id']}", headers=admin.headers,
                     timeout=30)


def test_a_name_resolving_into_a_refused_range_is_never_contacted_and_redirects_are_not_followed(
        host: RunningHost, owner_url: str, receiver: tuple[Receiver, int],
        make_caller: Callable[..., Caller]) -> None:
    app, port = receiver
    admin, submitter = make_caller(admin=True), make_caller()
    metadata = subscribe(host, admin, "http://hooks.contoso.example/x", ["submitted"])
    redirect = subscribe(host, admin, f"http://127.0.0.1:{port}/redirect", ["submitted"])
    before = len(app.on("/ok"))
    submit(host, submitter, port)
    resolver = fx.Resolver(table={"hooks.contoso.example": ["169.254.169.254"]}, default=None)
    connector = fx.RecordingConnector()
    sql = Sql(owner_url)

    def row(subscription: dict[str, Any]) -> Any:
        return sql.fetchrow("SELECT status, status_code, error FROM deliveries WHERE subscription_id = $1",
                            uuid.UUID(subscription["subscription_id"]))

    run_rounds(owner_url, lambda: row(metadata)["status"] == "failed" and row(redirect)["status"] == "failed",
               resolver=resolver, connector=connector)
    assert ("169.254.169.254", 80) not in connector.attempts
    assert all(address == "127.0.0.1" for address, _ in connector.attempts)
    assert resolver.calls
    assert set(resolver.calls) == {"hooks.contoso.example"}
    assert "refused by the egress guard" in row(metadata)["error"]
    assert (row(redirect)["status_code"], len(app.on("/ok"))) == (302, before)
    assert len(app.on("/redirect")) == len(notify.BACKOFF) + 1
    for subscription in (metadata, redirect):
        httpx.delete(f"{host.base_url}/subscriptions/{subscription['subscription_id']}", headers=admin.headers,
                     timeout=30)


def test_a_decision_survives_the_host_dying_right_after_its_answer(
        postgres: PostgresCluster, authority: DevAuthority, host_factory: HostFactory,
        receiver: tuple[Receiver, int], make_caller: Callable[..., Caller]) -> None:
    app, port = receiver
    owner = postgres.migrated_database("registry_notify_kill")
    environment = app_environment(owner, authority, ALLOW_HTTP_ENDPOINTS="true",
                                  ALLOWED_ENDPOINT_NETWORKS="127.0.0.0/8")
    first = host_factory(environment)
    admin, submitter = make_caller(admin=True), make_caller()
    subscription = subscribe(first, admin, f"http://127.0.0.1:{port}/kill", ["approved"])
    registration_id = submit(first, submitter, port)
    decided = httpx.patch(f"{first.base_url}/registrations/{registration_id}/status", headers=admin.headers,
                          timeout=30, json={"status": "Approved"})
    assert decided.status_code == 200
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    # The restarted host's own timer sends it: every second here.
    second = host_factory(environment | {"NOTIFY_SCHEDULE": "* * * * * *"})
    deadline = time.monotonic() + 120  # a guard against a timer that never fires, not a measurement
    while not app.on("/kill") and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = app.on("/kill")
    assert len(delivered) == 1
    payload = verified(subscription["secret"], *delivered[0])
    assert (payload["type"], payload["data"]["registration_id"]) == ("approved", registration_id)
    second.stop()


def test_a_teams_subscription_gets_an_adaptive_card_with_a_link(
        host: RunningHost, owner_url: str, receiver: tuple[Receiver, int],
        make_caller: Callable[..., Caller]) -> None:
    app, port = receiver
    admin, submitter = make_caller(admin=True), make_caller()
    teams = subscribe(host, admin, f"http://127.0.0.1:{port}/teams?sig=abc", ["approved"], "teams")
    registration_id = submit(host, submitter, port)
    assert httpx.patch(f"{host.base_url}/registrations/{registration_id}/status", headers=admin.headers,
                       timeout=30, json={"status": "Approved"}).status_code == 200
    run_rounds(owner_url, lambda: bool(app.on("/teams")))
    message = json.loads(app.on("/teams")[0][1])
    content = message["attachments"][0]["content"]
    assert (message["type"], content["type"], content["version"]) == ("message", "AdaptiveCard", "1.4")
    assert "approved" in content["body"][0]["text"]
    facts = {fact["title"]: fact["value"] for fact in content["body"][1]["facts"]}
    assert facts["By"] == admin.name
    assert content["actions"][0]["url"] == f"https://registry.contoso.com/api/registrations/{registration_id}"
    httpx.delete(f"{host.base_url}/subscriptions/{teams['subscription_id']}", headers=admin.headers, timeout=30)
