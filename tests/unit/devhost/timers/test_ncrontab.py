"""NCRONTAB schedules: six fields, seconds first (five accepted); bad ones refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.timers.ncrontab import Schedule, ScheduleError


def test_ncrontab_six_fields_seconds_first() -> None:
    moment = datetime(2026, 11, 24, 10, 30, 5, tzinfo=UTC)
    assert Schedule.parse("*/10 * * * * *").next_after(moment) == moment.replace(second=10)
    assert Schedule.parse("0 30 9 * * Mon-Fri").next_after(moment) == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert Schedule.parse("0 0 0 29 Feb *").next_after(moment) == datetime(2028, 2, 29, tzinfo=UTC)
    assert Schedule.parse("*/5 * * * *").next_after(moment) == moment.replace(minute=35, second=0)  # five fields


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * * *", "*/0 * * * * *", "a * * * * *", "0 0 0 31 2 *"])
def test_bad_schedules_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(datetime(2026, 1, 1, tzinfo=UTC))
