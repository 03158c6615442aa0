"""Fixtures of the fault tests: a PostgreSQL of their own that they may stop, break and start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import throwaway_server
from tools.pgserver import PgServer


@pytest.fixture
def dedicated_server() -> Iterator[PgServer]:
    """An initialised server that nothing else uses; the test starts (and stops) it."""
    with throwaway_server("registry-faults-") as server:
        yield server
