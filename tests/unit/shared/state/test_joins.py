"""The lookups sources read state through: what each gives back to the invocation."""

from __future__ import annotations

from typing import Any

from shared.state.joins import SENSOR_STATS
from shared.state.sensor_stats import WINDOW_MS

T0 = 1_795_516_200_000


def test_judging_readings_reports_the_late_ones_with_the_flagged_ones() -> None:
    """The late count feeds the batch's late metric: a reading older than the sensor's hour of windows counts."""
    rows: list[dict[str, Any]] = [
        {"sensor_id": "s1", "value": 1.0, "_event_time": T0 - 60 * WINDOW_MS, "_event_time_source": "event"},
        {"sensor_id": "s1", "value": 1.0, "_event_time": T0, "_event_time_source": "event"},
    ]
    outcome = SENSOR_STATS.apply(rows, {"s1": {"minutes": [[T0 // WINDOW_MS, 1.0]]}}, None)  # type: ignore[arg-type]
    assert (outcome.late, outcome.anomalies) == (1, 0)
