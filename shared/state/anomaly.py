"""Flag sensor readings before they land, from the entities' running stats read once per batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.source_model import Row
from shared.state.running_stats import is_anomaly, update
from shared.state.sensor_stats import KEPT_WINDOWS, WINDOW_MS, newest_window_start


def flag_anomalies(rows: list[Row], stats_by_key: Mapping[str, dict[str, Any] | None]) -> int:
    """Set ``anomaly`` on each sensors row (in offset order per sensor); returns how many were flagged.

    Each sensor's stats start from its entity state (None for a new sensor) and take in the
    batch's readings as they go, so an outlier late in a batch is judged on the earlier ones.
    """
    local: dict[str, dict[str, Any]] = {}
    flagged = 0
    for row in rows:  # in offset order within each partition, as delivered; a sensor keeps to one partition
        key = row["sensor_id"]
        stats = local.get(key)
        if stats is None:
            known = stats_by_key.get(key) or {}
            stats = local[key] = {name: known[name] for name in ("count", "mean", "m2") if name in known}
        value = row["value"]
        anomaly = is_anomaly(stats, value)
        row["anomaly"] = anomaly
        flagged += anomaly
        update(stats, value)
    return flagged


def count_late(rows: list[Row], stats: Mapping[str, dict[str, Any] | None]) -> int:
    """Readings older than the oldest window their sensor keeps: counted late, not windowed."""
    late = 0
    newest: dict[str, int | None] = {}
    for row in rows:
        key = row["sensor_id"]
        if key not in newest:
            newest[key] = newest_window_start(stats.get(key))
        start = newest[key]
        if start is not None and row["_event_time"] < start - (KEPT_WINDOWS - 1) * WINDOW_MS:
            late += 1
    return late
