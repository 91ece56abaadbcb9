"""Each entity through the durable SDK's own entity handler, with the batch context the extension sends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.state.sensor_stats import windows_view
from shared.state.sessions import INACTIVITY_MS, KEPT_SESSIONS
from tests.conftest import app_functions

T0 = 1_795_516_200_000
MINUTE = 60_000
HANDLERS = {name: f.get_user_function() for name, f in app_functions().items()}


def run_entity(
    name: str, state: dict[str, Any] | None, operations: list[tuple[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One batch for one entity id, as the Durable extension delivers it; returns (new state, results)."""
    context = {
        "self": {"name": name, "key": "k"},
        "state": None if state is None else json.dumps(state),
        "exists": state is not None,
        # signal_entity posts json.dumps(input) as a JSON string: the input is JSON text of JSON text
        "batch": [{"name": op, "input": json.dumps(json.dumps(payload))} for op, payload in operations],
    }
    result = json.loads(HANDLERS[name](json.dumps(context)))
    new_state = json.loads(result["entityState"]) if result["entityExists"] else None
    return new_state, result["results"]


def apply(name: str, state: dict[str, Any] | None, *payloads: dict[str, Any]) -> dict[str, Any]:
    new_state, results = run_entity(name, state, [("apply", p) for p in payloads])
    assert not any(r["isError"] for r in results), results
    assert new_state is not None
    return new_state


def clicks(offsets: range, start_ms: int = T0, step_ms: int = MINUTE, partition: int = 0) -> dict[str, Any]:
    events = [
        [o, start_ms + i * step_ms, "2xx" if o % 3 else "4xx", 100, o == 4, "/index.html"]
        for i, o in enumerate(offsets)
    ]
    return {"topic": "clickstream", "partition": partition, "events": events}


def test_user_activity_counts_views_status_bytes_bot_and_first_last_seen() -> None:
    state = apply("user_activity", None, clicks(range(6)))
    assert state["page_views"] == 6 and state["bytes"] == 600
    assert state["status_classes"] == {"4xx": 2, "2xx": 4}
    assert state["bot"] is True
    assert (state["first_seen"], state["last_seen"]) == (T0, T0 + 5 * MINUTE)
    assert state["session"] == {"start": T0, "end": T0 + 5 * MINUTE, "events": 6, "last": "/index.html"}


def test_thirty_minutes_of_inactivity_closes_a_session_and_only_ten_are_kept() -> None:
    state = apply("user_activity", None, clicks(range(2), step_ms=INACTIVITY_MS))  # exactly 30 min: same session
    assert state["session"]["events"] == 2 and "closed_sessions" not in state
    gap = INACTIVITY_MS + 1
    state = apply("user_activity", state, clicks(range(2, 14), start_ms=T0 + INACTIVITY_MS + gap, step_ms=gap))
    assert state["sessions_closed"] == 12 and len(state["closed_sessions"]) == KEPT_SESSIONS
    assert state["closed_sessions"][0]["start"] == T0 + INACTIVITY_MS + 2 * gap  # the oldest were dropped
    assert state["session"]["events"] == 1


def test_replayed_and_recut_batches_change_nothing() -> None:
    once = apply("user_activity", None, clicks(range(5)))
    assert apply("user_activity", once, clicks(range(5))) == once
    recut = apply("user_activity", once, clicks(range(10)))  # redelivered with more records after it
    assert recut["page_views"] == 10 and recut["_applied"] == {"clickstream/0/0": [[0, 9]]}
    other_partition = apply("user_activity", recut, clicks(range(3), partition=1))
    assert other_partition["page_views"] == 13


def test_an_older_batch_signalled_after_a_newer_one_still_counts() -> None:
    newer = clicks(range(100, 110)) | {"range": [100, 199]}
    older = clicks(range(0, 10)) | {"range": [0, 99]}
    state = apply("user_activity", None, newer, older)  # Durable does not order a client's signals
    assert state["page_views"] == 20
    assert apply("user_activity", state, older, newer) == state  # and both again, in any order: nothing
    assert state["_applied"] == {"clickstream/0/0": [[0, 199]]}


def test_applied_ranges_stay_small_however_many_batches_there_are() -> None:
    state: dict[str, Any] | None = None
    for batch in range(200):  # the key appears in every other batch: gaps that never fill
        low = batch * 200
        state = apply("user_activity", state, clicks(range(low, low + 2)) | {"range": [low, low + 99]})
    assert state is not None and state["page_views"] == 400
    assert len(state["_applied"]["clickstream/0/0"]) <= 32


def test_a_new_incarnation_of_the_partition_is_counted_afresh() -> None:
    first = apply("user_activity", None, clicks(range(5)))
    again = apply("user_activity", first, clicks(range(5)) | {"incarnation": 1})  # offsets restarted
    assert again["page_views"] == 10


def test_state_written_with_high_water_marks_keeps_its_meaning() -> None:
    legacy = {"page_views": 5, "_offsets": {"clickstream/0": 4}}
    state = apply("user_activity", legacy, clicks(range(8)))
    assert state["page_views"] == 8 and "_offsets" not in state


def test_device_activity_tracks_types_screen_versions_and_os() -> None:
    events = [
        [0, T0, "screen_view", "home", "5.1.0", "iOS"],
        [1, T0 + MINUTE, "tap", "cart", "5.1.0", "iOS"],
        [2, T0 + 2 * MINUTE, "tap", "checkout", "5.2.0", "iOS"],
    ]
    state = apply("device_activity", None, {"topic": "mobile", "partition": 2, "events": events})
    assert state["events"] == 3 and state["event_types"] == {"screen_view": 1, "tap": 2}
    assert state["last_screen"] == "checkout"
    assert state["app_versions"] == ["5.1.0", "5.2.0"] and state["os_seen"] == ["iOS"]
    assert state["session"]["events"] == 3


def readings(values: list[float], start_ms: int = T0, step_ms: int = 1_000, first_offset: int = 0) -> dict[str, Any]:
    events = [[first_offset + i, start_ms + i * step_ms, v, False] for i, v in enumerate(values)]
    return {"topic": "sensors", "partition": 0, "events": events}


def test_sensor_stats_totals_and_one_minute_windows() -> None:
    state = apply("sensor_stats", None, readings([10.0, 20.0, 30.0], step_ms=30_000))
    assert (state["count"], state["min"], state["max"], state["mean"]) == (3, 10.0, 30.0, 20.0)
    assert (state["last_value"], state["last_time"]) == (30.0, T0 + 60_000)
    assert [(w["start"], w["count"], w["mean"]) for w in windows_view(state)] == [(T0, 2, 15.0), (T0 + MINUTE, 1, 30.0)]


def test_sensor_windows_keep_the_last_hour_and_late_readings_are_counted_not_windowed() -> None:
    state = apply("sensor_stats", None, readings([1.0] * 70, step_ms=MINUTE))
    assert len(state["windows"]) == 60 and windows_view(state)[0]["start"] == T0 + 10 * MINUTE
    late = {"topic": "sensors", "partition": 0, "events": [[70, T0, 5.0, False]]}
    after = apply("sensor_stats", state, late)
    assert after["late"] == 1 and after["count"] == 71
    assert after["windows"] == state["windows"]


def test_anomalies_are_counted_from_the_landed_flag() -> None:
    payload = readings([10.0, 10.0, 99.0])
    payload["events"][2][3] = True
    assert apply("sensor_stats", None, payload)["anomalies"] == 1


def test_user_profile_keeps_the_latest_record() -> None:
    first = {"username": "Ferd_1", "city": "London", "level": "Gold"}
    second = {"username": "Ferd_1", "city": "Raleigh", "level": "Platinum"}
    payload = {"topic": "users", "partition": 0, "events": [[0, T0, first], [1, T0 + 1, second]]}
    state = apply("user_profile", None, payload)
    assert state["profile"] == second and state["updates"] == 2


def test_an_unknown_operation_is_an_error_result_and_leaves_state_alone() -> None:
    before = apply("user_activity", None, clicks(range(2)))
    after, results = run_entity("user_activity", before, [("drop_table", {})])
    assert results[0]["isError"] and "drop_table" in results[0]["result"]
    assert after == before


@pytest.mark.parametrize("name", ["user_activity", "device_activity", "sensor_stats", "user_profile"])
def test_every_entity_is_registered(name: str) -> None:
    assert name in HANDLERS
