"""Section "coldstart": what a new worker process pays before and on its first request.

Imports are timed in fresh interpreters (median of several), interleaved so that both sides
see the same machine: `function_app` against the runtime dependencies it cannot avoid
(azure.functions, pydantic, asyncpg, jwt). The same child reports which optional packages got
imported; azure.identity, azure.monitor and opentelemetry must stay out unless configured.

The first request is timed in a fresh process too, right after its import of function_app:
it creates the pool, fetches the signing keys, verifies the token's signature and resolves
the caller, and is set against the same request once everything is warm.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from bench.common import PROJECT_ROOT, Bench, Table, median, ms, progress
from bench.harness import app_environment
from bench.load_data import SMALL, person

TARGET_RATIO = 1.25
DEPENDENCIES = "import azure.functions, pydantic, asyncpg, jwt"
OPTIONAL = ("azure.identity", "azure.monitor", "opentelemetry")
# Runs in a fresh interpreter: the import's own wall time, and which optional packages came along.
_CHILD = """
import json, sys, time
started = time.perf_counter()
{statement}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "optional": [name for name in {optional!r} if name in sys.modules]}}))
"""


def _import_once(statement: str) -> tuple[float, list[str]]:
    code = _CHILD.format(statement=statement, optional=OPTIONAL)
    # An empty environment of the app's settings: importing must not need any.
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("ENTRA_", "DB_", "DATABASE_", "APPLICATIONINSIGHTS_"))}
    output = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, check=True,
                            capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return float(result["seconds"]), list(result["optional"])


def _import_table(runs: int) -> Table:
    dependencies, app, optional = [], [], set()
    for _ in range(runs):
        dependencies.append(_import_once(DEPENDENCIES)[0])
        seconds, loaded = _import_once("import function_app")
        app.append(seconds)
        optional.update(loaded)
    # What function_app adds on top, with the dependencies already in the process.
    on_top = [_import_once(f"{DEPENDENCIES}\nstarted = time.perf_counter()\nimport function_app")[0]
              for _ in range(runs)]
    ratio = median(app) / median(dependencies)
    table = Table(f"Import cost in fresh processes (median of {runs}, interleaved)",
                  ["import", "median ms", "min ms", "max ms"])
    table.add("azure.functions, pydantic, asyncpg, jwt", ms(median(dependencies)), ms(min(dependencies)),
              ms(max(dependencies)))
    table.add("function_app", ms(median(app)), ms(min(app)), ms(max(app)))
    table.add("function_app after the dependencies", ms(median(on_top)), ms(min(on_top)), ms(max(on_top)))
    table.notes += [
        f"ratio function_app / dependencies: {ratio:.2f} (target <= {TARGET_RATIO}: "
        f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})",
        f"optional packages imported by function_app: {', '.join(sorted(optional)) or 'none'} "
        f"(checked: {', '.join(OPTIONAL)})",
        "added by function_app (self time, one -X importtime run): " + _added_by_app(),
    ]
    return table


def _added_by_app() -> str:
    """What importing function_app adds after the dependencies, by group: self times from
    `python -X importtime`, so a module is counted once however deep it sits."""
    output = subprocess.run([sys.executable, "-X", "importtime", "-c", f"{DEPENDENCIES}; import function_app"],
                            cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stderr
    entries = []
    for line in output.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            entries.append((int(parts[0]), parts[2]))
    after = max(index for index, (_, name) in enumerate(entries) if name == "jwt") + 1
    groups: dict[str, int] = {}
    for micros, name in entries[after:]:
        if name.startswith("shared."):
            group = ".".join(name.split(".")[:2])
        elif name.split(".")[0] in ("pydantic", "annotated_types", "zoneinfo", "importlib"):
            group = "pydantic's lazy imports (first model)"
        else:
            group = "other"
        groups[group] = groups.get(group, 0) + micros
    ranked = sorted(groups.items(), key=lambda item: -item[1])
    return ", ".join(f"{group} {micros / 1000:.0f} ms" for group, micros in ranked if micros >= 1000)


# The first request's child: function_app is imported (and timed) before anything of the bench.
_FIRST_REQUEST = """
import time
started = time.perf_counter()
import function_app
imported = time.perf_counter() - started
from bench.cold_start import first_request
first_request(imported)
"""


def first_request(imported: float) -> None:
    """In a fresh process that has just imported function_app: time the first request, then the
    same request warm, and print the figures as JSON."""
    print(json.dumps({"import": imported, **asyncio.run(_requests())}))


async def _requests() -> dict[str, float]:
    from bench.harness import InProcessApp
    from shared.db import database

    app = InProcessApp()
    request = app.request("registrations_get", token=os.environ["BENCH_TOKEN"],
                          route_params={"registration_id": os.environ["BENCH_REGISTRATION_ID"]})
    started = time.perf_counter()
    first = await app.call("registrations_get", request)
    first_seconds = time.perf_counter() - started
    assert first.status_code == 200, first.get_body()
    warm = []
    for _ in range(50):
        started = time.perf_counter()
        await app.call("registrations_get", request)
        warm.append(time.perf_counter() - started)
    await database.close()
    return {"first": first_seconds, "warm": statistics.median(warm)}


def _first_request_table(bench: Bench, runs: int) -> Table:
    caller = person(SMALL, 2)
    token = bench.authority.mint(oid=caller.oid, name=caller.name, email=caller.email)
    database_url = bench.small_database()
    registration_id = asyncio.run(_visible_registration(database_url))
    environment = {**os.environ, **app_environment(database_url, bench.authority),
                   "BENCH_TOKEN": token, "BENCH_REGISTRATION_ID": str(registration_id)}
    results = []
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", _FIRST_REQUEST], cwd=PROJECT_ROOT, env=environment,
                                check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    table = Table(f"First request in a fresh process vs the same request warm (median of {runs})",
                  ["step", "median ms", "x warm request"])
    warm = median([result["warm"] for result in results])
    for key, label in (("import", "import function_app (with its handlers)"),
                       ("first", "first GET /registrations/{id}: pool, keys, RSA check, caller, statement"),
                       ("warm", "warm GET /registrations/{id} (median of 50)")):
        value = median([result[key] for result in results])
        table.add(label, ms(value), value / warm)
    return table


async def _visible_registration(url: str) -> object:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(
            "SELECT registration_id FROM registrations WHERE status = 'Approved' AND deleted_at IS NULL LIMIT 1")
    finally:
        await connection.close()


def run(bench: Bench) -> list[Table]:
    runs = 3 if bench.quick else 9
    progress("coldstart: imports")
    imports = _import_table(runs)
    progress("coldstart: first request")
    return [imports, _first_request_table(bench, 3 if bench.quick else 5)]
