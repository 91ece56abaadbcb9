"""Moving state into key buckets, from per-key entities or another bucket count: what is sent, how it is checked."""

from __future__ import annotations

import json
from typing import Any

from shared.sources import SOURCES
from shared.state.bucket_state import MOVED_FROM, adopt, key_state, operate
from shared.state.buckets import bucket_for
from shared.state.migration import MAX_ADOPT_BYTES, adopt_signals, keys_of, unbucketed, verify
from shared.state.query_api import public_state
from shared.state.registry import ENTITY_KINDS


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


DEVICE_EVENT = ["login", "home", "1.0", "ios"]  # event_type, screen, app_version, os


def _part(keys: dict[str, list[int]], low: int, high: int) -> dict[str, Any]:
    """One batch's events of partition 0 for a mobile bucket: ``keys`` maps a key to its offsets."""
    return {
        "topic": "mobile",
        "partition": 0,
        "incarnation": 0,
        "range": [low, high],
        "keys": {
            key: [[offset, 1_700_000_000_000 + offset, *DEVICE_EVENT] for offset in offsets]
            for key, offsets in keys.items()
        },
    }


def _apply(kind: Any, buckets: dict[str, dict[str, Any]], keys: dict[str, list[int]], count: int, span: Any) -> None:
    """One batch as processing sends it: one ``apply`` per bucket with all of that bucket's keys."""
    by_bucket: dict[str, dict[str, list[int]]] = {}
    for key, offsets in keys.items():
        by_bucket.setdefault(bucket_for(key, count), {})[key] = offsets
    for home, held in by_bucket.items():
        operate(kind.fold, kind.reduce, home, buckets.setdefault(home, {}), "apply", {"parts": [_part(held, *span)]})


def _events(buckets: dict[str, dict[str, Any]], key: str, count: int) -> int | None:
    state = key_state(buckets.get(bucket_for(key, count)), key)
    return None if state is None else state["events"]


def _move(kind: Any, old: dict[str, dict[str, Any]], count: int) -> dict[str, dict[str, Any]]:
    """Move every key of ``old``'s buckets into ``count`` new buckets as the migration tool does; checked."""
    moved, origins = unbucketed(old)
    new: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals(kind.name, moved, count, origins):
        home = new.setdefault(signal.key, {})
        assert operate(kind.fold, kind.reduce, signal.key, home, "adopt", signal.payload).refused is None
    assert verify(moved, new, count, origins).complete
    return new


def test_keys_moved_to_another_bucket_count_skip_what_their_old_bucket_applied_and_count_the_rest() -> None:
    kind = ENTITY_KINDS["mobile"]
    old: dict[str, dict[str, Any]] = {}
    keys = {f"device-{i}": [i, i + 20] for i in range(12)}  # offsets 0-31, every key twice
    for batch in range(40):  # many batches without these keys leave many ranges in each old bucket
        _apply(kind, old, {f"other-{batch}": [100 + 10 * batch]}, 4, (100 + 10 * batch, 100 + 10 * batch))
    _apply(kind, old, keys, 4, (0, 31))
    new = _move(kind, old, 3)
    assert {key: _events(new, key, 3) for key in keys} == dict.fromkeys(keys, 2)
    for key in keys:  # a moved key names its old bucket; the bucket's ranges are not copied into it
        assert len(new[bucket_for(key, 3)]["keys"][key]) < len(old[bucket_for(key, 4)]["keys"][key]) + 40
    redelivered = {key: [offsets[1], 40 + i] for i, (key, offsets) in enumerate(keys.items())}  # 20-31 applied before
    _apply(kind, new, redelivered, 3, (20, 51))
    assert {key: _events(new, key, 3) for key in keys} == dict.fromkeys(keys, 3)


def test_a_key_moved_twice_still_skips_what_each_layout_before_applied() -> None:
    kind = ENTITY_KINDS["mobile"]
    first: dict[str, dict[str, Any]] = {}
    keys = {f"device-{i}": [i] for i in range(12)}
    _apply(kind, first, keys, 4, (0, 11))
    second = _move(kind, first, 3)
    _apply(kind, second, {key: [20 + i] for i, key in enumerate(keys)}, 3, (20, 31))
    third = _move(kind, second, 2)
    everything_again = {key: [i, 20 + i, 40 + i] for i, key in enumerate(keys)}  # a rewind to offset 0
    _apply(kind, third, everything_again, 2, (0, 51))
    assert {key: _events(third, key, 2) for key in keys} == dict.fromkeys(keys, 3)
    assert public_state(key_state(third[bucket_for("device-0", 2)], "device-0") or {}).get(MOVED_FROM) is None


def test_an_event_its_old_bucket_owed_still_counts_once_after_the_keys_move_to_another_n() -> None:
    """The bucket (N=1) applied k's event 5, then was refused k's event 15 and told it owes 15. The keys move to
    N=2 (tools.migrate_state): tools.redrive's re-signal of 15 counts in the new bucket, once."""
    from shared.state.aggregate import Signal, owing

    kind = ENTITY_KINDS["mobile"]

    def part(low: int, high: int, keys: dict[str, Any]) -> dict[str, Any]:
        return {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [low, high], "keys": keys}

    def tap(offset: int) -> list[Any]:
        return [offset, 1_764_000_000_000 + offset, "tap", "home", "4.3.0", "iOS"]

    old: dict[str, Any] = {}
    operate(kind.fold, kind.reduce, "~b0of1", old, "apply", {"parts": [part(0, 9, {"k": [tap(5)]})]})
    refused = Signal(kind.name, "~b0of1", "apply", {"parts": [part(10, 19, {"k": [tap(15)]})]})
    operate(kind.fold, kind.reduce, "~b0of1", old, "apply", owing(refused).payload)
    moved, origins = unbucketed({"~b0of1": old})
    new: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals(kind.name, moved, 2, origins):
        operate(kind.fold, kind.reduce, signal.key, new.setdefault(signal.key, {}), "adopt", signal.payload)
    home = bucket_for("k", 2)
    for _ in range(2):  # tools.redrive, then again (its log was not confirmed)
        operate(kind.fold, kind.reduce, home, new[home], "apply", {"parts": [part(15, 15, {"k": [tap(15)]})]})
    assert (key_state(new[home], "k") or {})["events"] == 2
