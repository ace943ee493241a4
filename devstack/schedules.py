"""EventBridge schedule expressions: when does `rate(...)` or `cron(...)` fire next.

EventBridge crons have six fields (minutes hours day-of-month month day-of-week year), number
the days of the week 1-7 = SUN-SAT and insist that one of the two day fields is `?`. The first
five fields are translated to croniter's dialect; the year field is handled here.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from croniter import CroniterError, croniter

__all__ = ["InvalidScheduleExpression", "next_fire"]


class InvalidScheduleExpression(ValueError):
    """The expression is not one EventBridge would accept (or one this emulator can evaluate)."""


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_DAY_NAMES = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
_YEARS = (1970, 2199)


def next_fire(expression: str, after: datetime) -> datetime | None:
    """The first time strictly after `after` at which `expression` fires, in UTC.

    A rate fires one period after `after` (EventBridge counts rates from the rule's creation,
    so the caller passes the creation time, then each fire time). Returns None when a cron's
    year field allows no year from `after` on. Raises InvalidScheduleExpression.
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    after = after.astimezone(timezone.utc)
    rate = _RATE.match(expression)
    if rate:
        return after + _rate_period(int(rate.group(1)), rate.group(2), expression)
    cron = _CRON.match(expression)
    if cron:
        return _next_cron(cron.group(1), after, expression)
    raise InvalidScheduleExpression(
        f"{expression!r}: expected 'rate(<n> <unit>)' or 'cron(<6 fields>)'"
    )


def _rate_period(value: int, unit: str, expression: str) -> timedelta:
    # EventBridge rejects 'rate(1 minutes)' and 'rate(5 minute)'; so do we, before a deploy does.
    if value < 1:
        raise InvalidScheduleExpression(f"{expression!r}: the rate must be a positive integer")
    if (value == 1) != (not unit.endswith("s")):
        raise InvalidScheduleExpression(
            f"{expression!r}: the unit must be singular for 1 and plural otherwise"
        )
    return value * _UNIT[unit.rstrip("s")]


def _next_cron(body: str, after: datetime, expression: str) -> datetime | None:
    fields = body.split()
    if len(fields) != 6:
        raise InvalidScheduleExpression(f"{expression!r}: a cron has 6 fields, got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = (f.upper() for f in fields)
    if (day_of_month == "?") == (day_of_week == "?"):
        raise InvalidScheduleExpression(
            f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        )
    unix = " ".join(
        [
            minutes,
            hours,
            _day_of_month(day_of_month, expression),
            month,
            _day_of_week(day_of_week, expression),
        ]
    )
    years = _years(year, expression)
    try:
        start = after
        while True:
            candidate: datetime = croniter(unix, start).get_next(datetime)
            if years is None or candidate.year in years:
                return candidate.astimezone(timezone.utc)
            later = [y for y in years if y > candidate.year]
            if not later:
                return None
            start = datetime(min(later), 1, 1, tzinfo=timezone.utc) - timedelta(seconds=1)
    except CroniterError as error:
        raise InvalidScheduleExpression(f"{expression!r}: {error}") from error


def _day_of_month(field: str, expression: str) -> str:
    if field == "?":
        return "*"
    if "LW" in field:
        raise InvalidScheduleExpression(f"{expression!r}: 'LW' is not supported locally")
    return field


def _day_of_week(field: str, expression: str) -> str:
    if field == "?":
        return "*"
    return ",".join(_day_of_week_item(item, expression) for item in field.split(","))


def _day_of_week_item(item: str, expression: str) -> str:
    """One list item of an AWS day-of-week field in croniter's terms (SUN is 0, not 1)."""
    if item == "L":
        return "6"  # the last day of the week, Saturday
    if item.endswith("L"):
        return "L" + _weekday(item[:-1], expression)  # the last <day> of the month
    if "#" in item:
        day, nth = item.split("#", 1)
        return f"{_weekday(day, expression)}#{nth}"
    base, slash, step = item.partition("/")
    if base == "*":
        # Both dialects read '*/n' from Sunday on, so '*/2' is SUN,TUE,THU,SAT in each.
        return item
    low, dash, high = base.partition("-")
    translated = _weekday(low, expression) + (dash + _weekday(high, expression) if dash else "")
    return translated + slash + step


def _weekday(token: str, expression: str) -> str:
    if token in _DAY_NAMES:
        return token
    if token.isdigit() and 1 <= int(token) <= 7:
        return str(int(token) - 1)
    raise InvalidScheduleExpression(
        f"{expression!r}: day-of-week values are 1-7 (SUN-SAT) or SUN..SAT, got {token!r}"
    )


def _years(field: str, expression: str) -> frozenset[int] | None:
    """The allowed years, or None for every year."""
    if field == "*":
        return None
    years: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if base == "*":
            low, high = _YEARS
        else:
            low_text, dash, high_text = base.partition("-")
            low = _year(low_text, expression)
            high = _year(high_text, expression) if dash else (_YEARS[1] if slash else low)
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if slash and step is None:
            raise InvalidScheduleExpression(f"{expression!r}: bad year step in {item!r}")
        if low > high:
            raise InvalidScheduleExpression(f"{expression!r}: empty year range {item!r}")
        years.update(range(low, high + 1, step or 1))
    return frozenset(years)


def _year(token: str, expression: str) -> int:
    if token.isdigit() and _YEARS[0] <= int(token) <= _YEARS[1]:
        return int(token)
    raise InvalidScheduleExpression(
        f"{expression!r}: years are {_YEARS[0]}-{_YEARS[1]}, got {token!r}"
    )
