"""Welford's running mean and variance, and the anomaly rule both processing and the entity use."""

from __future__ import annotations

import math
from typing import Any

MIN_READINGS = 30
DEVIATIONS = 4.0


def update(stats: dict[str, Any], value: float) -> None:
    """Add one value to ``count``, ``mean`` and ``m2`` (sum of squared deviations)."""
    count = stats.get("count", 0) + 1
    mean = stats.get("mean", 0.0)
    delta = value - mean
    mean += delta / count
    stats["count"], stats["mean"] = count, mean
    stats["m2"] = stats.get("m2", 0.0) + delta * (value - mean)


def is_anomaly(stats: dict[str, Any], value: float) -> bool:
    """Outside the rolling mean +- 4 standard deviations, once 30 readings are known."""
    count = stats.get("count", 0)
    if count < MIN_READINGS:
        return False
    deviation = math.sqrt(stats.get("m2", 0.0) / (count - 1))
    return bool(abs(value - stats["mean"]) > DEVIATIONS * deviation)
