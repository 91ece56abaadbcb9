"""Flag sensor readings before they land, from the entities' running stats read once per batch and what the
worker's earlier batches added to them since (``shared.state.carried``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.lineage import NO_EVENT_TIME
from shared.source_model import Row
from shared.state.carried import Carry
from shared.state.running_stats import is_anomaly, update
from shared.state.sensor_stats import KEPT_WINDOWS, WINDOW_MS, newest_window_start


def flag_anomalies(
    rows: list[Row], stats_by_key: Mapping[str, dict[str, Any] | None], carry: Carry | None = None
) -> int:
    """Set ``anomaly`` on each sensors row (in offset order per sensor); returns how many were flagged.

    Each sensor's stats start from its entity state (None for a new sensor), plus what ``carry`` holds
    of the worker's earlier batches that the state read does not (``shared.state.carried``: without it,
    the flags would depend on how the readings were cut into batches), and take in the batch's readings
    as they go, so an outlier late in a batch is judged on the earlier ones. A reading the state read
    holds already (its batch redelivered after it was applied) is judged, not taken in again.
    """
    by_sensor: dict[str, list[Row]] = {}
    for row in rows:  # in offset order within each partition, as delivered; a sensor keeps to one partition
        by_sensor.setdefault(row["sensor_id"], []).append(row)
    return sum(_judge(key, readings, stats_by_key.get(key), carry) for key, readings in by_sensor.items())


def _judge(key: str, readings: list[Row], known: dict[str, Any] | None, carry: Carry | None) -> int:
    held = known or {}
    stats: dict[str, Any] = {name: held[name] for name in ("count", "mean", "m2") if name in held}
    for value in carry.start(key, readings) if carry else []:
        update(stats, value)
    flagged = 0
    for row in readings:
        value = row["value"]
        anomaly = is_anomaly(stats, value)
        row["anomaly"] = anomaly
        flagged += anomaly
        if carry is None or carry.add(key, row, value):
            update(stats, value)
    return flagged


def count_late(rows: list[Row], stats: Mapping[str, dict[str, Any] | None]) -> int:
    """Readings older than the oldest window their sensor keeps: counted late, not windowed. A reading with no time
    of its own is not: its entity takes it as happening when it is signalled (``aggregate.signals_for``)."""
    late = 0
    newest: dict[str, int | None] = {}
    for row in rows:
        if row.get("_event_time_source") == NO_EVENT_TIME:
            continue
        key = row["sensor_id"]
        if key not in newest:
            newest[key] = newest_window_start(stats.get(key))
        start = newest[key]
        if start is not None and row["_event_time"] < start - (KEPT_WINDOWS - 1) * WINDOW_MS:
            late += 1
    return late
