"""Pre-aggregation: one signal per key bucket a batch touches, carrying each event once."""

from __future__ import annotations

from typing import Any

from shared.batch import process_batch
from shared.sources import SOURCES
from shared.state import device_activity
from shared.state.aggregate import MAX_ENTITY_LEAD_MS, members, signals_for
from shared.state.bucket_state import apply, key_state
from shared.state.buckets import bucket_for, is_bucket_key
from tests.conftest import records_for


def landed(source: str, count: int, partition: int = 0) -> list[dict[str, Any]]:
    batch = process_batch(
        SOURCES[source],
        records_for(SOURCES[source], count, partition=partition),
        max_record_bytes=1 << 20,
    )
    return batch.rows()


def test_one_signal_per_bucket_touched_carrying_every_event_once() -> None:
    rows = landed("mobile", 1000) + landed("mobile", 10, partition=1)
    keys = {SOURCES["mobile"].entity_key(r) for r in rows}
    signals = signals_for("mobile", rows, {("mobile", 0): (0, 999), ("mobile", 1): (0, 9)}, buckets=64)
    assert len(signals) == len({bucket_for(k, 64) for k in keys}) <= 64 < len(keys)  # min(distinct keys, N)
    assert len({s.key for s in signals}) == len(signals) and all(is_bucket_key(s.key) for s in signals)
    events = [
        (part["partition"], key, event[0], s.key)
        for s in signals
        for part in s.payload["parts"]
        for key, key_events in part["keys"].items()
        for event in key_events
    ]
    assert sorted(e[:3] for e in events) == sorted(
        (r["_partition"], SOURCES["mobile"].entity_key(r), r["_offset"]) for r in rows
    )
    assert all(home == bucket_for(key, 64) for _, key, _, home in events)  # every key in its own bucket
    parts = [part for s in signals for part in s.payload["parts"]]
    assert {tuple(p["range"]) for p in parts} == {(0, 999), (0, 9)}  # the batch's whole range per partition
    assert all(e == sorted(e) for p in parts for e in p["keys"].values())  # offset order per key
    assert [m for m in members(signals[0])] == [
        (key, "mobile", part["partition"]) for part in signals[0].payload["parts"] for key in part["keys"]
    ]


def test_fewer_buckets_than_keys_send_fewer_operations_and_more_buckets_never_more_than_keys() -> None:
    rows = landed("mobile", 1000)
    keys = len({SOURCES["mobile"].entity_key(r) for r in rows})
    assert len(signals_for("mobile", rows, buckets=1)) == 1
    assert len(signals_for("mobile", rows, buckets=16)) == 16
    assert len(signals_for("mobile", rows, buckets=65_536)) <= keys


def test_sources_without_state_send_nothing() -> None:
    assert signals_for("nosuchsource", [{"x": 1}], buckets=8) == []
    assert signals_for("clickstream", [], buckets=8) == []


def tap(offset: int, event_ms: int, screen: str) -> dict[str, Any]:
    fields = {"event_type": "tap", "screen": screen, "app_version": "4.3.0", "os": "iOS", "device_id": "d1"}
    return {"_topic": "mobile", "_partition": 0, "_incarnation": 0, "_offset": offset, "_event_time": event_ms} | fields


def test_an_event_ahead_of_the_clock_by_more_than_the_skew_allowed_reaches_its_entity_as_happening_now() -> None:
    now = 1_795_516_200_000
    rows = [tap(0, now + MAX_ENTITY_LEAD_MS, "within"), tap(1, now + MAX_ENTITY_LEAD_MS + 1, "ahead")]
    (signal,) = signals_for("mobile", rows, buckets=1, now_ms=now)
    assert [event[1] for event in signal.payload["parts"][0]["keys"]["d1"]] == [now + MAX_ENTITY_LEAD_MS, now]
    assert rows[1]["_event_time"] == now + MAX_ENTITY_LEAD_MS + 1  # the landed row keeps its own time


def test_a_device_event_59_minutes_ahead_does_not_hold_its_last_screen() -> None:
    now = 1_795_516_200_000
    state: dict[str, Any] = {}
    for offset, (event_ms, screen) in enumerate([(now + 59 * 60_000, "skewed"), (now + 1_000, "home")]):
        (signal,) = signals_for("mobile", [tap(offset, event_ms, screen)], buckets=1, now_ms=now)
        state = apply(device_activity.fold, state, signal.payload).state
    assert key_state(state, "d1")["last_screen"] == "home"  # type: ignore[index]


def test_what_is_owed_is_named_to_every_bucket_in_its_own_operation_and_survives_a_refusal() -> None:
    """with_owed names owed offsets in each bucket's part of their life, adds a part of ranges alone for a life it
    has no part of, and a signal for a bucket it sends none (the entity key is not known, so every bucket is told);
    owing() of such a refused signal keeps them."""
    from shared.state.aggregate import Signal, owing, with_owed

    tap = [5, 1_764_000_000_000, "tap", "home", "4.3.0", "iOS"]
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [0, 9], "keys": {"k": [tap]}}
    signals = [Signal("device_activity", "~b1of3", "apply", {"parts": [part]})]
    owed = {("mobile", 0, 0): {7, 8, 12}, ("mobile", 1, 0): {3}}
    named = with_owed("mobile", signals, owed, 3)
    assert [signal.key for signal in named] == ["~b1of3", "~b0of3", "~b2of3"]
    first, second, _ = named
    assert [(p["partition"], p["range"], p.get("owed")) for p in first.payload["parts"]] == [
        (0, [0, 9], [7, 8]),
        (1, [3, 3], [3]),
    ]
    assert second.payload["parts"] == [
        {"topic": "mobile", "partition": 0, "incarnation": 0, "keys": {}, "range": [7, 12], "owed": [7, 8, 12]},
        {"topic": "mobile", "partition": 1, "incarnation": 0, "keys": {}, "range": [3, 3], "owed": [3]},
    ]
    assert [p["owed"] for p in owing(first).payload["parts"]] == [[5, 7, 8], [3]]
    assert with_owed("mobile", [], {}, 3) == [] and with_owed("orders", [], owed, 3) == []
