"""Anomaly flags from running stats: none before thirty readings, then outliers flagged."""

from __future__ import annotations

from typing import Any

from shared.state.anomaly import flag_anomalies
from tests.conftest import FIXED_NOW_MS


def sensor_rows(values: list[float], sensor: str = "s1") -> list[dict[str, Any]]:
    return [
        {"sensor_id": sensor, "value": v, "_partition": 0, "_offset": i, "_event_time": FIXED_NOW_MS, "anomaly": False}
        for i, v in enumerate(values)
    ]


def test_an_outlier_after_thirty_readings_is_flagged() -> None:
    steady = [10.0 + (i % 3) * 0.5 for i in range(30)]
    rows = sensor_rows([*steady, 100.0, 10.5])
    assert flag_anomalies(rows, {}) == 1
    assert [r["anomaly"] for r in rows[-2:]] == [True, False]


def test_no_flags_before_thirty_readings_and_known_stats_count() -> None:
    rows = sensor_rows([10.0] * 5 + [100.0])
    assert flag_anomalies(rows, {}) == 0
    known = {"s1": {"count": 100, "mean": 10.0, "m2": 99.0}}  # standard deviation 1
    assert flag_anomalies(sensor_rows([13.9]), known) == 0
    assert flag_anomalies(sensor_rows([14.1]), known) == 1
