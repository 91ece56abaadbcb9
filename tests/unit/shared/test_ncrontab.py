"""NCRONTAB schedules: six fields, seconds first (five accepted); bad ones refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.ncrontab import Schedule, ScheduleError


def test_ncrontab_six_fields_seconds_first() -> None:
    moment = datetime(2026, 11, 24, 10, 30, 5, tzinfo=UTC)
    assert Schedule.parse("*/10 * * * * *").next_after(moment) == moment.replace(second=10)
    assert Schedule.parse("0 30 9 * * Mon-Fri").next_after(moment) == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert Schedule.parse("0 0 0 29 Feb *").next_after(moment) == datetime(2028, 2, 29, tzinfo=UTC)
    assert Schedule.parse("*/5 * * * *").next_after(moment) == moment.replace(minute=35, second=0)  # five fields


@pytest.mark.parametrize(
    "expression", ["* * * *", "61 * * * * *", "*/a * * * * *", "a * * * * *", "0 0 0 31 2 *", "0 0 20-25 * * *"]
)
def test_bad_schedules_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("written", "as_read"),
    [
        ("0 0 22-2 * * *", "0 0 2-22 * * *"),
        ("0 0 9 * * Fri-Mon", "0 0 9 * * Mon-Fri"),
        ("*/0 * * * * *", "* * * * * *"),
    ],
)
def test_a_range_high_to_low_and_a_step_of_0_are_read_as_ncrontab_reads_them(written: str, as_read: str) -> None:
    """NCrontab (the Functions host's) swaps a range given high to low (22-2 is 2 to 22, no wrap past midnight) and
    takes a step below 1 as 1: the host loads these, so they are no reason to refuse the app's settings."""
    assert Schedule.parse(written) == Schedule.parse(as_read)


def test_both_day_fields_restricted_fire_only_on_days_matching_both() -> None:
    """NCrontab, as the Functions host reads a schedule, requires the day of the month and the day of the week
    both, not cron's either: "midnight on the 1st, Mondays" next fires on the first 1st that is a Monday."""
    sunday = datetime(2026, 12, 6, tzinfo=UTC)
    assert Schedule.parse("0 0 0 1 * Mon").next_after(sunday) == datetime(2027, 2, 1, tzinfo=UTC)
    first_monday = datetime(2026, 12, 7, tzinfo=UTC)
    assert Schedule.parse("0 0 0 1-7 * 1").next_after(first_monday) == datetime(2027, 1, 4, tzinfo=UTC)


@pytest.mark.parametrize("weekday", ["7", "5-7", "*/2,7"])
def test_day_of_week_7_is_refused_naming_the_field(weekday: str) -> None:
    """NCrontab's days of the week are 0-6 (Sunday is 0): a 7 fails the host's start in Azure, so it fails here."""
    with pytest.raises(ScheduleError, match="day of week"):
        Schedule.parse(f"0 0 0 * * {weekday}")
    sunday = datetime(2026, 12, 6, tzinfo=UTC)
    assert Schedule.parse("0 0 0 * * 0").next_after(sunday) == datetime(2026, 12, 13, tzinfo=UTC)  # Sunday is 0


def test_a_schedule_that_fires_once_in_decades_is_accepted_as_azure_accepts_it() -> None:
    """Review 15: the search stopped at 5 years, so 29 February on a Monday (next in 2044 from 2026) was refused as
    never firing, and the host would not start; Azure's NCrontab takes it."""
    from datetime import UTC, datetime

    from shared.ncrontab import Schedule

    fires = Schedule.parse("0 0 0 29 2 Mon").next_after(datetime(2026, 12, 6, tzinfo=UTC))
    assert fires == datetime(2044, 2, 29, tzinfo=UTC)
