"""Fixtures of the fault tests: a PostgreSQL of their own that they may stop, break and start."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.pgserver import PgServer, free_port


@pytest.fixture
def dedicated_server() -> Iterator[PgServer]:
    """An initialised server that nothing else uses; the test starts (and stops) it."""
    folder = Path(tempfile.mkdtemp(prefix="registry-faults-"))
    server = PgServer(folder / "data", free_port())
    server.ensure_initialised()
    try:
        yield server
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)
