"""`python -m tools.run` (what `make run` starts): PostgreSQL, the sign-in authority and the API
come up with one command, a signal takes all of them down, and the next start keeps the data."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support import PROJECT_ROOT, Sql
from tools.authority import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID
from tools.migrate import MIGRATIONS_DIR
from tools.pgserver import PgServer, free_port, scratch_folder
from tools.run import app_environment, parse_arguments, shown_url

READY = "  Press Ctrl-C to stop."
HAS_SEED = importlib.util.find_spec("tools.seed") is not None


@dataclass
class Ports:
    api: int
    postgres: int
    authority: int

    def listening(self) -> list[int]:
        open_ports = []
        for port in (self.api, self.postgres, self.authority):
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    open_ports.append(port)
        return open_ports


def run_environment(data_dir: Path, ports: Ports) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("ENTRA_", "DB_", "CORS_", "REGISTRY_")) and name not in ("DATABASE_URL", "LOG_LEVEL")
    }
    environment.update({
        "REGISTRY_DATA_DIR": str(data_dir),
        "PG_PORT": str(ports.postgres),
        "AUTHORITY_PORT": str(ports.authority),
        "PYTHONUNBUFFERED": "1",
    })
    return environment


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> str:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            output = self.output()
            if READY in output:
                return output
            if self.process.poll() is not None:
                pytest.fail(f"tools.run exited with {self.process.returncode}:\n{output}")
            time.sleep(0.1)
        self.process.kill()
        pytest.fail(f"tools.run printed no banner within 90 s:\n{self.output()}")

    def stop(self, stop_signal: signal.Signals) -> int:
        self.process.send_signal(stop_signal)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"tools.run did not stop within 30 s:\n{self.output()}")


def start(data_dir: Path, ports: Ports, log_path: Path) -> Run:
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.run", "--port", str(ports.api)],
            cwd=PROJECT_ROOT, env=run_environment(data_dir, ports), stdout=log_file, stderr=subprocess.STDOUT,
        )
    return Run(process, log_path)


def banner_token(output: str, name: str) -> str:
    match = re.search(rf"^export {name}='([^']+)'$", output, re.MULTILINE)
    assert match is not None, f"{name} missing from the banner:\n{output}"
    return match.group(1)


def verified_claims(token: str, ports: Ports) -> dict[str, Any]:
    """The token's claims, checked against the keys the running authority publishes."""
    authority = f"http://127.0.0.1:{ports.authority}"
    keys = jwt.PyJWKClient(f"{authority}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys")
    claims: dict[str, Any] = jwt.decode(
        token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
        audience=DEFAULT_CLIENT_ID, issuer=f"{authority}/{DEFAULT_TENANT_ID}/v2.0",
    )
    return claims


def database_state(data_dir: Path, ports: Ports) -> tuple[list[tuple[str, str]], int]:
    sql = Sql(PgServer(data_dir / "pg", ports.postgres).database_url("registry"))
    migrations = [(row["version"], row["checksum"]) for row in sql.fetch(
        "SELECT version, checksum FROM schema_migrations ORDER BY version"
    )]
    return migrations, sql.fetchval("SELECT count(*) FROM registrations")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under tmp_path: another pytest session starting meanwhile makes pytest's temporary root
    # private again, and PostgreSQL runs as its own user when we are root.
    folder = scratch_folder("registry-run-")
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def test_run_serves_the_api_stops_everything_and_keeps_the_data(data_dir: Path, tmp_path: Path) -> None:
    ports = Ports(api=free_port(), postgres=free_port(), authority=free_port())
    base_url = f"http://127.0.0.1:{ports.api}/api"

    first = start(data_dir, ports, tmp_path / "first.log")
    output = first.wait_until_ready()
    assert "run: starting PostgreSQL" in output
    assert "run: creating database registry ..." in output
    assert "run: migrating ..." in output
    assert ("run: adding example registrations ..." in output) == HAS_SEED
    assert "warning" not in output
    assert f"  API        {base_url}\n" in output
    assert f"  API docs   {base_url}/docs\n" in output
    assert f'curl -H "Authorization: Bearer $ADMIN_TOKEN" {base_url}/users/me\n' in output
    assert 'make token ARGS="--name Ada --admin' in output

    health = httpx.get(f"{base_url}/health", timeout=10)
    assert health.status_code == 200
    assert {key: health.json()[key] for key in ("status", "database")} == {"status": "healthy", "database": "connected"}

    admin = verified_claims(banner_token(output, "ADMIN_TOKEN"), ports)
    user = verified_claims(banner_token(output, "USER_TOKEN"), ports)
    assert (admin["name"], admin["email"], admin["roles"], admin["scp"]) == (
        "Ada Admin", "ada.admin@example.com", ["Registry.Admin"], "access_as_user"
    )
    assert admin["exp"] - admin["iat"] == 8 * 3600
    assert (user["name"], user["email"], user["scp"], "roles" in user) == (
        "Uma User", "uma.user@example.com", "access_as_user", False
    )
    # The banner's curl line works as printed.
    me = httpx.get(f"{base_url}/users/me", headers={"Authorization": f"Bearer {banner_token(output, 'ADMIN_TOKEN')}"})
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["is_admin"]) == ("ada.admin@example.com", True)

    migrations, registrations = database_state(data_dir, ports)
    assert [version for version, _ in migrations] == sorted(path.stem for path in MIGRATIONS_DIR.glob("*.sql"))
    assert (registrations > 0) == HAS_SEED

    assert first.stop(signal.SIGINT) == 0
    assert ports.listening() == []
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert "run: stopping PostgreSQL" in first.output()

    second = start(data_dir, ports, tmp_path / "second.log")
    output = second.wait_until_ready()
    assert "run: using the existing database registry; its data is kept" in output
    assert "creating database" not in output
    assert "adding example registrations" not in output
    assert "run: schema is current\n" in output
    assert database_state(data_dir, ports) == (migrations, registrations)
    # Tokens minted on the first run stay valid: the signing key is kept with the data.
    assert verified_claims(banner_token(first.output(), "USER_TOKEN"), ports)["name"] == "Uma User"

    assert second.stop(signal.SIGTERM) == 0
    assert ports.listening() == []
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_run_refuses_to_start_with_a_configuration_error_and_starts_nothing(tmp_path: Path) -> None:
    ports = Ports(api=free_port(), postgres=free_port(), authority=free_port())
    environment = run_environment(tmp_path / "data", ports) | {"ENTRA_TENANT_ID": "not-a-guid"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.run", "--port", str(ports.api)],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "run: configuration error: ENTRA_TENANT_ID must be a GUID, got 'not-a-guid'\n"
    assert not (tmp_path / "data").exists()


def test_run_refuses_a_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = Ports(api=busy.getsockname()[1], postgres=free_port(), authority=free_port())
        result = subprocess.run(
            [sys.executable, "-m", "tools.run", "--port", str(ports.api)],
            cwd=PROJECT_ROOT, env=run_environment(tmp_path / "data", ports), capture_output=True, text=True,
            timeout=60,
        )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"run: port {ports.api} for the API is already in use (another `make run`?); "
        "stop that program or choose another port with --port\n"
    )


def test_settings_in_the_environment_win_over_the_local_defaults() -> None:
    environment = app_environment(
        {"ENTRA_TENANT_ID": "11111111-2222-3333-4444-555555555555", "CORS_ORIGINS": "", "PATH": "/bin"},
        database_url="postgresql://postgres@127.0.0.1:54329/registry", authority_url="http://127.0.0.1:7072",
    )
    assert environment == {
        "PATH": "/bin",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:54329/registry",
        "ENTRA_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "ENTRA_API_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_AUTHORITY": "http://127.0.0.1:7072",
        "ENTRA_REQUIRED_SCOPE": "access_as_user",
        "CORS_ORIGINS": "",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def test_ports_and_data_folder_come_from_options_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PORT", "15432")
    monkeypatch.setenv("AUTHORITY_PORT", "17072")
    monkeypatch.setenv("REGISTRY_DATA_DIR", "/tmp/registry-data")
    args = parse_arguments(["--port", "8080"])
    assert (args.port, args.pg_port, args.authority_port, args.data_dir, args.host) == (
        8080, 15432, 17072, Path("/tmp/registry-data"), "127.0.0.1"
    )
    monkeypatch.delenv("PG_PORT")
    monkeypatch.delenv("AUTHORITY_PORT")
    monkeypatch.delenv("REGISTRY_DATA_DIR")
    args = parse_arguments([])
    assert (args.port, args.pg_port, args.authority_port, args.data_dir) == (7071, 54329, 7072, PROJECT_ROOT / ".data")


def test_every_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(["--help"])
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--data-dir", "--pg-port", "--authority-port"):
        assert re.search(rf"^  {option} \S+\s+\S", text, re.MULTILINE), f"{option} has no help:\n{text}"


def test_a_password_is_never_printed() -> None:
    assert shown_url("postgresql://app:s3cret@db.example.com:5432/registry") == (
        "postgresql://app:***@db.example.com:5432/registry"
    )
    assert shown_url("postgresql://postgres@127.0.0.1:54329/registry") == "postgresql://postgres@127.0.0.1:54329/registry"
