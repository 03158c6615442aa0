"""A soak: minutes of steady, mixed traffic through a dev host, with figures for every minute.

    python -m bench.soak [--minutes 10] [--concurrency 16]

It starts what it needs and removes it afterwards: a PostgreSQL in a throw-away folder on a
free port, a local sign-in authority and one dev host, all on 127.0.0.1. `--concurrency`
requests are in flight at any time, a mix of what the frontend, administrators and MCP clients
send: lists, reads, submissions, deletions, edits, decisions, audit trails, the feed and health
checks. Deletions keep pace with submissions, so the live data stays the same size and a
change in latency from the first minute to the last is the app's, not the workload's.
Every minute it prints requests per second, p50 and p99 latency, 4xx and 5xx counts and the
dev host's resident memory. Exit status 1 if any request got a 5xx or no answer at all.

Decisions race with one another on purpose (two administrators may pick the same Pending
registration), so 409 is an expected answer, as is the odd 404 for a registration deleted while
a read of it was on its way; both are counted with the 4xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from shared.config import DatabaseSettings
from tools.authority import DevAuthority
from tools.migrate import migrate
from tools.pgserver import PgServer, free_port, scratch_folder

PROJECT_ROOT = Path(__file__).resolve().parent.parent
USERS = 20
ADMINS = 2
SEED_REGISTRATIONS = 40
REQUEST_TIMEOUT_SECONDS = 30.0
# Relative weights of the actions in the mix. Deletions balance creations, so the live data (and
# so the work a list or a count does) stays the same size from the first minute to the last.
MIX = {"list": 30, "my": 10, "get": 20, "feed": 10, "create": 10, "delete": 10, "update": 5, "decide": 5,
       "audit": 5, "health": 5}


@dataclass
class Minute:
    """What finished within one minute of the soak."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def record(self, latency: float, status: int) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1

    def count(self, low: int, high: int) -> int:
        return sum(number for status, number in self.statuses.items() if low <= status < high)


@dataclass
class Registration:
    registration_id: str
    owner: int


class Traffic:
    """The callers, what they have submitted, and one request of the mix at a time."""

    def __init__(self, client: httpx.AsyncClient, authority: DevAuthority, lifetime: int) -> None:
        self.client = client
        self.users = [self._headers(authority, f"Soak User {n}", admin=False, lifetime=lifetime) for n in range(USERS)]
        self.admins = [self._headers(authority, f"Soak Admin {n}", admin=True, lifetime=lifetime)
                       for n in range(ADMINS)]
        self.registrations: list[Registration] = []
        self.random = random.Random(7)
        self.actions: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "list": self.list, "my": self.my, "get": self.get, "feed": self.feed, "create": self.create,
            "delete": self.delete, "update": self.update, "decide": self.decide, "audit": self.audit,
            "health": self.health,
        }

    @staticmethod
    def _headers(authority: DevAuthority, name: str, *, admin: bool, lifetime: int) -> dict[str, str]:
        oid = str(uuid.uuid4())
        token = authority.mint(oid=oid, name=name, email=f"soak.{oid[:8]}@example.com", admin=admin, lifetime=lifetime)
        return {"Authorization": f"Bearer {token}"}

    def pick(self) -> Callable[[], Awaitable[httpx.Response]]:
        name = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        return self.actions[name]

    def _user(self) -> tuple[int, dict[str, str]]:
        index = self.random.randrange(USERS)
        return index, self.users[index]

    async def list(self) -> httpx.Response:
        status = self.random.choice([None, "Approved", "Pending"])
        params = {"limit": "20"} if status is None else {"limit": "20", "status": status}
        return await self.client.get("/registrations", params=params, headers=self._user()[1])

    async def my(self) -> httpx.Response:
        return await self.client.get("/registrations/my", headers=self._user()[1])

    async def get(self) -> httpx.Response:
        registration = self.random.choice(self.registrations)
        return await self.client.get(f"/registrations/{registration.registration_id}",
                                     headers=self.users[registration.owner])

    async def feed(self) -> httpx.Response:
        return await self.client.get("/v0.1/servers", params={"limit": "30"})

    async def create(self) -> httpx.Response:
        owner, headers = self._user()
        host = f"soak-{uuid.uuid4().hex[:12]}.example.com"
        response = await self.client.post("/registrations", headers=headers, json={
            "endpoint_url": f"https://{host}/mcp", "endpoint_name": f"Soak {host[5:13]}",
            "owner_contact": "soak-owner@example.com", "available_tools": ["alpha", "beta"],
            "description": "Submitted by the soak.",
        })
        if response.status_code == 201:
            self.registrations.append(Registration(response.json()["registration_id"], owner))
        return response

    async def delete(self) -> httpx.Response:
        """The oldest live registration goes; below the seeded number a creation takes its turn."""
        if len(self.registrations) <= SEED_REGISTRATIONS:
            return await self.create()
        registration = self.registrations.pop(0)
        return await self.client.delete(f"/registrations/{registration.registration_id}",
                                        headers=self.random.choice(self.admins))

    async def update(self) -> httpx.Response:
        registration = self.random.choice(self.registrations)
        return await self.client.patch(f"/registrations/{registration.registration_id}",
                                       headers=self.users[registration.owner],
                                       json={"description": f"Edited at {time.time():.3f}."})

    async def decide(self) -> httpx.Response:
        registration = self.random.choice(self.registrations)
        return await self.client.patch(f"/registrations/{registration.registration_id}/status",
                                       headers=self.random.choice(self.admins),
                                       json={"status": self.random.choice(["Approved", "Rejected"])})

    async def audit(self) -> httpx.Response:
        registration = self.random.choice(self.registrations)
        return await self.client.get(f"/registrations/{registration.registration_id}/audit",
                                     headers=self.random.choice(self.admins))

    async def health(self) -> httpx.Response:
        return await self.client.get("/health")


@dataclass
class Soak:
    minutes: int
    concurrency: int
    host: psutil.Process
    traffic: Traffic
    current: Minute = field(default_factory=Minute)
    totals: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    rss: list[float] = field(default_factory=list)

    async def worker(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            send = self.traffic.pick()
            started = time.perf_counter()
            try:
                status = (await send()).status_code
            except httpx.HTTPError as error:
                print(f"soak: no answer: {type(error).__name__}: {error}", flush=True)
                self.failures += 1
                status = 0
            self.current.record(time.perf_counter() - started, status)

    async def report_every_minute(self, started: float) -> None:
        print(f"{'minute':>6} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'4xx':>5} {'5xx':>5} "
              f"{'no answer':>9} {'rss MiB':>8}", flush=True)
        for number in range(1, self.minutes + 1):
            await asyncio.sleep(started + 60 * number - time.monotonic())
            minute, self.current = self.current, Minute()
            self.totals.update(minute.statuses)
            self.rss.append(self.host.memory_info().rss / 2**20)
            latencies = sorted(minute.latencies) or [0.0]
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            print(f"{number:>6} {len(minute.latencies):>8} {len(minute.latencies) / 60:>7.1f} "
                  f"{statistics.median(latencies) * 1000:>7.1f} {p99 * 1000:>7.1f} {minute.count(400, 500):>5} "
                  f"{minute.count(500, 600):>5} {minute.statuses[0]:>9} {self.rss[-1]:>8.1f}", flush=True)

    async def run(self) -> None:
        started = time.monotonic()
        deadline = started + 60 * self.minutes
        workers = [asyncio.create_task(self.worker(deadline)) for _ in range(self.concurrency)]
        await self.report_every_minute(started)
        await asyncio.gather(*workers)

    def summary(self) -> str:
        server_errors = sum(number for status, number in self.totals.items() if status >= 500)
        answers = ", ".join(f"{status}: {number}" for status, number in sorted(self.totals.items()))
        growth = self.rss[-1] - self.rss[0] if self.rss else 0.0
        return (f"soak: {sum(self.totals.values())} requests in {self.minutes} min ({answers}); "
                f"{server_errors} with 5xx, {self.failures} without an answer; "
                f"dev host RSS {self.rss[0]:.1f} -> {self.rss[-1]:.1f} MiB ({growth:+.1f})")


async def create_database(server: PgServer) -> str:
    connection = await asyncpg.connect(server.url)
    try:
        await connection.execute('CREATE DATABASE "registry_soak"')
    finally:
        await connection.close()
    url = server.database_url("registry_soak")
    await migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True)
    return url


def start_host(database_url: str, authority: DevAuthority, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("ENTRA_", "DB_", "REGISTRY_", "CORS_", "APPLICATIONINSIGHTS_"))}
    environment.update({
        "DATABASE_URL": database_url, "ENTRA_TENANT_ID": authority.tenant_id,
        "ENTRA_API_CLIENT_ID": authority.client_id, "ENTRA_AUTHORITY": authority.url, "LOG_LEVEL": "WARNING",
        # Twenty people submit for minutes: the pending cap would turn the mix into 429s.
        "MAX_PENDING_PER_USER": "1000000",
    })
    with (folder / "devhost.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tools.devhost", "--port", str(port)], cwd=PROJECT_ROOT,
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the dev host did not come up:\n{(folder / 'devhost.log').read_text(errors='replace')}")


async def soak(minutes: int, concurrency: int, authority: DevAuthority, process: subprocess.Popen[bytes],
               base_url: str) -> Soak:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:
        # Tokens outlive the soak by an hour, so none expires mid-run.
        traffic = Traffic(client, authority, lifetime=60 * minutes + 3600)
        for _ in range(SEED_REGISTRATIONS):
            created = await traffic.create()
            if created.status_code != 201:
                raise RuntimeError(f"seeding failed: {created.status_code} {created.text}")
        run = Soak(minutes, concurrency, psutil.Process(process.pid), traffic)
        await run.run()
        return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description="Minutes of steady, mixed traffic through a dev host.")
    parser.add_argument("--minutes", type=int, default=10, help="how long to keep the traffic up (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    args = parser.parse_args(argv)
    if args.minutes < 1 or args.concurrency < 1:
        parser.error("--minutes and --concurrency must be at least 1")

    folder = scratch_folder("registry-soak-")
    server = PgServer(folder / "data", free_port())
    authority = DevAuthority()
    process: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        authority.start()
        process, base_url = start_host(asyncio.run(create_database(server)), authority, folder)
        print(f"soak: {args.minutes} min at {args.concurrency} requests in flight against {base_url}", flush=True)
        result = asyncio.run(soak(args.minutes, args.concurrency, authority, process, base_url))
        print(result.summary(), flush=True)
        broken = any(status >= 500 for status in result.totals) or result.failures > 0
        if broken:
            print((folder / "devhost.log").read_text(errors="replace")[-5000:], file=sys.stderr)
        return 1 if broken else 0
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        authority.stop()
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
