"""GET /api/health over real HTTP: healthy with the database, 503 within its bound without it,
and healthy again once the database is back, without restarting the app."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import RunningHost, app_environment, throwaway_server
from tools.authority import DevAuthority
from tools.pgserver import PgServer

HEALTHY = {"status": "healthy", "database": "connected"}
UNHEALTHY = {"status": "unhealthy", "database": "disconnected"}
SOURCES = {"database", "memory", "blob", "none"}
# The contract's 2 s database bound plus the time a request takes on a busy test machine.
UNHEALTHY_WITHIN_SECONDS = 3.0
# Only a guard: the app heals by itself, and how fast a busy machine lets it is not the feature.
RECOVERS_WITHIN_SECONDS = 60.0

HostFactory = Callable[[Mapping[str, str]], RunningHost]


def health_of(response: httpx.Response) -> dict[str, Any]:
    """The database's part of a health answer, after checking the feed's part."""
    body: dict[str, Any] = response.json()
    feed = body.pop("feed")
    assert set(feed) == {"source", "snapshot_age_s"}
    assert feed["source"] in SOURCES
    assert feed["snapshot_age_s"] is None or (isinstance(feed["snapshot_age_s"], int) and feed["snapshot_age_s"] >= 0)
    return body


def test_health_is_200_and_exactly_healthy_when_the_database_answers(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    # As the Python worker sends it: a charset only for text/* (see tools/devhost.py).
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert health_of(response) == HEALTHY
    assert response.json()["feed"]["source"] == "database"


def test_health_needs_no_token(client: httpx.Client) -> None:
    response = client.get("/health", headers={"Authorization": "Bearer not-a-token"})
    assert (response.status_code, health_of(response)) == (200, HEALTHY)


def test_health_answers_only_get(client: httpx.Client) -> None:
    assert client.post("/health").status_code == 404


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgServer]:
    """A PostgreSQL these tests may stop and start without disturbing the others."""
    with throwaway_server("registry-health-") as server:
        yield server


def ensure_running(server: PgServer) -> None:
    if not server.running():
        server.start()


def assert_unhealthy_quickly(base_url: str) -> None:
    started = time.monotonic()
    response = httpx.get(f"{base_url}/health", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert health_of(response) == UNHEALTHY
    assert response.headers["Retry-After"] == "5"
    assert elapsed < UNHEALTHY_WITHIN_SECONDS


def assert_recovers(base_url: str) -> None:
    deadline = time.monotonic() + RECOVERS_WITHIN_SECONDS
    while True:
        response = httpx.get(f"{base_url}/health", timeout=RECOVERS_WITHIN_SECONDS)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (response.status_code, health_of(response)) == (200, HEALTHY)


def test_health_is_503_while_the_database_is_down_and_200_once_it_is_back(
    own_server: PgServer, authority: DevAuthority, host_factory: HostFactory
) -> None:
    ensure_running(own_server)
    host = host_factory(app_environment(own_server.url, authority))
    assert health_of(httpx.get(f"{host.base_url}/health", timeout=10)) == HEALTHY

    own_server.stop()
    assert_unhealthy_quickly(host.base_url)
    assert_unhealthy_quickly(host.base_url)

    own_server.start()
    assert_recovers(host.base_url)
    assert host.process.poll() is None


def test_health_is_503_when_the_database_was_never_reachable_then_200(
    own_server: PgServer, authority: DevAuthority, host_factory: HostFactory
) -> None:
    own_server.stop()
    host = host_factory(app_environment(own_server.url, authority))

    assert_unhealthy_quickly(host.base_url)

    own_server.start()
    assert_recovers(host.base_url)
    assert host.process.poll() is None


def postgres_processes(server: PgServer) -> list[int]:
    """The postmaster of `server` and every process it forked."""
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


def test_health_is_503_within_its_bound_when_the_database_hangs(
    own_server: PgServer, authority: DevAuthority, host_factory: HostFactory
) -> None:
    ensure_running(own_server)
    host = host_factory(app_environment(own_server.url, authority))
    assert health_of(httpx.get(f"{host.base_url}/health", timeout=10)) == HEALTHY

    frozen = postgres_processes(own_server)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert_unhealthy_quickly(host.base_url)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert_recovers(host.base_url)
