"""Per sensor: totals, running mean/variance, and tumbling one-minute windows for the last hour.

Windows are kept for the 60 minutes up to the newest event seen. A reading older than the
oldest window kept is late: it is counted in ``late`` and in the totals, not in any window.
Anomalies are counted from the flag processing put on the landed row (same rule, same
stats), so state and lake agree.
"""

from __future__ import annotations

import bisect
from typing import Any

from shared.source_model import Row
from shared.state.offsets import per_key_reduce
from shared.state.running_stats import update

ENTITY = "sensor_stats"
WINDOW_MS = 60_000
KEPT_WINDOWS = 60


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, value, anomaly]``."""
    return [row["_offset"], row["_event_time"], row["value"], bool(row.get("anomaly", False))]


def _window(state: dict[str, Any], event_ms: int, value: float) -> bool:
    """Add the reading to its minute; False when it is older than every window kept (late).

    Windows are ``[start, count, min, max, sum]`` lists sorted by start (compact JSON: entity
    state is serialised on every operation); ``windows_view`` shows them as objects.
    """
    windows: list[list[Any]] = state.setdefault("windows", [])
    start = event_ms - event_ms % WINDOW_MS
    newest = max(windows[-1][0], start) if windows else start
    oldest_kept = newest - (KEPT_WINDOWS - 1) * WINDOW_MS
    if start < oldest_kept:
        return False
    index = bisect.bisect_left(windows, start, key=lambda w: w[0])
    if index == len(windows) or windows[index][0] != start:
        windows.insert(index, [start, 0, value, value, 0.0])
    window = windows[index]
    window[1] += 1
    window[2], window[3] = min(window[2], value), max(window[3], value)
    window[4] += value
    if windows[0][0] < oldest_kept:
        del windows[: bisect.bisect_left(windows, oldest_kept, key=lambda w: w[0])]
    return True


def windows_view(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows as the query API returns them: start, count, min, max, mean."""
    return [
        {"start": start, "count": count, "min": low, "max": high, "mean": total / count}
        for start, count, low, high, total in state.get("windows", [])
    ]


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's readings of this sensor not applied before (in offset order)."""
    for _offset, event_ms, value, anomaly in events:
        update(state, value)
        state["min"] = min(state.get("min", value), value)
        state["max"] = max(state.get("max", value), value)
        if event_ms >= state.get("last_time", event_ms):
            state["last_value"], state["last_time"] = value, event_ms
        state["anomalies"] = state.get("anomalies", 0) + int(anomaly)
        if not _window(state, event_ms, value):
            state["late"] = state.get("late", 0) + 1


reduce = per_key_reduce(ENTITY, fold)
