"""Section "http": every endpoint through the dev host over real HTTP, for the record.

`python -m tools.devhost` serves the app on loopback against the small bench database; an
aiohttp client with 16 connections (16 workers) drives one endpoint at a time. The load
generator shares the machine's two cores with the host and PostgreSQL, so these figures say
what one dev host process does here, not what Azure does. Writes run in an order that keeps
them valid: registrations created first are then edited, decided and deleted.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import CONCURRENCY, PROJECT_ROOT, Bench, Table, ms, percentile, progress
from bench.harness import app_environment
from bench.load_data import SMALL, person
from tools.pgserver import free_port

STARTUP_SECONDS = 30.0


@dataclass
class Target:
    label: str
    method: str
    # The next (path, JSON body) to send, or None when there is nothing left to send.
    next_request: Callable[[], tuple[str, Any] | None]
    token: str | None
    expected: int


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    unexpected: int = 0
    elapsed: float = 0.0
    bodies: list[Any] = field(default_factory=list)


def _start_host(bench: Bench, database_url: str, **overrides: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {**os.environ, **app_environment(database_url, bench.authority, **overrides)}
    process = subprocess.Popen([sys.executable, "-m", "tools.devhost", "--port", str(port)], cwd=PROJECT_ROOT,
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}/api"


async def _wait_until_up(session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the dev host exited with {process.returncode}")
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the dev host did not answer within 30 s")


async def _drive(session: aiohttp.ClientSession, base: str, target: Target, seconds: float,
                 keep_bodies: bool = False, concurrency: int = CONCURRENCY) -> Result:
    result = Result()
    deadline = time.perf_counter() + seconds
    headers = {} if target.token is None else {"Authorization": f"Bearer {target.token}"}

    async def worker() -> None:
        while time.perf_counter() < deadline:
            request = target.next_request()
            if request is None:
                return
            path, body = request
            started = time.perf_counter()
            async with session.request(target.method, f"{base}/{path}", json=body, headers=headers) as response:
                payload = await response.read()
            result.latencies.append(time.perf_counter() - started)
            if response.status != target.expected:
                result.unexpected += 1
            elif keep_bodies:
                result.bodies.append(payload)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


def _cycle(requests: list[tuple[str, Any]]) -> Callable[[], tuple[str, Any]]:
    iterator = itertools.cycle(requests)
    return lambda: next(iterator)


def _each_once(paths: Iterator[tuple[str, Any]]) -> Callable[[], tuple[str, Any] | None]:
    return lambda: next(paths, None)


async def _run(bench: Bench, database_url: str, seconds: float) -> Table:
    import json

    user, admin = person(SMALL, 3), person(SMALL, SMALL.users - 1)
    user_token = bench.authority.mint(oid=user.oid, name=user.name, email=user.email)
    admin_token = bench.authority.mint(oid=admin.oid, name=admin.name, email=admin.email, admin=True)
    process, base = _start_host(bench, database_url)
    table = Table(f"Through the dev host over HTTP: aiohttp client, {CONCURRENCY} connections, "
                  f"{seconds:g} s per endpoint", ["endpoint", "req/s", "p50 ms", "p99 ms", "requests", "unexpected"])
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_until_up(session, base, process)
            me = json.loads(await (await session.get(f"{base}/users/me",
                                                     headers={"Authorization": f"Bearer {user_token}"})).read())
            listing = json.loads(await (await session.get(
                f"{base}/registrations", headers={"Authorization": f"Bearer {user_token}"})).read())
            visible = listing["results"][0]
            numbers = itertools.count()
            created: list[str] = []

            def creation() -> tuple[str, Any]:
                number = next(numbers)
                return "registrations", {"endpoint_url": f"https://http-{number}-{time.time_ns()}.bench.example.com/mcp",
                                         "endpoint_name": f"HTTP Bench {number}", "owner_contact": "bench@example.com",
                                         "available_tools": ["lookup"]}

            async def measure(target: Target, keep_bodies: bool = False) -> Result:
                progress(f"http: {target.label}")
                result = await _drive(session, base, target, seconds, keep_bodies)
                count = len(result.latencies)
                table.add(target.label, count / result.elapsed if result.elapsed else 0.0,
                          ms(percentile(result.latencies, 0.5)) if count else "-",
                          ms(percentile(result.latencies, 0.99)) if count else "-", count, result.unexpected)
                return result

            server = visible["server_name"].replace("/", "%2F")
            reads = [
                Target("GET /health", "GET", _cycle([("health", None)]), None, 200),
                Target("POST /users", "POST", _cycle([("users", None)]), user_token, 200),
                Target("GET /users/me", "GET", _cycle([("users/me", None)]), user_token, 200),
                Target("GET /users/{id} (admin)", "GET", _cycle([(f"users/{me['user_id']}", None)]), admin_token, 200),
                Target("GET /registrations", "GET", _cycle([("registrations", None)]), user_token, 200),
                Target("GET /registrations?search=", "GET", _cycle([("registrations?search=ledger", None)]),
                       user_token, 200),
                Target("GET /registrations/my", "GET", _cycle([("registrations/my", None)]), user_token, 200),
                Target("GET /registrations/{id}", "GET", _cycle([(f"registrations/{visible['registration_id']}",
                                                                  None)]), user_token, 200),
                Target("GET /v0.1/servers", "GET", _cycle([("v0.1/servers", None)]), None, 200),
                Target("GET /v0.1/servers/{name}/versions", "GET", _cycle([(f"v0.1/servers/{server}/versions",
                                                                            None)]), None, 200),
                Target("GET /v0.1/servers/{name}/versions/latest", "GET",
                       _cycle([(f"v0.1/servers/{server}/versions/latest", None)]), None, 200),
                Target("GET /openapi.json", "GET", _cycle([("openapi.json", None)]), None, 200),
                Target("GET /docs", "GET", _cycle([("docs", None)]), None, 200),
            ]
            for target in reads:
                await measure(target)
            made = await measure(Target("POST /registrations", "POST", creation, user_token, 201), keep_bodies=True)
            created = [json.loads(body)["registration_id"] for body in made.bodies]
            own = [(f"registrations/{registration_id}", None) for registration_id in created[:CONCURRENCY]]
            await measure(Target("GET /registrations/{id}/audit", "GET", _cycle(own), user_token, 200))
            await measure(Target("PATCH /registrations/{id}", "PATCH", _cycle(
                [(path, {"description": "Edited by the HTTP benchmark."}) for path, _ in own]), user_token, 200))
            decisions = ((f"registrations/{registration_id}/status", {"status": "Approved"})
                         for registration_id in created)
            await measure(Target("PATCH /registrations/{id}/status (admin)", "PATCH", _each_once(decisions),
                                 admin_token, 200))
            deletions = ((f"registrations/{registration_id}", None) for registration_id in created)
            await measure(Target("DELETE /registrations/{id} (admin)", "DELETE", _each_once(deletions),
                                 admin_token, 204))
    finally:
        process.terminate()
        process.wait(10)
    table.notes += [
        "status and delete run once per registration the POST row created, so they may stop early",
        "the audit and PATCH rows cycle over 16 of those registrations, one per connection",
    ]
    return table


# Concurrent requests per worker measured for infra/main.bicep's `httpPerInstanceConcurrency`: on
# Flex Consumption a Python app gets 1 by default (Microsoft Learn, "Concurrency in Azure
# Functions", https://learn.microsoft.com/azure/azure-functions/functions-concurrency).
PER_WORKER_CONCURRENCY = (1, 4, 16)


async def _run_concurrency(bench: Bench, database_url: str, seconds: float) -> Table:
    """One worker (one dev host process, one pool) at 1, 4 and 16 requests in flight: what more
    concurrency per instance buys in throughput and costs in tail latency."""
    import json

    user = person(SMALL, 3)
    user_token = bench.authority.mint(oid=user.oid, name=user.name, email=user.email)
    # The pool as large as the most requests in flight, so the pool is not what is measured.
    process, base = _start_host(bench, database_url, DB_POOL_MAX_SIZE=str(max(PER_WORKER_CONCURRENCY)))
    table = Table(f"One worker at 1, 4 and 16 concurrent requests: dev host over HTTP, {seconds:g} s each",
                  ["endpoint", "concurrency", "req/s", "p50 ms", "p99 ms", "requests", "unexpected"])
    connector = aiohttp.TCPConnector(limit=max(PER_WORKER_CONCURRENCY))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_until_up(session, base, process)
            listing = json.loads(await (await session.get(
                f"{base}/registrations", headers={"Authorization": f"Bearer {user_token}"})).read())
            visible = listing["results"][0]
            targets = [
                Target("GET /registrations/{id}", "GET",
                       _cycle([(f"registrations/{visible['registration_id']}", None)]), user_token, 200),
                Target("GET /registrations", "GET", _cycle([("registrations", None)]), user_token, 200),
                Target("GET /v0.1/servers", "GET", _cycle([("v0.1/servers", None)]), None, 200),
            ]
            for target in targets:
                for concurrency in PER_WORKER_CONCURRENCY:
                    progress(f"http: {target.label} at {concurrency}")
                    result = await _drive(session, base, target, seconds, concurrency=concurrency)
                    count = len(result.latencies)
                    table.add(target.label, concurrency, count / result.elapsed if result.elapsed else 0.0,
                              ms(percentile(result.latencies, 0.5)) if count else "-",
                              ms(percentile(result.latencies, 0.99)) if count else "-", count, result.unexpected)
    finally:
        process.terminate()
        process.wait(10)
    table.notes += ["client, dev host and PostgreSQL share the machine's cores; read the ratios between rows"]
    return table


def run(bench: Bench) -> list[Table]:
    seconds = 1.5 if bench.quick else 3.0
    return [asyncio.run(_run_concurrency(bench, bench.small_database(), seconds)),
            asyncio.run(_run(bench, bench.small_database(), seconds))]
