"""Welford's running mean and variance, and the anomaly rule both processing and the entity use."""

from __future__ import annotations

import math
from typing import Any

from shared.state.offsets import BadEvent

MIN_READINGS = 30
DEVIATIONS = 4.0
# Far past any reading, and small enough that no count of readings overflows the stats: m2 grows by at most
# (2 * MAX_READING) ** 2 a reading. A state that took a larger one could refuse every later reading.
MAX_READING = 1e100


def _updated(stats: dict[str, Any], value: float) -> tuple[int, float, float]:
    count = stats.get("count", 0) + 1
    mean = stats.get("mean", 0.0)
    delta = value - mean
    mean += delta / count
    return count, mean, stats.get("m2", 0.0) + delta * (value - mean)


def update(stats: dict[str, Any], value: float) -> None:
    """Add one value to ``count``, ``mean`` and ``m2`` (sum of squared deviations)."""
    stats["count"], stats["mean"], stats["m2"] = _updated(stats, value)


def update_finite(stats: dict[str, Any], value: Any) -> None:
    """``update`` for stats that are stored (as JSON, which has no NaN or infinity): ``BadEvent``, ``stats``
    unchanged, for a value that is not a finite number within ``MAX_READING`` or that would leave them not finite."""
    if not (isinstance(value, int | float) and math.isfinite(value) and abs(value) <= MAX_READING):
        raise BadEvent(f"reading {value!r} is not a finite number within {MAX_READING:g}")
    count, mean, m2 = _updated(stats, value)
    if not (math.isfinite(mean) and math.isfinite(m2)):
        raise BadEvent(f"reading {value!r} would make the running stats not finite")
    stats["count"], stats["mean"], stats["m2"] = count, mean, m2


def is_anomaly(stats: dict[str, Any], value: float) -> bool:
    """Outside the rolling mean +- 4 standard deviations, once 30 readings are known."""
    count = stats.get("count", 0)
    if count < MIN_READINGS:
        return False
    deviation = math.sqrt(stats.get("m2", 0.0) / (count - 1))
    return bool(abs(value - stats["mean"]) > DEVIATIONS * deviation)
