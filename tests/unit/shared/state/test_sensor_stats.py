"""A sensor's windows stored compactly: the same windows as before, fewer bytes, old state still read."""

from __future__ import annotations

import json
import random
from typing import Any

from shared.state import sensor_stats
from shared.state.anomaly import count_late
from shared.state.query_api import public_state
from shared.state.sensor_stats import LEGACY_WINDOWS, MINUTES, WINDOW_MS, fold, newest_window_start, windows_of

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
