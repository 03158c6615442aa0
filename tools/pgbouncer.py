"""PgBouncer in transaction mode in front of a PostgreSQL, from Debian's `pgbouncer` package.

    python -m tools.pgbouncer --server-port 54329 [--port 6432]   # run until Ctrl-C

It listens on 127.0.0.1 only, sends every database name to the one server, and signs its users
in with SCRAM against the passwords it is given (which it also uses towards the server), so it
opens no door the server keeps shut. This is the pool mode
Azure's built-in PgBouncer uses, so the app is tested as it runs there with DB_PGBOUNCER=true.
When the program is missing it is installed with apt-get, which needs root; PgBouncer refuses
to run as root, so then it runs as the unprivileged user tools.pgserver runs PostgreSQL as.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tools.pgserver import free_port, service_user

DEBIAN_BINARY = Path("/usr/sbin/pgbouncer")
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class PgBouncerUnavailable(Exception):
    """PgBouncer cannot run on this machine; the message says what to do."""


def ensure_installed() -> Path:
    """The pgbouncer program, installed from the Debian archive first when it is missing."""
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PgBouncerUnavailable("pgbouncer is not installed and cannot be installed here (that needs root and "
                                   "apt-get); install it with `apt-get install pgbouncer` or put it on PATH")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "--yes", "--no-install-recommends", "pgbouncer"]
    if subprocess.run(install, env=environment, capture_output=True, timeout=600).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=environment, capture_output=True, timeout=600)
        result = subprocess.run(install, env=environment, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise PgBouncerUnavailable(f"apt-get could not install pgbouncer: {result.stderr.strip()}")
    return DEBIAN_BINARY


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PgBouncer:
    folder: Path
    server_host: str
    server_port: int
    # (user, password) pairs; the file PgBouncer reads them from is 0600.
    users: tuple[tuple[str, str], ...] = ()
    # Server connections per database and user: enough for every dev host of a test session.
    pool_size: int = 20
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str, user: str = "postgres") -> str:
        password = dict(self.users)[user]
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.folder / "pgbouncer.log"

    def config(self) -> str:
        return "\n".join([
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            f"auth_file = {self.folder / 'users.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 1000",
            # Sent by some drivers at start-up; PgBouncer refuses unknown ones unless told to ignore them.
            "ignore_startup_parameters = extra_float_digits,options",
            "",
        ])

    def start(self) -> None:
        binary = ensure_installed()
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.folder / "users.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as users:
            users.write("".join(f'"{user}" "{password}"\n' for user, password in self.users))
        config = self.folder / "pgbouncer.ini"
        config.write_text(self.config())
        account = service_user()
        if account is not None:
            for path in (self.folder, config, self.folder / "users.txt"):
                os.chown(path, account.pw_uid, account.pw_gid)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), str(config)], stdout=log, stderr=subprocess.STDOUT,
                user=account.pw_uid if account else None, group=account.pw_gid if account else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PgBouncerUnavailable(f"pgbouncer did not start: {self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is PgBouncer's safe shutdown: it lets the transactions in flight finish.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.pgbouncer",
                                     description="Run PgBouncer (transaction pooling) in front of a PostgreSQL.")
    parser.add_argument("--server-host", default="127.0.0.1", help="PostgreSQL host (default 127.0.0.1)")
    parser.add_argument("--server-port", type=int, default=54329, help="PostgreSQL port (default 54329)")
    parser.add_argument("--port", type=int, default=6432, help="port to listen on, on 127.0.0.1 (default 6432)")
    parser.add_argument("--user", action="append", help="a user to let through (default postgres); repeatable")
    parser.add_argument("--password-file", type=Path, default=Path(".data/pg.password"),
                        help="the users' password (default: the one `make run`'s PostgreSQL keeps)")
    args = parser.parse_args()
    password = args.password_file.read_text().strip()
    folder = Path(tempfile.mkdtemp(prefix="registry-pgbouncer-"))
    users = tuple((user, password) for user in args.user or ["postgres"])
    bouncer = PgBouncer(folder, args.server_host, args.server_port, users, port=args.port)
    try:
        with bouncer:
            print(f"pgbouncer: postgresql://<user>@127.0.0.1:{bouncer.port}/<database> "
                  f"-> {args.server_host}:{args.server_port}", flush=True)
            stopped = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopped.set())
            signal.signal(signal.SIGINT, lambda *_: stopped.set())
            stopped.wait()
    except PgBouncerUnavailable as error:
        raise SystemExit(f"pgbouncer: {error}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
