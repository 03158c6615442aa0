"""Timer triggers for the development host, run on their NCRONTAB schedule as the Functions host
runs them.

A schedule has six fields, seconds first (`0 */15 * * * *`), or five, minute first (`*/15 * * * *`,
at second 0), as the Functions host's NCrontab takes them; each field `*`, a number, a range `a-b`,
a step `*/n` or `a-b/n`, or a list of those; months and weekdays may be named (`Jan`, `Mon`).
A `%NAME%` schedule is read from the app settings, as the Functions host resolves binding
expressions; where the setting is absent the function does not run (the Functions host reports
it in error and runs the others), and the dev host says so once.
(learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest

log = logging.getLogger("devhost.timers")

_NAMES = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (lowest, highest, names) of second, minute, hour, day of month, month, day of week.
_FIELDS: tuple[tuple[int, int, Mapping[str, int]], ...] = (
    (0, 59, {}), (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _NAMES), (0, 6, _DAYS))
_SETTING = re.compile(r"^%([A-Za-z0-9_.]+)%$")
# Far enough for any schedule that fires at all (29 February on a Monday comes within 28 years).
_HORIZON = timedelta(days=366 * 30)


class ScheduleError(ValueError):
    """A schedule that is not a five- or six-field NCRONTAB expression."""


def _number(text: str, names: Mapping[str, int], field: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise ScheduleError(f"{text!r} in {field!r} is not a number")
    return int(text)


def _parse_field(text: str, lowest: int, highest: int, names: Mapping[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, {}, text) if step_text else 1
        if base == "*":
            start, end = lowest, highest
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names, text), _number(last, names, text)
        else:
            start = _number(base, names, text)
            end = highest if step_text else start
        if highest == 6 and end == 7:  # 7 is Sunday too
            values.add(0)
            start, end = (0, 0) if start == 7 else (start, 6)
        if step < 1 or not lowest <= start <= end <= highest:
            raise ScheduleError(f"{part!r} is outside {lowest}-{highest}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ScheduleError(f"{expression!r} is not five fields (minute hour day month weekday) or six "
                                f"(second first)")
        parsed = [_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        return cls(*parsed)

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` that matches (whole seconds, UTC). Day of month
        and day of week must both match, as NCrontab has it."""
        candidate = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        end = candidate + _HORIZON
        while candidate < end:
            if candidate.month not in self.months:
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
            elif candidate.day not in self.days or (candidate.isoweekday() % 7) not in self.weekdays:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
            elif candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
            elif candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
            else:
                return candidate
        raise ScheduleError("the schedule never fires")


def resolve(expression: str, settings: Mapping[str, str]) -> str | None:
    """The schedule with a `%NAME%` expression read from the settings; None where it is unset."""
    match = _SETTING.match(expression.strip())
    if match is None:
        return expression
    return settings.get(match.group(1), "").strip() or None


@dataclass
class Timer:
    function_name: str
    schedule: Schedule
    arg_name: str
    run_on_startup: bool
    handler: Callable[..., Awaitable[Any]]

    async def run(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if self.run_on_startup:
            await self._fire(past_due=False)
        while True:
            due = self.schedule.next_after(now())
            await asyncio.sleep(max(0.0, (due - now()).total_seconds()))
            await self._fire(past_due=(now() - due).total_seconds() > 1)

    async def _fire(self, *, past_due: bool) -> None:
        try:
            await self.handler(**{self.arg_name: TimerRequest(past_due=past_due)})
        except Exception:  # the Functions host logs a failed invocation and keeps the schedule
            log.exception("timer %s failed", self.function_name)


def collect_timers(functions: Iterable[Any], settings: Mapping[str, str] | None = None) -> list[Timer]:
    """The timer triggers of an indexed app whose schedule resolves."""
    environment = os.environ if settings is None else settings
    timers: list[Timer] = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "timerTrigger":
            continue
        binding = trigger.get_dict_repr()
        name = function.get_function_name()
        expression = resolve(str(binding["schedule"]), environment)
        if expression is None:
            log.info("timer %s does not run: its schedule %s is not set", name, binding["schedule"])
            continue
        timers.append(Timer(function_name=name, schedule=Schedule.parse(expression), arg_name=binding["name"],
                            run_on_startup=bool(binding.get("runOnStartup")), handler=function.get_user_function()))
    return timers


class TimerRunner:
    """Starts every timer as a task of the running loop, and cancels them on stop."""

    def __init__(self, timers: list[Timer]) -> None:
        self.timers = timers
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(timer.run(), name=f"timer {timer.function_name}")
                       for timer in self.timers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
