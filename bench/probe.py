"""Section "probe": one worker re-probing 1,000 registrations, as the timer's round does.

The endpoints are real MCP servers built with the official SDK (streamable-http and sse) and a
few misbehaving ones (a plain page, one that wants a token, a redirect), served on loopback by a
separate process so that the worker's time and memory are its own. Each registration has its own
`<n>.example.com` name, mapped to 127.0.0.1 by an injected resolver: no name is looked up. The
worker probes with bounded concurrency; three rounds show whether its memory stays flat.

    python -m bench.probe [--registrations 1000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import psutil

from bench.common import PROJECT_ROOT, Bench, Table, progress

ROUND_SECONDS = 15 * 60
# How the 1,000 endpoints are spread over the fixture servers: mostly honest ones.
MIX = (("honest", "/mcp", "streamable-http", 6), ("legacy", "/sse", "sse", 2), ("page", "/", "streamable-http", 1),
       ("auth", "/mcp", "streamable-http", 1))
_SERVE = "from bench.probe import serve; serve()"


def serve() -> None:
    """In the fixture process: start the servers, print their ports, serve until stdin closes."""
    from tests import mcp_fixtures as fx

    servers = fx.LoopbackServers()
    auth_port = servers.reserve("auth")
    servers.add("honest", fx.streamable(fx.weather_server()))
    servers.add("legacy", fx.sse(fx.weather_server()))
    servers.add("page", fx.web_page)
    servers.add("auth", fx.with_auth("locked", f"http://auth.example.com:{auth_port}/mcp"))
    servers.start()
    print(json.dumps({name: servers.port(name) for name in servers.served}), flush=True)
    sys.stdin.read()
    servers.stop()


def _targets(ports: dict[str, int], count: int) -> list[tuple[str, str, str]]:
    """(url, transport, fixture) for `count` registrations, each under its own host name."""
    weighted = [entry for entry in MIX for _ in range(entry[3])]
    targets = []
    for index in range(count):
        name, path, transport, _ = weighted[index % len(weighted)]
        targets.append((f"http://r{index}.{name}.example.com:{ports[name]}{path}", transport, name))
    return targets


async def _round(targets: list[tuple[str, str, str]], concurrency: int) -> tuple[float, list[float], Counter[str]]:
    from shared.probe import probe
    from tests.mcp_fixtures import Resolver

    resolver = Resolver()
    allowed = (ipaddress.ip_network("127.0.0.0/8"),)
    durations: list[float] = []
    outcomes: Counter[str] = Counter()
    queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    for target in targets:
        queue.put_nowait(target)

    async def worker() -> None:
        while not queue.empty():
            url, transport, _ = queue.get_nowait()
            started = time.perf_counter()
            result = await probe(url, transport, allowed_networks=allowed, allow_http=True,  # type: ignore[arg-type]
                                 resolver=resolver)
            durations.append(time.perf_counter() - started)
            outcomes[result.outcome] += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, durations, outcomes


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def measure(registrations: int, concurrency: int, rounds: int) -> Table:
    fixtures = subprocess.Popen([sys.executable, "-c", _SERVE], cwd=PROJECT_ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert fixtures.stdout is not None
        ports: dict[str, int] = json.loads(fixtures.stdout.readline())
        targets = _targets(ports, registrations)
        table = Table(f"{registrations} registrations re-probed by one worker, concurrency {concurrency}",
                      ["round", "seconds", "probes/s", "p50 ms", "p95 ms", "max ms", "RSS MiB", "outcomes"])
        process = psutil.Process()
        for number in range(1, rounds + 1):
            progress(f"probe: round {number}")
            seconds, durations, outcomes = asyncio.run(_round(targets, concurrency))
            table.add(number, f"{seconds:.1f}", f"{registrations / seconds:.0f}",
                      f"{statistics.median(durations) * 1000:.0f}", f"{_p95(durations) * 1000:.0f}",
                      f"{max(durations) * 1000:.0f}", f"{process.memory_info().rss / 2**20:.1f}",
                      ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())))
        table.notes.append(f"a 15-minute round fits {ROUND_SECONDS} s x the probes/s above; the fixtures run in "
                           "their own process on the same 2 cores")
        return table
    finally:
        if fixtures.stdin is not None:
            fixtures.stdin.close()
        fixtures.wait(30)


def run(bench: Bench) -> list[Table]:
    return [measure(200 if bench.quick else 1000, 16, 3)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args: Any = parser.parse_args(argv)
    print(measure(args.registrations, args.concurrency, args.rounds).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
