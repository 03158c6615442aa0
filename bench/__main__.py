"""Run the benchmarks and print their tables: `python -m bench [--only NAME ...] [--quick]`.

Sections run in this order; each prints its tables when it finishes:
  overhead   function handlers vs raw asyncpg on the same pool, at concurrency 16, and a profile
  scale      plans and latencies at a million registrations, and what `total` costs
  coldstart  import cost of function_app vs its dependencies; first request vs a warm one
  memory     100,000 requests with 10,000 distinct tokens and people: is every cache bounded
  http       the dev host over real HTTP, every endpoint, for the record
  probe      one worker re-probing 1,000 registrations on loopback MCP servers, three rounds
  snapshot   the feed's in-memory snapshot at 1,000/10,000/100,000 servers, and answers/s vs the database

PostgreSQL runs from .data/bench-pg (started here unless already running on BENCH_PG_PORT,
default 54339); the million-row database is loaded on the first run and kept. The soak
(`python -m bench.soak`) is a separate, minutes-long run and not part of this table.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import time
from collections.abc import Callable, Sequence

from bench.common import Bench, Table, progress, start_server
from tools.authority import DevAuthority

SECTIONS = ("overhead", "scale", "coldstart", "memory", "http", "probe", "snapshot")
_MODULES = {"overhead": "bench.overhead", "scale": "bench.scale", "coldstart": "bench.cold_start",
            "memory": "bench.memory", "http": "bench.http_load",
            "probe": "bench.probe", "snapshot": "bench.feed_snapshot"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks and print their tables.")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="NAME",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="shorter runs and fewer samples: a smoke test")
    args = parser.parse_args(argv)
    # The app logs every 4xx and pool event at INFO; a benchmark wants its tables, not those.
    logging.basicConfig(level=logging.WARNING)

    chosen = [name for name in SECTIONS if not args.only or name in args.only]
    server, started = start_server()
    authority = DevAuthority()
    authority.start()
    bench = Bench(quick=args.quick, server=server, authority=authority)
    began = time.perf_counter()
    try:
        for name in chosen:
            section: Callable[[Bench], list[Table]] = importlib.import_module(_MODULES[name]).run
            progress(f"section {name} ...")
            section_began = time.perf_counter()
            tables = section(bench)
            print()
            for table in tables:
                print(table.render(), end="\n\n", flush=True)
            progress(f"section {name} took {time.perf_counter() - section_began:.0f} s")
    finally:
        authority.stop()
        if started:
            server.stop()
    progress(f"all sections took {time.perf_counter() - began:.0f} s ({'quick' if args.quick else 'full'} run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
