"""No log of the test session holds a bearer token, a JWT, a database password or an e-mail address.

Every dev host started through `host_factory` writes its output into the session's `log_dir`.
Loaded as a plugin (`pytest_plugins = ["tests.logscan"]` in tests/conftest.py), this module
scans those files once the session is over, after every host has stopped, and fails the run
when it finds one. No field of our logs is meant to hold an e-mail address, so any address is a
finding. Tests add secrets of their own making (a password they gave a database role) with
`forbid()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
BEARER = re.compile(r"\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*", re.IGNORECASE)
# scheme://user:password@ : a connection string with its password in it.
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@", re.IGNORECASE)
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
PATTERNS = {"JWT": JWT, "bearer token": BEARER, "password in a URL": URL_PASSWORD, "e-mail address": EMAIL}

_FORBIDDEN = pytest.StashKey[set[str]]()
_LOG_DIR = pytest.StashKey[Path]()
_FINDINGS = pytest.StashKey[list["Finding"]]()


@dataclass(frozen=True)
class Finding:
    source: str
    line: int
    kind: str
    # The start of the match only, so that the report does not repeat the secret.
    hint: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.kind} ({self.hint}…)"


def scan_text(text: str, source: str, forbidden: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in PATTERNS.items():
            findings += [Finding(source, number, kind, match.group()[:6]) for match in pattern.finditer(line)]
        findings += [Finding(source, number, "forbidden text", secret[:2]) for secret in forbidden if secret in line]
    return findings


def scan_directory(directory: Path, forbidden: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    findings = []
    for path in sorted(directory.rglob("*.log")):
        findings += scan_text(path.read_text(errors="replace"), path.name, forbidden)
    return findings


def forbid(config: pytest.Config, secret: str) -> None:
    """Report `secret` wherever it shows up in a log of this session."""
    config.stash.setdefault(_FORBIDDEN, set()).add(secret)


@pytest.fixture(scope="session", autouse=True)
def _logs_to_scan(log_dir: Path, pytestconfig: pytest.Config) -> None:
    pytestconfig.stash[_LOG_DIR] = log_dir


def pytest_sessionfinish(session: pytest.Session) -> None:
    log_dir = session.config.stash.get(_LOG_DIR, None)
    if log_dir is None:
        return
    findings = scan_directory(log_dir, session.config.stash.get(_FORBIDDEN, set()))
    session.config.stash[_FINDINGS] = findings
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    findings = config.stash.get(_FINDINGS, [])
    if findings:
        terminalreporter.section("secrets in dev host logs", red=True, bold=True)
        for finding in findings:
            terminalreporter.line(str(finding))
        terminalreporter.line(f"{len(findings)} finding(s): the run fails.", red=True)
