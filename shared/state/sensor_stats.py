"""Per sensor: totals, running mean/variance, and tumbling one-minute windows for the last hour.

Windows are kept for the 60 minutes up to the newest event seen. A reading older than the
oldest window kept when it is applied is late: it is counted in ``late`` and in the totals, not
in any window. The windows depend only on which readings were applied; ``late`` also on the order
their batches were applied in (``bucket_state.apply`` orders one batch's): a batch applied after a
later one finds readings late that, in order, would have been windowed and aged out of the hour
since. The count less the windows' counts (late or aged out) is the same in any order.
Anomalies are counted from the flag processing put on the landed row (same rule, same
stats), so state and lake agree.

A sensor's windows are most of its state, and the state decides how many sensors a key bucket
holds under 256 KB (``shared.state.registry``), so they are stored compactly under ``minutes``:
one entry per minute with readings, sorted, its minute (epoch minutes) as the difference from the
entry before; ``[delta, value]`` for a minute of one reading, ``[delta, min, max]`` for two (their
sum is min + max), ``[delta, count, min, max, sum]`` for more; sums are kept to 15 significant digits
(float addition's own noise dropped).
State written before holds ``windows`` of ``[start_ms, count, min, max, sum]`` (the first release:
objects of those fields and their mean): it is read as is and rewritten compactly by the sensor's next
readings or a migration (``upgrade``).
"""

from __future__ import annotations

import bisect
from typing import Any

from shared.source_model import Row
from shared.state.offsets import per_key_reduce
from shared.state.running_stats import update_finite

ENTITY = "sensor_stats"
WINDOW_MS = 60_000
KEPT_WINDOWS = 60
MINUTES = "minutes"
LEGACY_WINDOWS = "windows"

Window = list[Any]  # [start_ms, count, min, max, sum]


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, value, anomaly]``."""
    return [row["_offset"], row["_event_time"], row["value"], bool(row.get("anomaly", False))]


def _sum(total: float, value: float) -> float:
    return float(f"{total + value:.15g}")


def _listed(window: Window | dict[str, Any]) -> Window:
    """A window stored before ``minutes`` as ``[start_ms, count, min, max, sum]`` (the first release: an object)."""
    if isinstance(window, dict):
        return [window["start"], window["count"], window["min"], window["max"], window["sum"]]
    return list(window)


def windows_of(state: dict[str, Any]) -> list[Window]:
    """The kept windows, oldest first, as ``[start_ms, count, min, max, sum]`` (any stored form)."""
    if LEGACY_WINDOWS in state:
        return [_listed(window) for window in state[LEGACY_WINDOWS]]
    windows: list[Window] = []
    minute = 0
    for entry in state.get(MINUTES, []):
        minute += entry[0]
        if len(entry) == 2:
            windows.append([minute * WINDOW_MS, 1, entry[1], entry[1], entry[1]])
        elif len(entry) == 3:
            windows.append([minute * WINDOW_MS, 2, entry[1], entry[2], _sum(entry[1], entry[2])])
        else:
            windows.append([minute * WINDOW_MS, *entry[1:]])
    return windows


def newest_window_start(state: dict[str, Any] | None) -> int | None:
    """The start (ms) of the sensor's newest window; None before its first windowed reading."""
    if not state:
        return None
    if LEGACY_WINDOWS in state:
        return _listed(state[LEGACY_WINDOWS][-1])[0] if state[LEGACY_WINDOWS] else None
    entries = state.get(MINUTES)
    return sum(entry[0] for entry in entries) * WINDOW_MS if entries else None


def _store(state: dict[str, Any], windows: list[Window]) -> None:
    entries: list[list[Any]] = []
    previous = 0
    for start, count, low, high, total in windows:
        minute = start // WINDOW_MS
        delta = minute - previous
        entries.append(
            [delta, low] if count == 1 else [delta, low, high] if count == 2 else [delta, count, low, high, total]
        )
        previous = minute
    state.pop(LEGACY_WINDOWS, None)
    state[MINUTES] = entries


def _add(windows: list[Window], event_ms: int, value: float) -> bool:
    """Add the reading to its minute; False when it is older than every window kept (late)."""
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
    window[4] = value if window[1] == 1 else _sum(window[4], value)  # as a one-reading minute is read back
    if windows[0][0] < oldest_kept:
        del windows[: bisect.bisect_left(windows, oldest_kept, key=lambda w: w[0])]
    return True


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a sensor's state with its windows in today's form (what its next reading would store)."""
    upgraded = dict(state)
    if LEGACY_WINDOWS in upgraded:
        _store(upgraded, windows_of(upgraded))
    return upgraded


def windows_view(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The windows as the query API returns them: start, count, min, max, mean."""
    return [
        {"start": start, "count": count, "min": low, "max": high, "mean": total / count}
        for start, count, low, high, total in windows_of(state)
    ]


def fold(state: dict[str, Any], events: list[list[Any]], part: dict[str, Any]) -> None:
    """Take in one batch's readings of this sensor not applied before (in the order ``bucket_state.apply`` gives)."""
    windows = windows_of(state)
    for _offset, event_ms, value, anomaly in events:
        update_finite(state, value)
        state["min"] = min(state.get("min", value), value)
        state["max"] = max(state.get("max", value), value)
        if event_ms >= state.get("last_time", event_ms):
            state["last_value"], state["last_time"] = value, event_ms
        state["anomalies"] = state.get("anomalies", 0) + int(anomaly)
        if not _add(windows, event_ms, value):
            state["late"] = state.get("late", 0) + 1
    _store(state, windows)


reduce = per_key_reduce(ENTITY, fold)
