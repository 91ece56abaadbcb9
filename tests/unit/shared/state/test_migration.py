"""Moving per-key state into key buckets: what is sent, and how the result is checked."""

from __future__ import annotations

import json
from typing import Any

from shared.sources import SOURCES
from shared.state.bucket_state import adopt
from shared.state.buckets import bucket_for
from shared.state.migration import MAX_ADOPT_BYTES, adopt_signals, keys_of, verify


def per_key(views: int, high: int) -> dict[str, Any]:
    return {"page_views": views, "_applied": {"clickstream/0/0": [[0, high]]}}


def test_one_adopt_per_bucket_carrying_every_state_once() -> None:
    states = {f"user-{i}": per_key(i, i) for i in range(300)}
    signals = adopt_signals("user_activity", states, 16)
    assert len(signals) == len({bucket_for(key, 16) for key in states}) <= 16
    moved = {key: state for s in signals for key, state in s.payload["states"].items()}
    assert moved == states
    assert all(bucket_for(key, 16) == s.key and s.operation == "adopt" for s in signals for key in s.payload["states"])


def test_a_bucket_with_more_state_than_one_operation_should_carry_is_cut_in_several() -> None:
    big = {f"k{i}": {"pad": "x" * 10_000} for i in range(60)}  # ~600 KB, one bucket
    signals = adopt_signals("sensor_stats", big, 1)
    assert len(signals) > 1 and all(len(json.dumps(s.payload)) <= MAX_ADOPT_BYTES + 20_000 for s in signals)
    assert {key for s in signals for key in s.payload["states"]} == set(big)


def test_verify_tells_moved_missing_and_conflicting_keys_apart() -> None:
    states = {"a": per_key(1, 5), "b": per_key(2, 5), "c": {"page_views": 3, "_offsets": {"clickstream/0": 9}}}
    buckets: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals("user_activity", {k: v for k, v in states.items() if k != "b"}, 4):
        adopt(buckets.setdefault(signal.key, {}), signal.payload)
    outcome = verify(states, buckets, 4)
    assert (outcome.moved, outcome.missing, outcome.conflicts) == (["a", "c"], ["b"], []) and not outcome.complete
    for signal in adopt_signals("user_activity", {"b": per_key(7, 5)}, 4):  # the bucket counted b on its own
        adopt(buckets.setdefault(signal.key, {}), signal.payload)
    assert verify(states, buckets, 4).conflicts == ["b"]


def test_keys_come_from_the_rows_the_source_landed() -> None:
    rows = [{"device_id": "d1"}, {"device_id": "d2"}, {"device_id": "d1"}, {"other": 1}]
    assert keys_of(SOURCES["mobile"].entity_key, rows) == {"d1", "d2"}
