"""What we ship and what we keep in git: no dependency with a known vulnerability, no local
settings file that git would pick up, no secret in a tracked file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AUDIT_TIMEOUT_SECONDS = 240
# What pip and pip-audit print when PyPI or the advisory service cannot be reached.
OFFLINE = re.compile(r"(?i)connection|network|name resolution|timed out|max retries|could not find a version|"
                     r"no matching distribution|proxyerror|ssl")

SECRETS = {
    "a private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}"),
    "a storage account key": re.compile(r"AccountKey=[A-Za-z0-9+/]{20,}"),
    "a password in a URL": re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>]*[?&;]password=[^&\s\"'<>]{3,}"),
}
# user:password@host in a URL: tests spell out made-up ones on purpose (URLs the API must
# refuse, redaction checks), so this one is looked for outside tests/ only.
USERINFO_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@\"'<>\[\]]+:[A-Za-z0-9._~%!$&()+,;=-]+@")


def run_audit() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip_audit", "--requirement", "requirements.txt", "--format", "json",
         "--progress-spinner", "off"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=AUDIT_TIMEOUT_SECONDS, check=False,
    )


def test_no_runtime_dependency_has_a_known_vulnerability() -> None:
    result = run_audit()
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        if OFFLINE.search(result.stderr):
            pytest.skip(f"pip-audit could not resolve requirements.txt (PyPI unreachable?): {last_line}")
        pytest.fail(f"pip-audit failed with exit code {result.returncode}: {result.stderr[-2000:]}")
    dependencies = report["dependencies"]
    vulnerable = {f"{item['name']} {item['version']}": [vuln["id"] for vuln in item["vulns"]]
                  for item in dependencies if item.get("vulns")}
    assert vulnerable == {}
    unaudited = sorted(item["name"] for item in dependencies if "skip_reason" in item)
    if unaudited and len(unaudited) == len(dependencies):
        pytest.skip(f"the advisory database could not be reached: none of the {len(dependencies)} resolved "
                    f"packages could be audited ({dependencies[0]['skip_reason']})")
    assert unaudited == []


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("path", ["local.settings.json", ".env", ".env.local", "infra/.env", "tools/.env.production"])
def test_local_settings_and_env_files_are_ignored_by_git(path: str) -> None:
    result = git("check-ignore", "--quiet", path)
    assert result.returncode == 0, f"git would track {path}"


def tracked_text_files() -> list[tuple[str, str]]:
    listing = git("ls-files", "-z")
    assert listing.returncode == 0, listing.stderr
    files = []
    for name in listing.stdout.decode().split("\0"):
        path = PROJECT_ROOT / name
        if not name or name.startswith(".data/") or not path.is_file():
            continue
        content = path.read_bytes()
        if b"\0" not in content[:8192]:
            files.append((name, content.decode("utf-8", errors="replace")))
    return files


def test_no_tracked_file_holds_a_secret() -> None:
    files = tracked_text_files()
    assert any(name == "requirements.txt" for name, _ in files)
    found = [f"{name}: {kind}" for name, text in files for kind, pattern in SECRETS.items() if pattern.search(text)]
    found += [f"{name}: a password in a URL" for name, text in files
              if not name.startswith("tests/") and USERINFO_PASSWORD.search(text)]
    assert found == []


@pytest.mark.parametrize(("text", "kind"), [
    ("-----BEGIN PRIVATE KEY-----\n" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ" * 2, "a private key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
     "a private key"),
    # Split, so that this file does not hold what it describes.
    ("DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + "bXlrZXlteWtleW15a2V5bXlrZXk=;",
     "a storage account key"),
    ("https://db.example.com/?user=app&password=" + "hunter22", "a password in a URL"),
])
def test_the_secret_patterns_match_what_they_describe(text: str, kind: str) -> None:
    assert [name for name, pattern in SECRETS.items() if pattern.search(text)] == [kind]


@pytest.mark.parametrize("text", [
    "AccountKey=<storage-key>", "-----BEGIN PRIVATE KEY-----", "load_pem_private_key(data, password=None)",
    "PGPASSWORD=$(az account get-access-token)", "postgresql://user[:password]@host:port/db",
])
def test_the_secret_patterns_leave_placeholders_alone(text: str) -> None:
    assert [name for name, pattern in SECRETS.items() if pattern.search(text)] == []
    assert USERINFO_PASSWORD.search(text) is None
