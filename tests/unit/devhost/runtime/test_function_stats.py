"""The live line of a terminal: processing functions first, compact, never wider than the terminal."""

from __future__ import annotations

from devhost.runtime.function_stats import HostStats

SOURCES = ("clickstream", "mobile", "sensors", "users", "orders")


def _host_stats() -> HostStats:
    """As the host indexes function_app: the generators first, then the processors, then the rest."""
    stats = HostStats()
    for source in SOURCES:
        stats.add(f"generate_{source}", "timerTrigger").invoked()
    for source in SOURCES:
        processor = stats.add(f"process_{source}", "kafkaTrigger")
        processor.invoked(100)
        processor.lag = 0
    stats.add("user_activity", "entityTrigger").invoked(1)
    stats.add("get_state", "httpTrigger")  # never invoked: not shown
    return stats


def test_the_live_line_shows_processing_functions_first_and_fits_the_terminal() -> None:
    stats = _host_stats()
    line = stats.status_line(79)
    assert len(line) <= 79
    assert line.startswith("process_clickstream 100 ev lag 0 | process_mobile 100 ev lag 0")
    assert line.endswith(" more") and "generate_" not in line


def test_a_wide_terminal_shows_every_function_that_ran() -> None:
    stats = _host_stats()
    stats.functions["process_sensors"].waiting[2] = {"first_offset": 40, "last_offset": 59, "attempts": 3}
    line = stats.status_line(1000)
    shown = [part.split(" ")[0] for part in line.split(" | ")]
    assert shown == [f"process_{s}" for s in SOURCES] + [f"generate_{s}" for s in SOURCES] + ["user_activity"]
    assert "process_sensors 100 ev lag 0 WAITING p2 offsets 40-59 attempts 3 |" in line


def test_a_terminal_narrower_than_one_function_still_gets_a_line_that_fits() -> None:
    line = _host_stats().status_line(20)
    assert len(line) <= 20 and line.startswith("process_") and line.endswith(" more")


def test_the_summary_counts_events_only_where_the_host_counts_them() -> None:
    """A generator's row said ``events 0`` although each tick produced records: a timer (or HTTP) invocation
    carries no events, so its events are ``-``, as its lag is."""
    rows = {line.split()[0]: line.split()[1:] for line in _host_stats().summary().splitlines()[1:]}
    assert rows["generate_orders"] == ["timerTrigger", "1", "-", "0", "-"]
    assert rows["get_state"] == ["httpTrigger", "0", "-", "0", "-"]
    assert rows["process_orders"] == ["kafkaTrigger", "1", "100", "0", "0"]
    assert rows["user_activity"] == ["entityTrigger", "1", "1", "0", "-"]
