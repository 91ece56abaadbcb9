"""Per sensor: totals, running mean/variance, and tumbling one-minute windows for the last hour.

Windows are kept for the 60 minutes up to the newest event seen. A reading older than the
oldest window kept is late: it is counted in ``late`` and in the totals, not in any window.
Anomalies are counted from the flag processing put on the landed row (same rule, same
stats), so state and lake agree.
"""

from __future__ import annotations

from typing import Any

from shared.sources.base import Row
from shared.state.offsets import advance, unapplied
from shared.state.running_stats import update

ENTITY = "sensor_stats"
WINDOW_MS = 60_000
KEPT_WINDOWS = 60


def compact(row: Row) -> list[Any]:
    """``[offset, event_ms, value, anomaly]``."""
    return [row["_offset"], row["_event_time"], row["value"], bool(row.get("anomaly", False))]


def _window(state: dict[str, Any], event_ms: int, value: float) -> bool:
    """Add the reading to its minute; False when it is older than every window kept (late)."""
    windows: list[dict[str, Any]] = state.setdefault("windows", [])
    start = event_ms - event_ms % WINDOW_MS
    newest = max([w["start"] for w in windows] + [start])
    oldest_kept = newest - (KEPT_WINDOWS - 1) * WINDOW_MS
    if start < oldest_kept:
        return False
    window = next((w for w in windows if w["start"] == start), None)
    if window is None:
        window = {"start": start, "count": 0, "min": value, "max": value, "sum": 0.0}
        windows.append(window)
        windows.sort(key=lambda w: w["start"])
    window["count"] += 1
    window["min"], window["max"] = min(window["min"], value), max(window["max"], value)
    window["sum"] += value
    window["mean"] = window["sum"] / window["count"]
    windows[:] = [w for w in windows if w["start"] >= oldest_kept]
    return True


def reduce(state: dict[str, Any], operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Called by the entity for each ``apply`` signal: one batch's readings of this sensor."""
    if operation != "apply":
        raise ValueError(f"{ENTITY} has no operation {operation!r}")
    for _offset, event_ms, value, anomaly in unapplied(state, payload):
        update(state, value)
        state["min"] = min(state.get("min", value), value)
        state["max"] = max(state.get("max", value), value)
        if event_ms >= state.get("last_time", event_ms):
            state["last_value"], state["last_time"] = value, event_ms
        state["anomalies"] = state.get("anomalies", 0) + int(anomaly)
        if not _window(state, event_ms, value):
            state["late"] = state.get("late", 0) + 1
    advance(state, payload)
    return state
