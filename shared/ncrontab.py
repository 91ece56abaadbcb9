"""NCRONTAB schedules as the Functions timer trigger reads them: six fields, seconds first (UTC).

``{second} {minute} {hour} {day} {month} {day-of-week}``; each field takes ``*``, numbers,
ranges ``a-b``, steps ``*/n`` or ``a-b/n``, lists ``a,b``, and month or day names. As NCrontab reads them, a
range given high to low is the same range (``22-2`` is 2 to 22, not a wrap past midnight) and a step of 0 is 1. A
five-field expression (no seconds) fires at second 0. Days of the week are 0-6 (Sunday is 0;
7 is refused, as NCrontab refuses it). A day fires only when it matches both the day-of-month and
the day-of-week field, whatever they are: ``0 0 0 1 * Mon`` fires on a 1st that is a Monday, not on
every 1st and every Monday as classic cron's "either" rule would have it (NCrontab, which the
Functions host uses, finds the day of the month, then requires its day of the week).

Settings check each schedule with it, so a value the Functions host would refuse (and with it every
function of the app) is refused where it is read; the local host fires its timers by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import ConfigurationError

_MONTHS = {
    n: i
    for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
_DAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# A day of the month on a weekday (29 February on a Monday) comes round within the calendar's 28-year cycle.
_SEARCH_LIMIT = timedelta(days=366 * 29)


class ScheduleError(ConfigurationError):
    """The expression is not a valid NCRONTAB schedule."""


def _number(token: str, names: dict[str, int], field: str) -> int:
    lowered = token.lower()
    if lowered in names:
        return names[lowered]
    if not token.isdigit():
        raise ScheduleError(f"{field}: not a number: {token!r}")
    return int(token)


def _field(text: str, field: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """The values of one field (``field`` names it in an error), each from ``low`` to ``high``."""
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ScheduleError(f"{field}: bad step in {part!r}")
        step = max(1, int(step_text)) if step_text else 1  # NCrontab takes a step of 0 as 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, last = span.split("-", 1)
            start, end = sorted((_number(first, names or {}, field), _number(last, names or {}, field)))  # as NCrontab
        else:
            start = _number(span, names or {}, field)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"{field}: {part!r} is outside {low}-{high}")
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
            raise ScheduleError(f"{expression!r}: expected 6 fields (seconds first), got {len(fields)}")
        second, minute, hour, day, month, weekday = fields
        return cls(
            _field(second, "second", 0, 59),
            _field(minute, "minute", 0, 59),
            _field(hour, "hour", 0, 23),
            _field(day, "day of month", 1, 31),
            _field(month, "month", 1, 12, _MONTHS),
            _field(weekday, "day of week", 0, 6, _DAYS),
        )

    def _day_matches(self, moment: datetime) -> bool:
        return moment.day in self.days and (moment.weekday() + 1) % 7 in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first firing time strictly after ``moment`` (same time zone as ``moment``)."""
        current = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment + _SEARCH_LIMIT
        while current <= limit:
            if current.month not in self.months:
                current = (current.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            elif not self._day_matches(current):
                current = current.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif current.hour not in self.hours:
                current = current.replace(minute=0, second=0) + timedelta(hours=1)
            elif current.minute not in self.minutes:
                current = current.replace(second=0) + timedelta(minutes=1)
            elif current.second not in self.seconds:
                current += timedelta(seconds=1)
            else:
                return current
        raise ScheduleError("schedule never fires")
