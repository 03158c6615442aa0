"""Timer triggers in the dev host: NCRONTAB schedules, and the probe round run by the real
timer trigger against an MCP server on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import httpx
import pytest

from tests import mcp_fixtures as fx
from tests.support import Caller, PostgresCluster, RunningHost, Sql, app_environment
from tools.authority import DevAuthority
from tools.timers import Schedule, ScheduleError, collect_timers, resolve

HostFactory = Callable[[Mapping[str, str]], RunningHost]
MOMENT = datetime(2026, 12, 2, 19, 14, 59, 500000, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(("expression", "expected"), [
    ("0 */15 * * * *", datetime(2026, 12, 2, 19, 15, tzinfo=UTC)),
    ("* * * * * *", datetime(2026, 12, 2, 19, 15, tzinfo=UTC)),
    ("*/10 * * * * *", datetime(2026, 12, 2, 19, 15, tzinfo=UTC)),
    ("30 5 9 * * *", datetime(2026, 12, 3, 9, 5, 30, tzinfo=UTC)),
    ("0 0 0 1 Jan *", datetime(2027, 1, 1, tzinfo=UTC)),
    ("0 0 8 * * Mon-Fri", datetime(2026, 12, 3, 8, tzinfo=UTC)),
    ("0 0 8 * * 0", datetime(2026, 12, 6, 8, tzinfo=UTC)),
    ("0 0 8 * * 7", datetime(2026, 12, 6, 8, tzinfo=UTC)),
    ("0 0 12 29 2 *", datetime(2028, 2, 29, 12, tzinfo=UTC)),
    ("0 10-20/5,45 * * * *", datetime(2026, 12, 2, 19, 15, tzinfo=UTC)),
    # Five fields, minute first, fire at second 0, as the Functions host's NCrontab has them.
    ("*/15 * * * *", datetime(2026, 12, 2, 19, 15, tzinfo=UTC)),
    ("5 9 * * Mon-Fri", datetime(2026, 12, 3, 9, 5, tzinfo=UTC)),
])
def test_next_occurrence(expression: str, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(MOMENT) == expected


@pytest.mark.parametrize("expression", ["* * * *", "0 0 * * * * *", "0 60 * * * *", "0 * * 0 * *", "x * * * * *",
                                        "0 */0 * * * *", "0 0 0 31 2 *"])
def test_bad_schedules(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(MOMENT)


def test_a_setting_schedule_is_read_from_the_settings() -> None:
    assert resolve("%PROBE_SCHEDULE%", {"PROBE_SCHEDULE": "0 */15 * * * *"}) == "0 */15 * * * *"
    assert resolve("%PROBE_SCHEDULE%", {}) is None
    assert resolve("0 0 * * * *", {}) == "0 0 * * * *"


def test_the_apps_timer_runs_only_where_its_schedule_is_set() -> None:
    import function_app
    from tools.devhost import indexed_functions

    functions = indexed_functions(function_app.app)
    assert collect_timers(functions, {}) == []
    timers = collect_timers(functions, {"PROBE_SCHEDULE": "0 */15 * * * *"})
    assert [(timer.function_name, timer.arg_name, timer.run_on_startup) for timer in timers] == [
        ("probes_round", "timer", False)]
    timers = collect_timers(functions, {"NOTIFY_SCHEDULE": "*/10 * * * * *"})
    assert [(timer.function_name, timer.arg_name, timer.run_on_startup) for timer in timers] == [
        ("notifications_round", "timer", False)]


@pytest.fixture(scope="module")
def mcp_port() -> Iterator[int]:
    with fx.serving_weather() as port:
        yield port


def test_the_timer_probes_due_and_published_registrations(postgres: PostgresCluster, authority: DevAuthority,
                                                          host_factory: HostFactory, mcp_port: int,
                                                          make_caller: Callable[..., Caller]) -> None:
    # A database of its own: the round probes every due registration, and other tests' registrations
    # name hosts that only a system lookup could reach.
    database_url = postgres.migrated_database("registry_timer")
    host = host_factory(app_environment(database_url, authority, PROBE_ENABLED="true",
                                        PROBE_SCHEDULE="* * * * * *", ALLOWED_ENDPOINT_NETWORKS="127.0.0.0/8",
                                        ALLOW_HTTP_ENDPOINTS="true"))
    submitter, admin = make_caller(), make_caller(admin=True)
    created = httpx.post(f"{host.base_url}/registrations", headers=submitter.headers, timeout=30, json={
        "endpoint_url": f"http://127.0.0.1:{mcp_port}/mcp", "endpoint_name": "Loopback weather",
        "owner_contact": "team@contoso.com", "server_name": "1.0.0.127/loopback-weather"})
    assert created.status_code == 201, created.text
    registration_id = created.json()["registration_id"]
    sql = Sql(database_url)
    _wait_for(sql, registration_id, "queued")
    approved = httpx.patch(f"{host.base_url}/registrations/{registration_id}/status", headers=admin.headers,
                           timeout=30, json={"status": "Approved"})
    assert approved.status_code == 200, approved.text
    # Published: due again at every round, each probe a scheduled one.
    _wait_for(sql, registration_id, "scheduled")
    rows = sql.fetch("SELECT trigger, outcome, tools_hash FROM probes WHERE registration_id = $1 "
                     "ORDER BY checked_at", registration_id)
    assert {row["outcome"] for row in rows} == {"ok"}
    assert len({row["tools_hash"] for row in rows}) == 1
    latest = httpx.get(f"{host.base_url}/registrations/{registration_id}/probes/latest", headers=admin.headers,
                       timeout=30)
    assert (latest.status_code, latest.json()["outcome"]) == (200, "ok")
    # An edit queues one probe of the new revision; the rounds go on probing the published one.
    edited = httpx.patch(f"{host.base_url}/registrations/{registration_id}", headers=submitter.headers, timeout=30,
                         json={"description": "Forecasts, now with alerts."})
    assert edited.status_code == 200, edited.text
    _wait_for(sql, registration_id, "queued", revision=2)
    _wait_for(sql, registration_id, "scheduled", after_revision=2)
    assert {row["revision"] for row in sql.fetch(
        "SELECT revision FROM probes WHERE registration_id = $1 AND trigger = 'scheduled'", registration_id)} == {1}
    host.stop()


def _wait_for(sql: Sql, registration_id: str, trigger: str, *, revision: int | None = None,
              after_revision: int | None = None) -> None:
    """Until a probe of `trigger` (of `revision`; recorded after the first probe of `after_revision`) exists."""
    # Only a guard against a timer that never fires: the schedule is every second.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sql.fetchval("SELECT count(*) FROM probes AS p WHERE p.registration_id = $1 AND p.trigger = $2"
                        " AND ($3::integer IS NULL OR p.revision = $3) AND ($4::integer IS NULL OR p.checked_at > ("
                        "SELECT min(checked_at) FROM probes WHERE registration_id = $1 AND revision = $4))",
                        registration_id, trigger, revision, after_revision):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {trigger} probe after 120 s")
