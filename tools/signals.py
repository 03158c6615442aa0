"""Waiting for Ctrl-C or SIGTERM in the small command-line servers of tools/."""

from __future__ import annotations

import signal
import threading


def wait_until_stopped() -> None:
    """Block until SIGINT or SIGTERM arrives, so the caller can shut down cleanly."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
