"""Anomaly flags from running stats: none before thirty readings, then outliers flagged."""

from __future__ import annotations

from typing import Any

from shared.state.anomaly import count_late, flag_anomalies
from shared.state.carried import Carried, Carry
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


def _late_rows(times: list[int], source: str = "event") -> list[dict[str, Any]]:
    return [{"sensor_id": "s1", "_event_time": t, "_event_time_source": source} for t in times]


def test_a_reading_is_late_only_when_older_than_the_oldest_of_the_sixty_windows_kept() -> None:
    """The sensor's newest window starts at minute 100: minutes 41..100 are kept, so a reading at the start of
    minute 41 is windowed and one a millisecond before it is late, as the entity's fold decides."""
    minute = 60_000
    stats = {"s1": {"minutes": [[100, 1.0]]}}
    assert count_late(_late_rows([41 * minute]), stats) == 0
    assert count_late(_late_rows([41 * minute - 1, 0]), stats) == 2
    assert count_late(_late_rows([0], source="none"), stats) == 0  # no time of its own: taken as now
    assert count_late(_late_rows([0]), {"s1": None}) == 0  # a new sensor has no window to be late to


def _carried_rows(values: list[float], first_offset: int) -> list[dict[str, Any]]:
    return [
        {"sensor_id": "s1", "value": v, "_topic": "sensors", "_partition": 0, "_offset": first_offset + i}
        for i, v in enumerate(values)
    ]


def test_readings_carried_from_the_workers_earlier_batch_count_before_the_state_is_read_with_them() -> None:
    """With a carry, an outlier is judged on the batch's earlier readings and on the earlier batch's, which the
    bucket as read (no state yet) does not hold: the flags do not depend on how readings were cut into batches."""
    carried, homes, read = Carried(), {"s1": "~b0of1"}, {"~b0of1": None}
    steady = [10.0 + (i % 3) * 0.5 for i in range(30)]
    assert flag_anomalies(_carried_rows([*steady, 100.0], 0), {}, Carry(carried, homes, read)) == 1
    assert flag_anomalies(_carried_rows([100.0], 31), {}, Carry(carried, homes, read)) == 1
    assert flag_anomalies(_carried_rows([100.0], 31), {}) == 0  # without the carry: a new sensor's first reading
