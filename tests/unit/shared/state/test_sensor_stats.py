"""A sensor's windows stored compactly: the same windows as before, fewer bytes, old state still read."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.sources import SOURCES
from shared.state import sensor_stats
from shared.state.anomaly import count_late
from shared.state.bucket_state import UNREADABLE, adopt, apply, key_state
from shared.state.lookups import StateJoiner
from shared.state.query_api import public_state
from shared.state.sensor_stats import LEGACY_WINDOWS, MINUTES, WINDOW_MS, fold, newest_window_start, windows_of
from tests.conftest import FIXED_NOW_MS, context_for
from tests.unit.shared.conftest import ApplyingGateway

T0 = 1_795_516_200_000


def readings(times_and_values: list[tuple[int, float]], first_offset: int = 0) -> list[list[Any]]:
    return [[first_offset + i, t, v, False] for i, (t, v) in enumerate(times_and_values)]


def reference_windows(events: list[list[Any]]) -> list[list[Any]]:
    """The windows computed plainly: every reading within the hour up to the newest, per minute."""
    newest = max(t - t % WINDOW_MS for _, t, _, _ in events)
    by_minute: dict[int, list[float]] = {}
    for _, t, value, _ in events:
        start = t - t % WINDOW_MS
        if start >= newest - 59 * WINDOW_MS:
            by_minute.setdefault(start, []).append(value)
    return [[start, len(vs), min(vs), max(vs), sum(vs)] for start, vs in sorted(by_minute.items())]


def test_windows_read_back_as_computed_plainly_for_random_readings() -> None:
    rng = random.Random(5)
    for _ in range(20):
        times = sorted(T0 + rng.randrange(90 * WINDOW_MS) for _ in range(rng.randrange(1, 200)))
        events = readings([(t, round(rng.uniform(-50, 150), 2)) for t in times])
        state: dict[str, Any] = {}
        for start in range(0, len(events), 7):  # batches of seven readings
            fold(state, events[start : start + 7], {})
        got, expected = windows_of(state), reference_windows(events)
        assert [w[:4] for w in got] == [w[:4] for w in expected]
        assert all(abs(g[4] - e[4]) <= 1e-9 * max(1.0, abs(e[4])) for g, e in zip(got, expected, strict=True))


def test_minutes_of_one_and_two_readings_are_stored_as_their_values_and_minutes_as_differences() -> None:
    state: dict[str, Any] = {}
    minute_readings = [(T0, 1.5), (T0 + WINDOW_MS, 3.0), (T0 + WINDOW_MS + 1, 2.0)]
    fold(state, readings([*minute_readings, *((T0 + 3 * WINDOW_MS + i, v) for i, v in enumerate((4.0, 1.0, 2.5)))]), {})
    assert state[MINUTES] == [[T0 // WINDOW_MS, 1.5], [1, 2.0, 3.0], [2, 3, 1.0, 4.0, 7.5]]
    assert windows_of(state)[1] == [T0 + WINDOW_MS, 2, 2.0, 3.0, 5.0]
    assert newest_window_start(state) == T0 + 3 * WINDOW_MS


def test_a_sum_keeps_no_float_noise() -> None:
    state: dict[str, Any] = {}
    fold(state, readings([(T0, 54.23), (T0 + 1, 71.1)]), {})
    assert 54.23 + 71.1 == 125.32999999999998 and windows_of(state)[0][4] == 125.33


def test_an_hour_of_windows_is_under_half_its_earlier_size() -> None:
    rng = random.Random(7)
    events = readings([(T0 + i * 50_000, round(rng.uniform(10, 90), 2)) for i in range(72)])  # 1.2 a minute
    state: dict[str, Any] = {}
    fold(state, events, {})
    legacy = {name: value for name, value in state.items() if name != MINUTES} | {LEGACY_WINDOWS: windows_of(state)}
    for window in legacy[LEGACY_WINDOWS]:
        window[4] = sum(v for _, t, v, _ in events if t - t % WINDOW_MS == window[0])  # as they were summed
    compact, before = (len(json.dumps(s, separators=(",", ":"))) for s in (state, legacy))
    assert compact < before / 2, (compact, before)


def test_state_written_before_is_read_and_rewritten_compactly_by_the_next_readings() -> None:
    legacy = {"count": 2, "mean": 1.5, "m2": 0.5, LEGACY_WINDOWS: [[T0, 2, 1.0, 2.0, 3.0]]}
    assert windows_of(legacy) == [[T0, 2, 1.0, 2.0, 3.0]] and newest_window_start(legacy) == T0
    assert public_state(legacy)["windows"] == [{"start": T0, "count": 2, "min": 1.0, "max": 2.0, "mean": 1.5}]
    late_row = {"sensor_id": "s1", "_event_time": T0 - 60 * WINDOW_MS}
    assert count_late([late_row], {"s1": legacy}) == 1
    fold(legacy, readings([(T0 + WINDOW_MS, 4.0)], first_offset=2), {})
    assert LEGACY_WINDOWS not in legacy and windows_of(legacy) == [
        [T0, 2, 1.0, 2.0, 3.0],
        [T0 + WINDOW_MS, 1, 4.0, 4.0, 4.0],
    ]


FIRST_RELEASE = {  # as the first release (7a679e7) stored a sensor: windows as objects, high-water marks
    "count": 500,
    "mean": 24.0,
    "m2": 450.0,
    "anomalies": 3,
    "last_value": 24.5,
    "last_time": T0,
    LEGACY_WINDOWS: [{"start": T0, "count": 2, "min": 24.0, "max": 25.0, "sum": 49.0, "mean": 24.5}],
    "_offsets": {"sensors/0": 499},
}


def test_state_of_the_first_release_keeps_its_windows_read_upgraded_and_in_a_bucket() -> None:
    assert windows_of(FIRST_RELEASE) == [[T0, 2, 24.0, 25.0, 49.0]] and newest_window_start(FIRST_RELEASE) == T0
    assert windows_of(sensor_stats.upgrade(FIRST_RELEASE)) == [[T0, 2, 24.0, 25.0, 49.0]]
    assert public_state(FIRST_RELEASE)["windows"][0]["mean"] == 24.5
    bucket: dict[str, Any] = {}
    assert adopt(bucket, {"states": {"s1": FIRST_RELEASE}}) == []
    part = {
        "topic": "sensors",
        "partition": 0,
        "range": [499, 500],
        "keys": {"s1": [[499, T0, 1.0, False], [500, T0 + WINDOW_MS, 26.0, False]]},
    }
    outcome = apply(sensor_stats.fold, bucket, {"parts": [part]})
    held = key_state(outcome.state, "s1") or {}
    assert UNREADABLE not in outcome.state and (held["count"], held["anomalies"]) == (501, 3)  # 499 applied before
    assert windows_of(held) == [[T0, 2, 24.0, 25.0, 49.0], [T0 + WINDOW_MS, 1, 26.0, 26.0, 26.0]]


def test_the_query_api_shows_windows_not_the_stored_form() -> None:
    state: dict[str, Any] = {}
    fold(state, readings([(T0, 10.0), (T0 + 1, 20.0)]), {})
    shown = public_state(state)
    assert MINUTES not in shown and shown["windows"] == sensor_stats.windows_view(state)
    assert shown["windows"] == [{"start": T0, "count": 2, "min": 10.0, "max": 20.0, "mean": 15.0}]


def test_late_readings_are_counted_against_the_newest_window() -> None:
    state: dict[str, Any] = {}
    fold(state, readings([(T0 + 90 * WINDOW_MS, 1.0)]), {})
    rows = [{"sensor_id": "s1", "_event_time": T0 + t * WINDOW_MS} for t in (0, 30, 31, 95)]
    assert count_late(rows, {"s1": state}) == 2  # minutes 0 and 30 are before minute 31, the oldest kept
    assert count_late(rows, {"s1": None}) == 0


def test_windows_do_not_depend_on_how_readings_were_cut_into_batches() -> None:
    rng = random.Random(3)
    for _ in range(200):
        values = [rng.uniform(-1e3, 1e3) for _ in range(rng.randrange(2, 7))]  # full-precision floats
        events = readings([(T0 + i, v) for i, v in enumerate(values)])
        whole: dict[str, Any] = {}
        fold(whole, events, {})
        cut = rng.randrange(1, len(events))
        split: dict[str, Any] = {}
        fold(split, events[:cut], {})
        fold(split, events[cut:], {})
        assert split[MINUTES] == whole[MINUTES]


def test_one_reading_from_a_clock_59_minutes_ahead_keeps_the_hour_of_windows_and_the_last_value(tmp_path: Path) -> None:
    """Inside the hour ahead the landing trusts, so its row keeps that time; its entity takes it as happening now."""
    gateway, joiner = ApplyingGateway(), StateJoiner()
    context = context_for(SOURCES["sensors"], LocalLake(tmp_path))  # its clock: FIXED_NOW_MS
    hour = [sensor_record(i, FIXED_NOW_MS - (59 - i) * WINDOW_MS, 24.0) for i in range(60)]
    skewed = [sensor_record(60, FIXED_NOW_MS + 59 * WINDOW_MS, 25.0)]  # the producer's clock (and CreateTime) ahead
    after = [sensor_record(61 + i, FIXED_NOW_MS + (i + 1) * 1000, 30.0 + i) for i in range(3)]
    for batch in (hour, skewed, after):
        asyncio.run(handle_batch_with_state(context, batch, gateway, joiner))
    state = gateway.key_states("sensor_stats")["s1"]
    assert len(windows_of(state)) == 60 and state.get("late", 0) == 0
    assert (state["count"], state["last_value"]) == (64, 32.0)


def sensor_record(offset: int, event_ms: int, value: float) -> KafkaRecord:
    body = {"sensor_id": "s1", "site": "ams-1", "metric": "temperature", "value": value, "unit": "celsius"}
    body["timestamp"] = datetime.fromtimestamp(event_ms / 1000, UTC).isoformat()
    return KafkaRecord("sensors", 0, offset, "s1", json.dumps(body).encode(), event_ms)


def test_a_reading_with_no_time_of_its_own_is_not_counted_late() -> None:
    """Its entity takes it as happening when signalled (aggregate.signals_for), so it is windowed, not late; the
    metric counted it late by the epoch 0 it landed at."""
    state: dict[str, Any] = {}
    fold(state, readings([(T0, 1.0)]), {})
    untimed = {"sensor_id": "s1", "_event_time": 0, "_event_time_source": "none"}
    assert count_late([untimed], {"s1": state}) == 0
    assert count_late([untimed | {"_event_time_source": "event"}], {"s1": state}) == 1


def test_a_sum_keeps_fifteen_significant_digits() -> None:
    """Only float addition's noise is dropped: a sum of eight significant digits is kept whole."""
    state: dict[str, Any] = {}
    fold(state, readings([(T0, 1234.5678), (T0 + 1, 1000.0001), (T0 + 2, 0.0001)]), {})
    assert windows_of(state)[0][4] == 2234.568


def test_a_reading_in_the_oldest_minute_kept_is_windowed_not_late() -> None:
    """With the newest window at minute 59, minute 0 is still one of the sixty kept: its reading is windowed."""
    state: dict[str, Any] = {}
    fold(state, readings([(T0 + 59 * WINDOW_MS, 1.0), (T0, 2.0)]), {})
    assert state.get("late", 0) == 0 and [w[0] for w in windows_of(state)] == [T0, T0 + 59 * WINDOW_MS]
    fold(state, readings([(T0 - 1, 3.0)], first_offset=2), {})
    assert state["late"] == 1 and len(windows_of(state)) == 2


def test_the_newest_window_of_state_written_before_is_its_last() -> None:
    """Legacy windows are stored oldest first: the newest starts where the last one does."""
    legacy = {LEGACY_WINDOWS: [[T0, 1, 1.0, 1.0, 1.0], [T0 + 30 * WINDOW_MS, 1, 2.0, 2.0, 2.0]]}
    assert newest_window_start(legacy) == T0 + 30 * WINDOW_MS
    assert count_late([{"sensor_id": "s1", "_event_time": T0 - 30 * WINDOW_MS}], {"s1": legacy}) == 1
