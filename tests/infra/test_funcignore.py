"""What a publish would ship: the files .funcignore lets through, under both readers of it.

`func azure functionapp publish` walks the project and drops every file .funcignore denies,
with Core Tools' own matcher (src/Cli/func/Common/GitIgnoreParser.cs, a port of the npm
gitignore-parser: each pattern becomes a regular expression matched at the start of the path),
plus a few names it always leaves out (FileSystemHelpers.GetLocalFiles). `azd deploy` reads the
same file with git's rules. Both must ship the app's run-time files and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pathspec
import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCIGNORE = (ROOT / ".funcignore").read_text(encoding="utf-8")

# What Core Tools always leaves out, whatever .funcignore says.
ALWAYS_SKIPPED_DIRECTORIES = {".git", ".vscode"}
ALWAYS_SKIPPED_FILES = {".funcignore", ".gitignore", "local.settings.json", "project.lock.json"}

# Where a publish could pick up something that must not ship; each is planted below.
HAZARDS = [
    ".env", ".env.local", ".env.production", ".envrc", ".azure/prod/.env", ".azure/config.json",
    ".hypothesis/examples/0a/1b", ".python_packages/lib/site-packages/old/__init__.py",
    ".venv/bin/python", ".venv-checkov/bin/checkov", ".data/pg/PG_VERSION", ".data/registry.log",
    "__pycache__/function_app.cpython-311.pyc", "shared/__pycache__/db.cpython-311.pyc",
    "shared/routes/__pycache__/feed.cpython-311.pyc", "stray.pyc", "shared/stray.pyc",
    ".mypy_cache/3.11/x.json", ".ruff_cache/CACHEDIR.TAG", ".pytest_cache/v/cache/lastfailed",
    ".coverage", ".coverage.host.1", "htmlcov/index.html", "local.settings.json",
    ".vscode/settings.json", ".idea/workspace.xml", ".github/workflows/ci.yml",
    ".devcontainer/devcontainer.json", "tests/conftest.py", "bench/__main__.py", "tools/devhost.py",
    "infra/main.bicep", "docs/feed.md", "sql/migrations/0001_initial.sql",
]

Matcher = Callable[[str], bool]


def core_tools_denies(content: str) -> Matcher:
    """Core Tools' GitIgnoreParser.Denies, line for line."""
    positive: list[str] = []
    negative: list[str] = []
    for raw in content.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target = positive
        if line.startswith("!"):
            target, line = negative, line[1:]
        target.append(line.removeprefix("/"))

    def prepare(pattern: str) -> str:
        escaped = re.sub(r"[\-\[\]\/\{\}\(\)\+\?\.\\\^\$\|]", lambda match: "\\" + match.group(0), pattern)
        return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")

    def compile_all(patterns: list[str]) -> re.Pattern[str]:
        if not patterns:
            return re.compile("$^")
        return re.compile("^((" + ")|(".join(prepare(pattern) for pattern in sorted(patterns)) + r"))\b")

    denied, accepted = compile_all(positive), compile_all(negative)
    return lambda path: bool(denied.match(path)) and not accepted.match(path)


def git_rules_deny(content: str) -> Matcher:
    spec = pathspec.GitIgnoreSpec.from_lines(content.splitlines())
    return lambda path: spec.match_file(path)


READERS = {"func publish": core_tools_denies(FUNCIGNORE), "azd deploy": git_rules_deny(FUNCIGNORE)}


def shipped(root: Path, denies: Matcher) -> set[str]:
    """The files a publish of `root` would put in the package."""
    found: set[str] = set()
    for folder, directories, files in os.walk(root, followlinks=True):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        # Not descending into a folder whose every file would be denied only saves time.
        directories[:] = [name for name in directories
                          if name not in ALWAYS_SKIPPED_DIRECTORIES and not denies(f"{prefix}{name}/any-file")]
        found.update(f"{prefix}{name}" for name in files
                     if name not in ALWAYS_SKIPPED_FILES and not denies(f"{prefix}{name}"))
    return found


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [path for path in listed.stdout.split("\0") if path and (ROOT / path).is_file()]


def runtime_files(paths: list[str]) -> set[str]:
    """What the app reads at run time: its entry point, host settings, dependencies, shared/."""
    return {path for path in paths
            if path in {"function_app.py", "host.json", "requirements.txt"} or path.startswith("shared/")}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tracked files with every hazard planted among them."""
    root = tmp_path_factory.mktemp("publish")
    for path in tracked_files():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, root / path)
    for path in HAZARDS:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("must not ship\n")
    return root


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_publish_ships_exactly_the_runtime_files(planted: Path, reader: str) -> None:
    assert sorted(shipped(planted, READERS[reader])) == sorted(runtime_files(tracked_files()))


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_publish_of_this_checkout_ships_nothing_but_runtime_files(reader: str) -> None:
    # Whatever lies around in the working copy (caches, local data, virtual environments).
    files = shipped(ROOT, READERS[reader])
    unexpected = sorted(path for path in files
                        if path not in {"function_app.py", "host.json", "requirements.txt"}
                        and not (path.startswith("shared/") and "__pycache__" not in path
                                 and not path.endswith(".pyc")))
    assert unexpected == []
    assert runtime_files(tracked_files()) <= files


def test_every_file_the_app_opens_beside_its_code_ships(planted: Path) -> None:
    # The app finds its files from its own modules (`Path(__file__).resolve().parent... / "name"`);
    # each such file or folder must be in the package. SQL is applied before a publish and never read.
    shipped_files = shipped(planted, READERS["func publish"])
    opened = []
    for module in [ROOT / "function_app.py", *(ROOT / "shared").rglob("*.py")]:
        text = module.read_text(encoding="utf-8")
        for parents, name in re.findall(r'Path\(__file__\)\.resolve\(\)((?:\.parent)+) / "([^"]+)"', text):
            target = module.resolve()
            for _ in range(parents.count(".parent")):
                target = target.parent
            opened.append((target / name).relative_to(ROOT).as_posix())
    assert opened, "no file the app opens was found; the pattern above needs updating"
    for path in opened:
        assert path in shipped_files or any(file.startswith(f"{path}/") for file in shipped_files), path


def test_core_tools_matcher_reads_patterns_as_core_tools_does() -> None:
    # The port's known behaviour: matched from the start of the path, `*` within one segment.
    denies = core_tools_denies("__pycache__\n*.pyc\n/tests\n!keep.pyc\n")
    assert [denies(path) for path in ("__pycache__/x.pyc", "tests/a.py", "x.pyc")] == [True] * 3
    assert [denies(path) for path in ("shared/__pycache__/x.pyc", "shared/x.pyc", "keep.pyc")] == [False] * 3
