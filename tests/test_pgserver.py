"""The development PostgreSQL: password (SCRAM) sign-in only, a password no other account can
read, and no folder's mode changed that it did not create."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import run
from tools.pgserver import SERVICE_USER, PgServer, PgServerError, binaries, free_port, scratch_folder, service_user

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make another OS account")


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    folder = scratch_folder("registry-pg-safety-")
    server = PgServer(folder / "data", free_port())
    server.start()
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


async def _select_one(url: str) -> int:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        value: int = await connection.fetchval("SELECT 1")
        return value
    finally:
        await connection.close()


def without_password(server: PgServer) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/postgres"


def test_the_password_file_is_private_and_only_scram_is_configured(server: PgServer) -> None:
    info = server.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    assert len(server.password) >= 40
    rules = [line.split() for line in (server.data_dir / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert {rule[-1] for rule in rules} == {"scram-sha-256"}


def test_a_connection_without_the_password_is_refused(server: PgServer) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(_select_one(without_password(server)))
    wrong = server.url.replace(server.password, "not-the-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(_select_one(wrong))
    assert run(_select_one(server.url)) == 1


@pytest.fixture
def stranger() -> Iterator[pwd.struct_passwd]:
    """A throw-away local OS account, as any other user of the machine would be."""
    name = f"regprobe{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def as_account(account: pwd.struct_passwd, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=60, user=account.pw_uid, group=account.pw_gid,
        extra_groups=[], env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, cwd="/",
    )


@as_root
def test_another_local_account_cannot_connect_nor_read_the_password(
    server: PgServer, stranger: pwd.struct_passwd
) -> None:
    psql = str(binaries() / "psql")
    over_tcp = as_account(stranger, psql, "-w", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                          "-d", "postgres", "-c", "SELECT 1")
    assert over_tcp.returncode != 0
    assert "no password supplied" in over_tcp.stderr, over_tcp.stderr
    over_socket = as_account(stranger, psql, "-w", "-h", str(server.data_dir), "-p", str(server.port),
                             "-U", "postgres", "-d", "postgres", "-c", "SELECT 1")
    assert over_socket.returncode != 0
    assert "Permission denied" in over_socket.stderr or "no password supplied" in over_socket.stderr
    reading = as_account(stranger, "cat", str(server.password_file))
    assert reading.returncode != 0
    assert "Permission denied" in reading.stderr
    assert server.password not in reading.stdout + over_tcp.stderr + over_socket.stderr


def _trusting_cluster(data_dir: Path) -> None:
    """A data folder as the earlier tools/pgserver.py made it: every local connection trusted."""
    data_dir.mkdir()
    user = service_user()
    if user is not None:
        os.chown(data_dir, user.pw_uid, user.pw_gid)
    subprocess.run(
        [str(binaries() / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True, capture_output=True, user=user.pw_uid if user else None, group=user.pw_gid if user else None,
    )


def test_a_data_folder_that_trusted_everyone_gets_a_password_on_start() -> None:
    folder = scratch_folder("registry-pg-legacy-")
    server = PgServer(folder / "data", free_port())
    try:
        _trusting_cluster(server.data_dir)
        assert "trust" in (server.data_dir / "pg_hba.conf").read_text()
        server.start()
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert "trust" not in (server.data_dir / "pg_hba.conf").read_text()
        with pytest.raises(asyncpg.InvalidPasswordError):
            run(_select_one(without_password(server)))
        assert run(_select_one(server.url)) == 1
        server.stop()
        # A second start keeps the password it was given.
        password = server.password
        server.start()
        assert server.password == password
        assert run(_select_one(server.url)) == 1
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


@as_root
def test_a_folder_the_service_account_cannot_enter_is_named_and_left_alone(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    before = {path: stat.S_IMODE(path.stat().st_mode) for path in [private, *private.parents]}
    server = PgServer(private / "data", free_port())
    with pytest.raises(PgServerError) as refused:
        server.ensure_initialised()
    assert f"{SERVICE_USER}, which may not enter" in str(refused.value)
    assert {path: stat.S_IMODE(path.stat().st_mode) for path in before} == before
    assert not (private / "data").exists()


def test_starting_changes_no_mode_of_the_folders_above_the_data(server: PgServer) -> None:
    # The module's server is running: its start-up (initdb included) is behind us.
    above = [server.data_dir.parent, *server.data_dir.parent.parents]
    fresh = PgServer(server.data_dir.parent / "second", free_port())
    before = {path: stat.S_IMODE(path.stat().st_mode) for path in above}
    binary_folders = [binaries().resolve(), *binaries().resolve().parents]
    binary_modes = {path: stat.S_IMODE(path.stat().st_mode) for path in binary_folders}
    try:
        fresh.start()
        assert {path: stat.S_IMODE(path.stat().st_mode) for path in above} == before
        assert {path: stat.S_IMODE(path.stat().st_mode) for path in binary_folders} == binary_modes
    finally:
        fresh.destroy()


@pytest.fixture
def shared_parent() -> Iterator[Path]:
    """A parent folder the service account can pass through, as a shared one would be."""
    folder = scratch_folder("registry-pg-planted-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _planted(shared_parent: Path, mode: int) -> PgServer:
    """A data folder's password file as someone else could leave it in a shared parent folder."""
    server = PgServer(shared_parent / "data", free_port())
    server.password_file.write_text("a-password-someone-else-chose\n")
    server.password_file.chmod(mode)
    return server


@pytest.mark.parametrize("mode", [0o666, 0o622, 0o644])
def test_a_password_file_others_could_write_or_read_is_refused(shared_parent: Path, mode: int) -> None:
    server = _planted(shared_parent, mode)
    with pytest.raises(PgServerError) as refused:
        _ = server.password
    assert f"has mode {mode:o}" in str(refused.value)
    with pytest.raises(PgServerError):
        server.ensure_initialised()
    assert not server.data_dir.exists()
    assert server.password_file.read_text() == "a-password-someone-else-chose\n"


def test_a_password_file_that_is_a_link_is_not_followed(shared_parent: Path) -> None:
    target = shared_parent / "elsewhere"
    target.write_text("a-password-someone-else-chose\n")
    target.chmod(0o600)
    server = PgServer(shared_parent / "data", free_port())
    server.password_file.symlink_to(target)
    with pytest.raises(PgServerError) as refused:
        server.ensure_initialised()
    assert "cannot be opened as a plain file" in str(refused.value)
    # A dangling link is refused too, rather than written through.
    target.unlink()
    with pytest.raises(PgServerError):
        server.ensure_initialised()
    assert not target.exists()
    assert not server.data_dir.exists()


@as_root
def test_a_password_file_of_another_account_is_refused(shared_parent: Path) -> None:
    server = _planted(shared_parent, 0o600)
    nobody = pwd.getpwnam("nobody")
    os.chown(server.password_file, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(PgServerError) as refused:
        server.ensure_initialised()
    assert f"belongs to another account (uid {nobody.pw_uid}" in str(refused.value)
    assert not server.data_dir.exists()


def test_a_data_folder_others_could_write_is_refused(shared_parent: Path) -> None:
    server = PgServer(shared_parent / "data", free_port())
    server.data_dir.mkdir()
    user = service_user()
    if user is not None:
        os.chown(server.data_dir, user.pw_uid, user.pw_gid)
    (server.data_dir / "PG_VERSION").write_text("18\n")
    server.data_dir.chmod(0o777)
    with pytest.raises(PgServerError) as refused:
        server.ensure_initialised()
    assert "has mode 777" in str(refused.value)
    assert not server.password_file.exists()


@as_root
def test_a_data_folder_of_another_account_is_refused(shared_parent: Path) -> None:
    server = PgServer(shared_parent / "data", free_port())
    server.data_dir.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(server.data_dir, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(PgServerError) as refused:
        server.ensure_initialised()
    assert f"belongs to another account (uid {nobody.pw_uid}" in str(refused.value)
    assert not server.password_file.exists()
