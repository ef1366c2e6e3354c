"""EventBridge schedule expressions, evaluated as EventBridge does: ``rate(N unit)`` and
``cron(minutes hours day-of-month month day-of-week year)`` (UTC, six fields, ``?`` in
one of the two day fields, ``L``/``W``/``#`` not supported here and refused clearly).

The local agent reads each schedule rule's own expression from the emulator and asks
:func:`next_fire` when it is due; moto stores schedules but never fires them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipelines.core.errors import MlopsError

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


class ScheduleError(MlopsError):
    """A schedule expression EventBridge would refuse (or one this evaluator cannot)."""


@dataclass(frozen=True)
class Rate:
    seconds: int


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: '?' or '*'
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1 = Sunday, as EventBridge counts
    years: frozenset[int] | None
    days_any: bool
    weekdays_any: bool


def parse(expression: str) -> Rate | Cron:
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ScheduleError(f"{expression}: the rate must be at least 1.")
        if (value == 1) != (not unit.endswith("s")):
            raise ScheduleError(
                f"{expression}: EventBridge wants a singular unit for 1 and plural otherwise "
                "(rate(1 minute), rate(5 minutes))."
            )
        return Rate(value * _UNITS[unit.rstrip("s")])
    cron = _CRON.match(expression)
    if not cron:
        raise ScheduleError(
            f"Unknown schedule expression {expression!r}: use rate(N unit) or cron(6 fields)."
        )
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression}: cron needs 6 fields (minutes hours day-of-month month "
            "day-of-week year)."
        )
    minute, hour, day, month, weekday, year = fields
    if (day == "?") == (weekday == "?"):
        raise ScheduleError(
            f"{expression}: exactly one of day-of-month and day-of-week must be '?'."
        )
    return Cron(
        minutes=_field(minute, 0, 59, {}, expression),
        hours=_field(hour, 0, 23, {}, expression),
        days=None if day in ("?", "*") else _field(day, 1, 31, {}, expression),
        months=_field(month, 1, 12, _MONTHS, expression),
        weekdays=None if weekday in ("?", "*") else _field(weekday, 1, 7, _DAYS, expression),
        years=None if year == "*" else _field(year, 1970, 2199, {}, expression),
        days_any=day in ("?", "*"),
        weekdays_any=weekday in ("?", "*"),
    )


def _value(text: str, names: dict[str, int], expression: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"{expression}: {text!r} is not a value this evaluator supports.")
    return int(text)


def _field(
    text: str, low: int, high: int, names: dict[str, int], expression: str
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = _value(step_text, {}, expression)
            if step < 1:
                raise ScheduleError(f"{expression}: a step must be at least 1.")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, names, expression), _value(last, names, expression)
        else:
            start = _value(part, names, expression)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ScheduleError(f"{expression}: {part!r} is outside {low}-{high}.")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def next_fire(expression: str | Rate | Cron, after: datetime) -> datetime:
    """The first time strictly after ``after`` at which the schedule fires (UTC)."""
    schedule = parse(expression) if isinstance(expression, str) else expression
    after = after.astimezone(UTC)
    if isinstance(schedule, Rate):
        return after + timedelta(seconds=schedule.seconds)
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = moment + timedelta(days=366 * 5)
    while moment < limit:
        if schedule.years is not None and moment.year not in schedule.years:
            moment = moment.replace(month=1, day=1, hour=0, minute=0) + _years(1, moment)
            continue
        if moment.month not in schedule.months or not _day_matches(schedule, moment):
            moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if moment.hour not in schedule.hours:
            moment = (moment + timedelta(hours=1)).replace(minute=0)
            continue
        if moment.minute not in schedule.minutes:
            moment += timedelta(minutes=1)
            continue
        return moment
    raise ScheduleError(f"{expression} never fires in the next five years.")


def _years(count: int, moment: datetime) -> timedelta:
    return moment.replace(year=moment.year + count, month=1, day=1) - moment.replace(month=1, day=1)


def _day_matches(schedule: Cron, moment: datetime) -> bool:
    weekday = (moment.isoweekday() % 7) + 1  # Sunday = 1
    if schedule.days is not None and moment.day not in schedule.days:
        return False
    return schedule.weekdays is None or weekday in schedule.weekdays


def due(expression: str, last: datetime, now: datetime) -> bool:
    """Whether the schedule has fired since ``last`` (at most once is acted on)."""
    return next_fire(expression, last) <= now
