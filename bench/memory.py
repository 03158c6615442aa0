"""Section "memory": does a worker's memory stay put under many distinct callers?

100,000 in-process requests at concurrency 16 from 10,000 distinct people, each with their own
token, cycling through them (every token is first seen in the first 10,000 requests): each
new token costs an RSA check and a users upsert, and fills the token cache, the user-row cache
and asyncpg's statement caches. Resident memory (psutil) after the first 10,000 requests is
the reference; every later checkpoint must stay within 10 % of it, which it can only do if
every cache is bounded. The caches' sizes are printed beside it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import psutil

from bench.common import CONCURRENCY, Bench, Table, progress
from bench.harness import InProcessApp, app_environment, configure
from shared.auth import tokens
from shared.db import database
from shared.services import users
from tools.devhost import InvocationContext

TOLERANCE = 0.10
MIB = 1024 * 1024


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def _run(bench: Bench, requests: int, people: int) -> Table:
    app = InProcessApp()
    progress(f"memory: minting {people:,} tokens")
    signed = [bench.authority.mint(oid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"memory-bench:{index}")),
                                   name=f"Memory Bench {index}", email=f"memory.{index}@example.com")
              for index in range(people)]
    # Prepare every request up front: building them is the worker's job, not the handler's.
    reader = app.request("registrations_list", token=signed[0])
    listing = json.loads((await app.call("registrations_list", reader)).get_body())
    registration_id = listing["results"][0]["registration_id"]
    shapes: tuple[tuple[str, dict[str, str]], ...] = (
        ("users_get_me", {}), ("registrations_get", {"registration_id": registration_id}), ("registrations_list", {}))
    prepared = [(name, app.request(name, token=token, route_params=route_params))
                for token, (name, route_params) in zip(signed, itertools.cycle(shapes), strict=False)]
    contexts = {name: InvocationContext(name) for name, _ in shapes}
    counter = itertools.count()
    failures = 0

    async def call() -> None:
        nonlocal failures
        name, request = prepared[next(counter) % len(prepared)]
        response = await app.call(name, request, contexts[name])
        failures += response.status_code != 200

    checkpoint = requests // 10
    table = Table(f"Memory over {requests:,} requests from {people:,} distinct callers, concurrency {CONCURRENCY}",
                  ["requests", "RSS MiB", f"vs first {checkpoint:,}", "token cache", "user cache", "python objects",
                   "req/s"])
    reference = rss = 0
    done = 0
    while done < requests:
        started = time.perf_counter()
        run = await _drive_count(call, checkpoint)
        done += run
        rss = _rss()
        reference = reference or rss
        table.add(f"{done:,}", rss / MIB, f"{100 * (rss - reference) / reference:+.1f} %", len(tokens._validated),
                  len(users._recent), f"{sys.getallocatedblocks():,}", run / (time.perf_counter() - started))
    await database.close()
    growth = (rss - reference) / reference
    table.notes += [
        f"RSS at the end vs after the first {checkpoint:,}: {100 * growth:+.1f} % (target within "
        f"{100 * TOLERANCE:.0f} %: {'met' if abs(growth) <= TOLERANCE else 'MISSED'})",
        f"caches are bounded at {tokens.CACHE_SIZE:,} tokens and {users.RECENT_SIZE:,} rows; "
        f"non-200 answers: {failures}",
    ]
    return table


async def _drive_count(call: Callable[[], Awaitable[None]], count: int) -> int:
    """Make exactly `count` calls from the bench's usual number of concurrent workers."""
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            await call()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count


def run(bench: Bench) -> list[Table]:
    requests, people = (20_000, 2_000) if bench.quick else (100_000, 10_000)
    configure(app_environment(bench.small_database(), bench.authority))
    return [asyncio.run(_run(bench, requests, people))]
