"""Each entity through the durable SDK's own entity handler, with the batch context the extension sends.

Per-key entities (key ``k``) are the previous layout, still applied for signals sent before an
upgrade; buckets (``~b<i>of<n>``) are the layout the pipeline sends to.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from shared.offset_ranges import add
from shared.state.bucket_state import key_state
from shared.state.offsets import KEPT_RANGES
from shared.state.sensor_stats import windows_view
from shared.state.sessions import INACTIVITY_MS, KEPT_SESSIONS, sessions_view
from tests.conftest import app_functions

T0 = 1_795_516_200_000
MINUTE = 60_000
HANDLERS = {name: f.get_user_function() for name, f in app_functions().items()}


def run_entity(
    name: str, state: dict[str, Any] | None, operations: list[tuple[str, Any]], key: str = "k"
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One batch for one entity id, as the Durable extension delivers it; returns (new state, results)."""
    context = {
        "self": {"name": name, "key": key},
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
    assert sessions_view(state)["session"] == {"start": T0, "end": T0 + 5 * MINUTE, "events": 6, "last": "/index.html"}


def test_thirty_minutes_of_inactivity_closes_a_session_and_only_the_last_few_are_kept() -> None:
    state = apply("user_activity", None, clicks(range(2), step_ms=INACTIVITY_MS))  # exactly 30 min: same session
    assert sessions_view(state)["session"]["events"] == 2 and "closed_sessions" not in state
    gap = INACTIVITY_MS + 1
    state = apply("user_activity", state, clicks(range(2, 14), start_ms=T0 + INACTIVITY_MS + gap, step_ms=gap))
    shown = sessions_view(state)
    assert state["sessions_closed"] == 12 and len(shown["closed_sessions"]) == KEPT_SESSIONS
    oldest_kept = T0 + INACTIVITY_MS + (12 - KEPT_SESSIONS) * gap  # the oldest were dropped
    assert [s["start"] for s in shown["closed_sessions"]] == [oldest_kept + i * gap for i in range(KEPT_SESSIONS)]
    assert shown["session"]["events"] == 1


def test_sessions_written_as_objects_before_are_read_and_rewritten_as_lists() -> None:
    earlier = {"start": T0 - 4 * INACTIVITY_MS, "end": T0 - 3 * INACTIVITY_MS, "events": 2, "last": "/b"}
    current = {"start": T0, "end": T0, "events": 1, "last": "/a"}
    before = {"page_views": 1, "session": current, "closed_sessions": [earlier]}
    assert sessions_view(before)["closed_sessions"][0]["events"] == 2
    later = {"topic": "clickstream", "partition": 0, "events": [[9, T0 + 2 * INACTIVITY_MS, "2xx", 1, False, "/c"]]}
    after = apply("user_activity", before, later)
    assert after["session"] == [T0 + 2 * INACTIVITY_MS, T0 + 2 * INACTIVITY_MS, 1, "/c"]
    assert after["closed_sessions"] == [[T0 - 4 * INACTIVITY_MS, T0 - 3 * INACTIVITY_MS, 2, "/b"], [T0, T0, 1, "/a"]]


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
    assert sessions_view(state)["session"]["events"] == 3


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
    assert len(windows_view(state)) == 60 and windows_view(state)[0]["start"] == T0 + 10 * MINUTE
    late = {"topic": "sensors", "partition": 0, "events": [[70, T0, 5.0, False]]}
    after = apply("sensor_stats", state, late)
    assert after["late"] == 1 and after["count"] == 71
    assert windows_view(after) == windows_view(state)


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


def test_user_profile_keeps_the_highest_offset_whatever_order_signals_arrive_in() -> None:
    newer = {"username": "Ferd_1", "city": "Raleigh", "level": "Platinum"}
    older = {"username": "Ferd_1", "city": "London", "level": "Gold"}
    late_first = [
        {"topic": "users", "partition": 0, "range": [100, 199], "events": [[150, T0 + 150, newer]]},
        {"topic": "users", "partition": 0, "range": [0, 99], "events": [[10, T0 + 10, older]]},
    ]
    state = apply("user_profile", None, *late_first)  # offset 150 applied before offset 10
    assert state["profile"] == newer and state["updates"] == 2
    restarted = {"topic": "users", "partition": 0, "incarnation": 1, "range": [0, 9], "events": [[5, T0, older]]}
    assert apply("user_profile", state, restarted)["profile"] == older  # a new incarnation is newer at any offset


def held(bucket: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """One key's state in a bucket (held as JSON text)."""
    state = key_state(bucket, key)
    assert state is not None, f"the bucket does not hold {key!r}"
    return state


def bucket_apply(name: str, state: dict[str, Any] | None, *payloads: dict[str, Any], key: str = "~b0of1") -> Any:
    new_state, results = run_entity(name, state, [("apply", p) for p in payloads], key=key)
    assert not any(r["isError"] for r in results), results
    return new_state


def click(offset: int) -> list[Any]:
    """A click whose event time follows from its offset, whichever batch carries it."""
    return [offset, T0 + offset * 1_000, "2xx" if offset % 3 else "4xx", 100, False, "/index.html"]


def click_part(keys: dict[str, Any], low: int, high: int, partition: int = 0) -> dict[str, Any]:
    """One partition's part of a bucket signal: each key's clicks at the given offsets, the batch range [low, high]."""
    by_key = {key: [click(offset) for offset in offsets] for key, offsets in keys.items()}
    return {"topic": "clickstream", "partition": partition, "incarnation": 0, "range": [low, high], "keys": by_key}


def test_a_bucket_holds_each_keys_state_as_its_per_key_entity_would() -> None:
    part = click_part({"u1": range(0, 3), "u2": range(3, 5)}, 0, 9)
    bucket = bucket_apply("user_activity", None, {"parts": [part]})
    per_key = apply("user_activity", None, {"topic": "clickstream", "partition": 0, "events": part["keys"]["u1"]})
    assert held(bucket, "u1") == {name: value for name, value in per_key.items() if name != "_applied"}
    assert held(bucket, "u2")["page_views"] == 2 and bucket["_applied"] == {"clickstream/0/0": [[0, 9]]}
    assert "_applied" not in held(bucket, "u1")  # kept once per bucket, not per key


def test_a_bucket_counts_each_offset_once_however_signals_are_repeated_reordered_or_recut() -> None:
    rng = random.Random(19)
    owners = {offset: f"u{rng.randrange(6)}" for offset in range(400)}

    def batch(low: int, high: int) -> dict[str, Any]:
        keys: dict[str, list[int]] = {}
        for offset in range(low, high + 1):
            keys.setdefault(owners[offset], []).append(offset)
        return {"parts": [click_part(keys, low, high)]}

    in_order = bucket_apply("user_activity", None, *(batch(low, low + 49) for low in range(0, 400, 50)))
    cuts = [batch(low, low + 49) for low in range(0, 400, 50)] + [batch(0, 199), batch(120, 260), batch(350, 399)]
    rng.shuffle(cuts)
    shuffled = bucket_apply("user_activity", None, *cuts)
    order_free = ("page_views", "bytes", "status_classes", "first_seen", "last_seen")  # sessions depend on order
    assert {k: [held(shuffled, k)[f] for f in order_free] for k in shuffled["keys"]} == {
        k: [held(in_order, k)[f] for f in order_free] for k in in_order["keys"]
    }
    assert sum(held(shuffled, k)["page_views"] for k in shuffled["keys"]) == 400


def test_the_range_limit_closes_the_oldest_gaps_so_a_late_signal_into_a_recent_gap_still_counts() -> None:
    """Kills the mutation that closes the newest gaps: 41 batches with gaps between them, KEPT_RANGES ranges kept."""

    def batch(number: int) -> dict[str, Any]:  # batch n covers offsets n*100 .. n*100+99; "u" has one click in it
        return {"parts": [click_part({"u": [number * 100]}, number * 100, number * 100 + 99)]}

    bucket = bucket_apply("user_activity", None, *(batch(n) for n in range(0, 82, 2)))
    ranges = bucket["_applied"]["clickstream/0/0"]
    assert len(ranges) == KEPT_RANGES and ranges[0] == [0, (82 - 2 * KEPT_RANGES + 1) * 100 - 1]
    after = bucket_apply("user_activity", bucket, batch(79), batch(1))  # 79: the newest gap; 1: closed, so applied
    assert held(after, "u")["page_views"] == 41 + 1
    assert add([[0, 9], [20, 29], [40, 49], [60, 69]], 80, 89, limit=3) == [[0, 49], [60, 69], [80, 89]]


def test_per_key_entities_keep_their_range_limit_on_the_oldest_gaps_too() -> None:
    state = apply("user_activity", None, *(clicks(range(b * 100, b * 100 + 1)) | {"range": [b * 100, b * 100 + 99]}
                                          for b in range(0, 82, 2)))  # fmt: skip
    late = apply("user_activity", state, clicks(range(7900, 7901)) | {"range": [7900, 7999]})
    assert late["page_views"] == state["page_views"] + 1 == 42


def test_a_moved_key_never_counts_again_what_its_per_key_entity_applied() -> None:
    per_key = apply("user_activity", None, clicks(range(0, 10)) | {"range": [0, 19]})
    bucket = bucket_apply("user_activity", None, {"parts": [click_part({"u2": range(20, 22)}, 20, 29)]})
    adopted, results = run_entity("user_activity", bucket, [("adopt", {"states": {"u1": per_key}})], key="~b0of1")
    assert adopted is not None and not results[0]["isError"]
    # Redelivered across the upgrade: u1's 5-9 were applied by its per-key entity (0-19), u2's 20-21 by the bucket.
    redelivered = {"parts": [click_part({"u1": [5, 6, 7, 8, 9, 30, 31], "u2": [20, 21, 35]}, 5, 39)]}
    after = bucket_apply("user_activity", adopted, redelivered)
    assert held(after, "u1")["page_views"] == 10 + 2
    assert held(after, "u2")["page_views"] == 2 + 1


def test_adopting_twice_changes_nothing_and_a_conflicting_adopt_is_refused_by_name() -> None:
    per_key = apply("user_activity", None, clicks(range(3)))
    once, _ = run_entity("user_activity", None, [("adopt", {"states": {"u1": per_key}})], key="~b0of1")
    twice, results = run_entity("user_activity", once, [("adopt", {"states": {"u1": per_key}})], key="~b0of1")
    assert twice == once and not results[0]["isError"]
    other = apply("user_activity", None, clicks(range(5)))
    after, results = run_entity(
        "user_activity", once, [("adopt", {"states": {"u1": other, "u3": other}})], key="~b0of1"
    )
    assert results[0]["isError"] and "'u1'" in results[0]["result"]
    assert after is not None and held(after, "u1") == held(once, "u1") and held(after, "u3")["page_views"] == 5


def test_a_bucket_refuses_operations_it_does_not_have() -> None:
    before = bucket_apply("user_activity", None, {"parts": [click_part({"u": range(2)}, 0, 1)]})
    after, results = run_entity("user_activity", before, [("drop_table", {})], key="~b0of1")
    assert results[0]["isError"] and "drop_table" in results[0]["result"] and after == before


def test_user_profile_buckets_keep_the_latest_by_position_too() -> None:
    newer, older = {"city": "Raleigh"}, {"city": "London"}
    part = {"topic": "users", "partition": 0, "incarnation": 0}
    late_first = [
        {"parts": [part | {"range": [100, 199], "keys": {"7": [[150, T0, newer]]}}]},
        {"parts": [part | {"range": [0, 99], "keys": {"7": [[10, T0, older]]}}]},
    ]
    assert held(bucket_apply("user_profile", None, *late_first), "7")["profile"] == newer


BUCKET = "~b0of1"


def taps(partition: int, keys: dict[str, range], low: int, high: int) -> dict[str, Any]:
    events = {key: [[o, T0 + o, "tap", "home", "5.1.0", "iOS"] for o in offsets] for key, offsets in keys.items()}
    return {"topic": "mobile", "partition": partition, "incarnation": 0, "range": [low, high], "keys": events}


def test_an_apply_that_fails_part_way_marks_nothing_applied() -> None:
    malformed = taps(1, {"bad": range(2)}, 0, 1)
    malformed["range"] = ["one", 1]  # a part the bucket cannot read
    after, results = run_entity(
        "device_activity",
        {"keys": {}, "_applied": {}},
        [("apply", {"parts": [taps(0, {"good": range(3)}, 0, 2), malformed]})],
        key=BUCKET,
    )
    assert results[0]["isError"]
    assert after is not None and not after.get("_applied", {}).get(
        "mobile/0/0"
    )  # partition 0 not marked without its events
    again = apply_bucket(after, {"parts": [taps(0, {"good": range(3)}, 0, 2)]})  # the batch signalled again
    assert key_state(again, "good")["events"] == 3  # type: ignore[index]


def test_a_key_whose_events_cannot_be_folded_is_refused_by_name_and_its_offsets_recorded() -> None:
    """Its offsets are marked applied with the others': left out, a redelivery would count the others again
    (and the ranges keep at most 32 gaps, so they would be closed by the next signals anyway)."""
    part = taps(0, {"good": [0, 2], "bad": [1, 3]}, 0, 3)
    part["keys"]["bad"] = [[1], [3]]  # events the fold cannot read, even from no state
    state = {"keys": {"bad": '{"events": 5}'}, "_applied": {}}
    after, results = run_entity("device_activity", state, [("apply", {"parts": [part]})], key=BUCKET)
    assert results[0]["isError"] and "'bad'" in results[0]["result"]
    assert after is not None and key_state(after, "good")["events"] == 2  # type: ignore[index]
    assert after["_applied"] == {"mobile/0/0": [[0, 3]]} and after["_refused"] == {"bad": {"mobile/0/0": [1, 3]}}
    assert after["keys"]["bad"] == '{"events": 5}' and "_unreadable" not in after  # its state was not the problem


@pytest.mark.parametrize("stored", ['{"events": 1, "session": ', "null", "[]", "7"])
def test_a_key_whose_stored_state_is_unreadable_is_set_aside_and_stops_no_other_key(stored: str) -> None:
    state = {"keys": {"bad": stored}, "_applied": {}}
    after = apply_bucket(state, {"parts": [taps(0, {"good": range(3)}, 0, 2), taps(1, {"bad": range(2)}, 0, 1)]})
    assert key_state(after, "good")["events"] == 3  # type: ignore[index]
    assert key_state(after, "bad")["events"] == 2  # type: ignore[index]  # started again
    assert after["_unreadable"] == {"bad": stored}  # kept for a person to read
    assert key_state({"keys": {"bad": stored}}, "bad") is None  # readers see no state, not an error


@pytest.mark.parametrize("stored", [{"events": 3, "event_types": "tap"}, {"_applied": "x"}, {"session": 7}])
def test_a_key_whose_stored_object_the_fold_cannot_read_is_set_aside_and_stops_no_other_key(stored: Any) -> None:
    state = {"keys": {"bad": json.dumps(stored)}, "_applied": {}}
    after = apply_bucket(state, {"parts": [taps(0, {"good": range(3), "bad": range(3, 5)}, 0, 4)]})
    assert key_state(after, "good")["events"] == 3  # type: ignore[index]
    assert key_state(after, "bad")["events"] == 2  # type: ignore[index]  # started again
    assert after["_unreadable"] == {"bad": json.dumps(stored)} and after["_applied"] == {"mobile/0/0": [[0, 4]]}


def test_a_per_key_entity_whose_operation_raises_keeps_its_state_as_it_was() -> None:
    """The Python SDK persists the live state object even when an operation raised: nothing half-applied."""
    damaged = {"events": 3, "event_types": "tap"}  # the fold counts the event, then fails on event_types
    payload = {"topic": "mobile", "partition": 0, "events": [[10, T0, "tap", "home", "4.3.0", "iOS"]]}
    once, results = run_entity("device_activity", damaged, [("apply", payload)])
    assert results[0]["isError"] and once == damaged
    twice, _ = run_entity("device_activity", once, [("apply", payload)])  # the same message delivered again
    assert twice == damaged


def apply_bucket(state: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    new_state, results = run_entity("device_activity", state, [("apply", payload)], key=BUCKET)
    assert not any(r["isError"] for r in results), results
    assert new_state is not None
    return new_state


def test_adopt_into_a_bucket_holding_an_unreadable_key_takes_the_moved_states() -> None:
    state = {"keys": {"bad": '{"events": 1, "session": '}, "_applied": {}}
    after, results = run_entity(
        "device_activity", state, [("adopt", {"states": {"bad": {"events": 4}, "other": {"events": 7}}})], key=BUCKET
    )
    assert not results[0]["isError"] and after is not None
    assert key_state(after, "other") == {"events": 7} and key_state(after, "bad") == {"events": 4}
    assert after["_unreadable"] == {"bad": '{"events": 1, "session": '}


def test_the_refused_keys_a_bucket_records_are_bounded() -> None:
    """A fold bug that hits every key must not grow the bucket without bound."""
    from shared.state.bucket_state import KEPT_REFUSED

    state: dict[str, Any] = {"keys": {}, "_applied": {}}
    for batch in range(3):
        keys = {f"k{batch}-{i}": [batch * 1000 + i] for i in range(KEPT_REFUSED)}
        part = taps(0, keys, batch * 1000, batch * 1000 + KEPT_REFUSED)
        part["keys"] = {key: [[offset]] for key, (offset,) in keys.items()}  # events the fold cannot read
        state, _ = run_entity("device_activity", state, [("apply", {"parts": [part]})], key=BUCKET)
    assert len(state["_refused"]) == KEPT_REFUSED and next(iter(state["_refused"])) == "k2-0"


def test_the_refused_offsets_a_bucket_records_stay_far_under_its_bound_on_many_partitions() -> None:
    """The bound was keys times offsets per key and partition: with 100 keys refused on 4 partitions at offsets of a
    long-lived topic the bucket held 488 KB (a review's case), past ``MAX_BUCKET_BYTES`` with no key to evict.
    Now at most ``KEPT_REFUSED_OFFSETS`` offsets in all are kept, the latest key's first."""
    from shared.state import bucket_state
    from shared.state.bucket_state import MAX_BUCKET_BYTES, stored_size

    state: dict[str, Any] = {"keys": {}, "_applied": {}}
    first = 2_000_000_000
    for batch in range(100):
        low = first + batch * 100
        parts = []
        for partition in range(4):
            part = taps(partition, {}, low, low + 99)
            part["keys"] = {f"device-{i}": [[low + i]] for i in range(100)}  # events the fold cannot read
            parts.append(part)
        state, _ = run_entity("device_activity", state, [("apply", {"parts": parts})], key=BUCKET)
    assert stored_size(state) < MAX_BUCKET_BYTES // 4
    recorded = state["_refused"]
    kept = sum(len(offsets) for held in recorded.values() for offsets in held.values())
    assert kept == bucket_state.KEPT_REFUSED_OFFSETS
    assert list(recorded)[-1] == "device-99" and list(recorded["device-99"].values())[-1][-1] == first + 9999


def test_a_full_bucket_evicts_through_the_entity_function_and_says_so_in_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The entity function reports what the alert `state_bucket_full` reads: the bucket's size once it may be near
    its bound, and the keys it evicted (docs/scale.md)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from shared import metric_names as names
    from shared import telemetry as telemetry_module
    from shared.state.bucket_state import MAX_BUCKET_BYTES
    from tests.unit.shared.conftest import metric_points

    reader = InMemoryMetricReader()
    instruments = telemetry_module.Telemetry(MeterProvider(metric_readers=[reader]).get_meter("t"))
    monkeypatch.setattr(telemetry_module, "_telemetry", instruments)
    old = {f"old-user-{n}": json.dumps({"page_views": 1, "note": "x" * 500}) for n in range(600)}
    bucket = bucket_apply("user_activity", {"keys": old}, {"parts": [click_part({"new-user": range(0, 2)}, 0, 1)]})
    assert held(bucket, "new-user")["page_views"] == 2 and len(json.dumps(bucket)) <= MAX_BUCKET_BYTES
    points = metric_points(reader)
    (evicted,) = points[names.STATE_EVICTED_KEYS]
    assert evicted.value == bucket["_evicted"] == 600 - len(bucket["keys"]) + 1 > 0
    assert dict(evicted.attributes) == {"source": "clickstream"}
    (size,) = points[names.STATE_BUCKET_BYTES]
    assert size.max <= MAX_BUCKET_BYTES and size.count == 1


def test_the_first_apply_of_a_new_bucket_keeps_its_good_keys_when_one_key_is_refused() -> None:
    """A bucket with no state yet: the SDK keeps only what ``set_state`` stored, so a refusal raised before it
    would drop every other key's events and the batch's ranges (the tests before always started from a stored state)."""
    part = taps(0, {"good": [0, 2], "bad": [1, 3]}, 0, 3)  # type: ignore[dict-item]
    part["keys"]["bad"] = [[1], [3]]
    after, results = run_entity("device_activity", None, [("apply", {"parts": [part]})], key=BUCKET)
    assert results[0]["isError"]
    assert after is not None and key_state(after, "good")["events"] == 2
    assert after["_applied"] == {"mobile/0/0": [[0, 3]]}


def test_record_keys_that_spell_the_sdks_custom_object_envelope_are_plain_keys() -> None:
    """Review 2026-12-07: with one bucket (STATE_BUCKETS=1), device ids ``__class__``, ``__module__`` and
    ``__data__`` made the bucket's ``keys`` an envelope the SDK's loose decoding took for a custom object: every
    later operation on the bucket failed, and an apply carrying all three was lost whole."""
    envelope = ["__class__", "__module__", "__data__"]

    def part(first: int, keys: dict[str, int]) -> dict[str, Any]:
        events = {key: [[offset, T0 + offset, "tap", "home", "4.3.0", "iOS"]] for key, offset in keys.items()}
        span = [first, max(keys.values())]
        return {"parts": [{"topic": "mobile", "partition": 0, "incarnation": 0, "range": span, "keys": events}]}

    state = None
    for offset, key in enumerate(envelope):
        state, results = run_entity("device_activity", state, [("apply", part(offset, {key: offset}))], key="~b0of1")
        assert not results[0]["isError"], results
    state, results = run_entity("device_activity", state, [("apply", part(3, {"device-1": 3}))], key="~b0of1")
    assert not results[0]["isError"], results
    assert state is not None and sorted(state["keys"]) == sorted([*envelope, "device-1"])
    together = part(0, dict(zip(envelope, range(3), strict=True)))
    state, results = run_entity("device_activity", None, [("apply", together)], key="~b0of1")
    assert not results[0]["isError"], results
    assert state is not None and sorted(state["keys"]) == sorted(envelope)


@pytest.mark.parametrize(
    "damaged", ["not an object", [1, 2], 7, {"__class__": "X", "__module__": "nowhere", "__data__": {}}]
)
def test_a_bucket_whose_stored_state_is_not_a_buckets_applies_with_the_damage_set_aside(damaged: Any) -> None:
    """Review 2026-12-07: with strict typing and an expected type the SDK raised TypeError for a state that is not an
    object, before the entity could set it aside: every operation on the bucket failed for ever."""
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [0, 0]}
    payload = {"parts": [part | {"keys": {"device-1": [[0, T0, "tap", "home", "4.3.0", "iOS"]]}}]}
    state, results = run_entity("device_activity", damaged, [("apply", payload)], key="~b0of1")
    assert not results[0]["isError"], results
    assert state is not None and "device-1" in state["keys"]


def test_a_bucket_with_stray_envelope_fields_keeps_its_keys_states() -> None:
    """The second diff review: a bucket whose top level also held ``__class__``, ``__module__`` and ``__data__``
    (damaged outside this code), which strict typing refuses to decode, was replaced whole by a marker: every key's
    state lost. It is read as plain JSON instead."""
    part = {"topic": "mobile", "partition": 0, "incarnation": 0}
    first = {"parts": [part | {"range": [0, 0], "keys": {"device-1": [[0, T0, "tap", "home", "4.3.0", "iOS"]]}}]}
    second = {"parts": [part | {"range": [1, 1], "keys": {"device-2": [[1, T0, "tap", "home", "4.3.0", "iOS"]]}}]}
    state, _ = run_entity("device_activity", None, [("apply", first)], key="~b0of1")
    assert state is not None
    damaged = state | {"__class__": "X", "__module__": "nowhere", "__data__": {}}
    state, results = run_entity("device_activity", damaged, [("apply", second)], key="~b0of1")
    assert not results[0]["isError"], results
    assert state is not None and sorted(state["keys"]) == ["device-1", "device-2"]
