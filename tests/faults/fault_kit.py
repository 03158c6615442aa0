"""What the fault tests share: a lock held from outside the app, a recorded load, answer checks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.registry import body

PROBLEM_TYPE = "application/problem+json"
# The tests' own sessions carry this application_name, so that queries of pg_stat_activity can
# tell them from the app's (whose sessions leave it empty).
TEST_SESSION = "registry-fault-test"
# How many of the app's statements wait for a lock right now.
APP_WAITING_ON_A_LOCK = f"""
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND application_name <> '{TEST_SESSION}'
"""
# Words that must never reach a caller: they would betray the code, the database or a setting.
LEAK_MARKERS = ("Traceback", 'File "', "asyncpg", "SELECT", "INSERT", "postgresql://", "DATABASE_URL", "ENTRA_")


class HeldLock:
    """A lock taken by a transaction on a connection of our own, as a slow client would hold it.

    The statement runs in a thread with its own event loop, so the test's thread stays free to
    send requests that run into the lock. The lock is held until `release()` (or the end of
    the `with` block).
    """

    def __init__(self, url: str, statement: str, *args: Any) -> None:
        self._url = url
        self._statement = statement
        self._args = args
        self._taken = threading.Event()
        self._released = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold()), name="held-lock", daemon=True)

    def __enter__(self) -> HeldLock:
        self._thread.start()
        if not self._taken.wait(10):
            raise TimeoutError("the lock was not taken within 10 s")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        self._released.set()
        self._thread.join(10)

    async def _hold(self) -> None:
        try:
            connection = await asyncpg.connect(self._url, server_settings={"application_name": TEST_SESSION})
        except BaseException as error:
            self._failure = error
            self._taken.set()
            raise
        try:
            async with connection.transaction():
                await connection.execute(self._statement, *self._args)
                self._taken.set()
                await asyncio.to_thread(self._released.wait)
        finally:
            await connection.close()


def probe(url: str, query: str, *args: Any) -> Any:
    """One value from a session of the tests' own, marked as such."""

    async def ask() -> Any:
        connection = await asyncpg.connect(url, server_settings={"application_name": TEST_SESSION})
        try:
            return await connection.fetchval(query, *args)
        finally:
            await connection.close()

    return asyncio.run(ask())


def wait_until_app_waits_on_locks(url: str, sessions: int, *, guard: float = 60.0) -> None:
    """Block until `sessions` statements of the app wait for a lock: a test that needs requests
    stuck behind a lock waits for them to be stuck, not for a guess of how long that takes."""
    deadline = time.monotonic() + guard
    while probe(url, APP_WAITING_ON_A_LOCK) < sessions:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {sessions} of the app's statements waited on a lock after {guard:.0f} s")
        time.sleep(0.05)


def row_lock(url: str, registration_id: str) -> HeldLock:
    """Every write to this registration waits while the lock is held (its UPDATEs lock the row)."""
    return HeldLock(url, "SELECT 1 FROM registrations WHERE registration_id = $1::uuid FOR UPDATE", registration_id)


def table_lock(url: str) -> HeldLock:
    """Every statement that touches registrations waits while the lock is held, reads included."""
    return HeldLock(url, "LOCK TABLE registrations IN ACCESS EXCLUSIVE MODE")


@dataclass(frozen=True)
class Outcome:
    """One request of a load and what came back; status 0 when no HTTP answer came at all."""

    action: str
    started: float
    finished: float
    status: int
    retry_after: str | None
    content_type: str
    content: bytes
    endpoint_url: str | None

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.content)


def timed(action: str, send: Any, endpoint_url: str | None = None) -> Outcome:
    """Call `send()` (an httpx request) and record it; a transport failure is status 0."""
    started = time.monotonic()
    try:
        response: httpx.Response = send()
    except httpx.HTTPError as error:
        return Outcome(action, started, time.monotonic(), 0, None, "", type(error).__name__.encode(), endpoint_url)
    return Outcome(action, started, time.monotonic(), response.status_code, response.headers.get("Retry-After"),
                   response.headers.get("Content-Type", ""), response.content, endpoint_url)


class Load:
    """Threads that submit registrations and read the list without pause, recording every answer.

    Each thread signs in as a submitter of its own and sends at most `requests_per_thread`
    requests, so the load is bounded by count, whatever the machine's speed: no submitter comes
    near `MAX_PENDING_PER_USER`, and a test waits for counts of answers (`wait_for`), never for a
    stretch of time. The client timeout is far above anything the API may take, so a hanging
    request shows up as a long `elapsed` rather than being cut short by the test.
    """

    def __init__(self, base_url: str, headers: list[dict[str, str]], *, requests_per_thread: int = 400,
                 timeout: float = 15.0) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._requests_per_thread = requests_per_thread
        self._stopping = threading.Event()
        self._answered = threading.Condition()
        self._threads = [threading.Thread(target=self._run, args=(thread_headers,), name=f"load-{n}", daemon=True)
                         for n, thread_headers in enumerate(headers)]
        self.outcomes: list[Outcome] = []

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(self._timeout + 5)

    def wait_for(
        self, wanted: Callable[[Outcome], bool], count: int, *, what: str, guard: float = 120.0
    ) -> list[Outcome]:
        """Block until `count` recorded answers satisfy `wanted`, and return them.

        `guard` only keeps a broken app from hanging the suite: nothing is asserted about how long
        the answers took to arrive.
        """
        deadline = time.monotonic() + guard
        with self._answered:
            while True:
                matching = [outcome for outcome in self.outcomes if wanted(outcome)]
                if len(matching) >= count:
                    return matching
                if not any(thread.is_alive() for thread in self._threads):
                    raise AssertionError(f"the load ended with {len(matching)} of {count} answers {what}")
                if not self._answered.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"{len(matching)} of {count} answers {what} after {guard:.0f} s")

    def _record(self, outcome: Outcome) -> None:
        with self._answered:
            self.outcomes.append(outcome)
            self._answered.notify_all()

    def _run(self, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=self._base_url, headers=headers, timeout=self._timeout) as client:
            for _ in range(self._requests_per_thread // 2):
                if self._stopping.is_set():
                    break
                self._record(self._create(client))
                self._record(timed("list", lambda: client.get("/registrations", params={"limit": "5"})))
        with self._answered:
            self._answered.notify_all()

    @staticmethod
    def _create(client: httpx.Client) -> Outcome:
        payload = body()
        return timed("create", lambda: client.post("/registrations", json=payload), payload["endpoint_url"])


def assert_unavailable(outcome: Outcome) -> None:
    """A 503 as the contract words it: problem+json with Retry-After, nothing internal in it."""
    assert outcome.status == 503, outcome
    assert outcome.content_type.startswith(PROBLEM_TYPE), outcome
    assert outcome.retry_after == "5", outcome
    problem = outcome.json()
    assert (problem["type"], problem["title"], problem["status"]) == ("about:blank", "Service Unavailable", 503)
    assert problem["detail"] in ("The database is unavailable. Try again shortly.",
                                 "The database is busy or unavailable. Try again shortly."), problem
    assert_no_leak(outcome.content)


def assert_no_leak(content: bytes, *secrets: str) -> None:
    text = content.decode("utf-8", errors="replace")
    found = [marker for marker in (*LEAK_MARKERS, *secrets) if marker and marker in text]
    assert found == [], f"the answer gives away {found}: {text[:300]}"
