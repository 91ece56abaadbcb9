"""Welford's running stats and the anomaly rule that processing and the sensor entity share."""

from __future__ import annotations

import statistics
from typing import Any

from shared.state.running_stats import is_anomaly, update


def _stats_of(values: list[float]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for value in values:
        update(stats, value)
    return stats


def test_running_mean_and_variance_match_the_batch_formulas() -> None:
    """``m2`` is the sum of squared deviations: the sample variance is ``m2 / (count - 1)``."""
    values = [3.0, 7.5, 1.25, 10.0, 4.0, 6.5]
    stats = _stats_of(values)
    assert stats["count"] == len(values)
    assert abs(stats["mean"] - statistics.mean(values)) < 1e-12
    assert abs(stats["m2"] / (stats["count"] - 1) - statistics.variance(values)) < 1e-9


def test_the_threshold_is_four_sample_standard_deviations() -> None:
    """Thirty readings alternating 9 and 11: mean 10, sample sd sqrt(30/29) (four of them: 4.068). A reading
    4.05 away is not flagged, though it lies outside four population sds (4.0); one 4.1 away is."""
    stats = _stats_of([9.0, 11.0] * 15)
    assert not is_anomaly(stats, 14.05)
    assert is_anomaly(stats, 14.1)


def test_a_steady_sensor_does_not_flag_its_own_value() -> None:
    """Thirty identical readings have no spread: the same value again is not an anomaly, any other is."""
    stats = _stats_of([20.0] * 30)
    assert not is_anomaly(stats, 20.0)
    assert is_anomaly(stats, 20.5)
