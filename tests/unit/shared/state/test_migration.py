"""Moving state into key buckets, from per-key entities or another bucket count: what is sent, how it is checked."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from shared.landing.ledger import Ledger
from shared.offset_ranges import OffsetRanges
from shared.sources import SOURCES
from shared.state.aggregate import MAX_SIGNAL_BYTES
from shared.state.bucket_state import MOVED_FROM, adopt, as_adopted, dump, key_state, key_text, operate
from shared.state.buckets import bucket_for, bucket_key
from shared.state.migration import (
    MAX_ADOPT_BYTES,
    adopt_signals,
    export_bytes,
    export_of,
    keys_of,
    left_behind,
    moved_on,
    not_owing,
    origin_ranges,
    parse_export,
    readable,
    unbucketed,
    verify,
)
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
    assert len(signals) > 1 and all(len(json.dumps(s.payload)) <= MAX_ADOPT_BYTES for s in signals)
    assert {key for s in signals for key in s.payload["states"]} == set(big)


def test_an_adopt_is_cut_by_its_size_as_sent_non_ascii_escaped_and_origins_counted() -> None:
    """Adopts were cut at 200,000 bytes of their states' UTF-8: the Durable client sends ``json.dumps``, where a
    Cyrillic letter is 6 bytes, and the origins an adopt carries were not counted. Two a review built went out at
    378,916 and 313,818 bytes, over MAX_SIGNAL_BYTES, which the Durable Task Scheduler refuses: a backend switch
    that could never finish (each rerun sent the same adopt)."""
    name = "\u0410\u043b\u0435\u043a\u0441\u0430\u043d\u0434\u0440\u0430"
    profiles = {
        str(uid): {"profile": {"username": name * 3, "city": name}, "_applied": {"users/0/0": [[uid, uid]]}}
        for uid in range(900)
    }
    ranges = {f"sensors/{p}/0": [[k * 1000 + 10**9, k * 1000 + 10**9 + 500] for k in range(32)] for p in range(4)}
    origins = {bucket_key(index, 8192): ranges for index in range(0, 8192, 256)}
    moved = {
        f"sensor-{n}": {"count": 100, "pad": "x" * 520, MOVED_FROM: bucket_key(n * 256 % 8192, 8192)}
        for n in range(400)
    }
    for signals in (adopt_signals("user_profile", profiles, 1), adopt_signals("sensor_stats", moved, 1, origins)):
        sent = [len(json.dumps(signal.payload)) for signal in signals]
        assert len(sent) > 1 and max(sent) <= MAX_ADOPT_BYTES < MAX_SIGNAL_BYTES, sent
    assert {key for signal in signals for key in signal.payload["states"]} == set(moved)
    assert all(
        set(signal.payload["origins"]) == {state[MOVED_FROM] for state in signal.payload["states"].values()}
        for signal in signals
    )


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


def _landed(
    batches: dict[str, list[tuple[int, int]]], moved_to: dict[str, list[int]] | None = None
) -> dict[str, OffsetRanges]:
    """Per position, what its landing ledger counts as landed once one consumer landed ``batches`` (spans) in
    offset order, as ``shared.landing.partition`` writes it: each batch, and the offsets the consumer passed over
    between two batches (no record there: ``PartitionLanding._recordless``), but not those it was moved over
    (``moved_to``: the markers ``tools.reconcile --move-group-to-time`` writes before it moves the group)."""
    landed = {}
    for where, spans in batches.items():
        ledger = Ledger()
        for offset in (moved_to or {}).get(where, []):
            ledger.moved(offset)
        last = None
        for low, high in sorted(spans):
            if last is not None and low > last + 1 and not ledger.moved_between(last, low):
                ledger.mark_landed(last + 1, low - 1)
            ledger.mark_landed(low, high)
            last = high
        landed[where] = Ledger.from_json(orjson.loads(orjson.dumps(ledger.to_json()))).landed_in(0)
    return landed


def _move(
    kind: Any, old: dict[str, dict[str, Any]], count: int, landed: dict[str, OffsetRanges] | None = None
) -> dict[str, dict[str, Any]]:
    """Move every key of ``old``'s buckets into ``count`` new buckets as the migration tool does, with the
    partitions' ``landed`` offsets (their landing ledgers; none: every gap kept); checked."""
    moved, origins = unbucketed(old, landed)
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
    # 20-31 applied before, 600-611 new: past the old buckets' last offsets (490), as every new offset is
    redelivered = {key: [offsets[1], 600 + i] for i, (key, offsets) in enumerate(keys.items())}
    _apply(kind, new, redelivered, 3, (20, 611))
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


BASE = 12_000_000_000  # offsets of a partition that has run for months at 1,000 events/s


def _sparse_part(partition: int, low: int, high: int, keys: dict[str, list[int]]) -> dict[str, Any]:
    events = {
        key: [[o, 1_700_000_000_000 + o % 1_000_000, *DEVICE_EVENT] for o in offsets] for key, offsets in keys.items()
    }
    return {"topic": "mobile", "partition": partition, "incarnation": 0, "range": [low, high], "keys": events}


def test_a_move_to_a_32_times_smaller_n_keeps_one_span_per_origin_and_evicts_no_key() -> None:
    """docs/scale.md's backend switch, 8,192 -> 256 buckets (here 64 -> 2: the same 32:1), 4 partitions at 11-digit
    offsets, each old bucket sparse (32 applied ranges a partition, the cap). Each new bucket keeps one span per
    origin and partition, not the old buckets' gaps: its first apply after the move evicts no key of a bucket
    sized well inside the bound (keys ~170 KB; with the gaps, ~110 KB of origins evicted hundreds of them)."""
    from shared.state.bucket_state import ORIGINS
    from shared.state.buckets import bucket_key

    kind = ENTITY_KINDS["mobile"]
    old_n, new_n, partitions, per_bucket = 64, 2, 4, 20
    keys: dict[str, list[str]] = {bucket_key(index, old_n): [] for index in range(old_n)}
    candidate = 0
    while any(len(held) < per_bucket for held in keys.values()):
        held = keys[bucket_for(f"device-{candidate}", old_n)]
        if len(held) < per_bucket:
            held.append(f"device-{candidate}")
        candidate += 1
    old: dict[str, dict[str, Any]] = {}
    batches: dict[str, list[tuple[int, int]]] = {}
    for index, (home, held) in enumerate(keys.items()):
        for partition in range(partitions):
            for batch in range(33):  # gaps between the batches the bucket is in
                low = BASE + batch * 10_000 + index * 100
                part = _sparse_part(partition, low, low + 50, {key: [low + n] for n, key in enumerate(held)})
                operate(kind.fold, kind.reduce, home, old.setdefault(home, {}), "apply", {"parts": [part]})
                batches.setdefault(f"mobile/{partition}/0", []).append((low, low + 50))
    landed = _landed(batches)  # every batch landed, signalled to its bucket: the ledgers hold one range each
    assert all(len(ranges) == 1 for ranges in landed.values())
    _, origins = unbucketed(old, landed)
    assert all(len(spans) == 1 for per_position in origins.values() for spans in per_position.values())
    new = _move(kind, old, new_n, landed)
    first = keys[bucket_key(0, old_n)][0]
    home = bucket_for(first, new_n)
    held_before = len(new[home]["keys"])
    offset = BASE + 900_000
    payload = {"parts": [_sparse_part(0, offset, offset, {first: [offset]})]}
    outcome = operate(kind.fold, kind.reduce, home, new[home], "apply", payload)
    assert outcome.evicted == 0 and len(outcome.state["keys"]) == held_before
    assert len(json.dumps(outcome.state[ORIGINS])) < 10_000
    rewound = BASE + 10_000 + 7  # a rewind: an event old bucket 0 applied before the move (batch 1, its 8th key)
    key = keys[bucket_key(0, old_n)][7]
    before = key_state(new[bucket_for(key, new_n)], key)
    payload = {"parts": [_sparse_part(0, rewound, rewound, {key: [rewound]})]}
    operate(kind.fold, kind.reduce, bucket_for(key, new_n), new[bucket_for(key, new_n)], "apply", payload)
    assert key_state(new[bucket_for(key, new_n)], key) == before


def test_an_origin_is_its_buckets_span_without_what_it_owes_and_an_owed_event_counts_once_after_the_move() -> None:
    """Old bucket: batches 0-9 and 30-39 (its keys' events), 40-49 refused (owes 45): the origin is [0, 49] without
    45. A rewind's event at 45 counts once in the new bucket, at 20 (a batch without the bucket's keys) not at all."""
    from shared.state.aggregate import Signal, owing

    kind = ENTITY_KINDS["mobile"]
    old: dict[str, Any] = {}
    for low, offsets in ((0, [5]), (30, [35])):
        part = _sparse_part(0, low, low + 9, {"k": offsets})
        operate(kind.fold, kind.reduce, "~b0of1", old, "apply", {"parts": [part]})
    refused = Signal(kind.name, "~b0of1", "apply", {"parts": [_sparse_part(0, 40, 49, {"k": [45]})]})
    operate(kind.fold, kind.reduce, "~b0of1", old, "apply", owing(refused).payload)
    assert old["_applied"]["mobile/0/0"] == [[0, 9], [30, 49]]
    moved, origins = unbucketed({"~b0of1": old}, _landed({"mobile/0/0": [(0, 9), (10, 29), (30, 39), (40, 49)]}))
    assert origins == {"~b0of1": {"mobile/0/0": [[0, 44], [46, 49]]}}
    new: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals(kind.name, moved, 2, origins):
        operate(kind.fold, kind.reduce, signal.key, new.setdefault(signal.key, {}), "adopt", signal.payload)
    home = bucket_for("k", 2)
    for _ in range(2):  # a rewind from 0, twice
        payload = {"parts": [_sparse_part(0, 0, 49, {"k": [5, 35, 45]})]}
        operate(kind.fold, kind.reduce, home, new[home], "apply", payload)
    assert (key_state(new[home], "k") or {})["events"] == 3


def test_a_key_evicted_before_a_move_back_to_an_earlier_n_does_not_come_back_with_its_stale_state(
    monkeypatch: Any,
) -> None:
    """N=4: device-old counts 3 events. Moved to N=1, where other devices fill the bucket and device-old is
    evicted. Moved back to N=4 (a replacing move: the record names 1): device-old's N=4 bucket still held its
    state from before the first move; now it is emptied, and device-old's next event counts afresh (1, not 4)."""
    from shared.state import bucket_state

    kind = ENTITY_KINDS["mobile"]

    def move(old: dict[str, dict[str, Any]], into: dict[str, dict[str, Any]], n: int) -> None:
        moved, origins = unbucketed(old)
        signals = adopt_signals(kind.name, moved, n, origins, replace=True, run=n)
        assert {signal.key for signal in signals} == {f"~b{i}of{n}" for i in range(n)}  # every bucket, keyed or not
        for signal in signals:
            operate(kind.fold, kind.reduce, signal.key, into.setdefault(signal.key, {}), "adopt", signal.payload)
        assert verify(moved, into, n, origins, run=signals[0].payload["replace"]).complete

    era1: dict[str, dict[str, Any]] = {}
    _apply(kind, era1, {"device-old": [0, 1, 2]}, 4, (0, 2))
    _apply(kind, era1, {"device-gone": [3]}, 4, (3, 3))
    era2: dict[str, dict[str, Any]] = {}
    move(era1, era2, 1)
    monkeypatch.setattr(bucket_state, "MAX_BUCKET_BYTES", 2_000)
    monkeypatch.setattr(bucket_state, "KEEP_BUCKET_BYTES", 1_500)
    for batch in range(8):  # other devices fill the one bucket: the two least recently updated are evicted
        _apply(kind, era2, {f"device-new-{batch}": [10 + batch]}, 1, (10 + batch, 10 + batch))
    assert _events(era2, "device-old", 1) is None and _events(era2, "device-gone", 1) is None
    monkeypatch.undo()
    move(era2, era1, 4)
    for key in ("device-old", "device-gone"):
        assert key_state(era1[bucket_for(key, 4)], key) is None  # its bucket got no key of it, and was emptied
    _apply(kind, era1, {"device-old": [100]}, 4, (100, 100))
    assert _events(era1, "device-old", 4) == 1
    assert all("_evicted" not in bucket and "_origins" not in bucket for bucket in era1.values() if not bucket["keys"])


def test_a_replacing_run_empties_each_bucket_once_whatever_order_its_adopts_come_in_and_refuses_an_earlier_run() -> (
    None
):
    from shared.state.bucket_state import REPLACED

    kind = ENTITY_KINDS["mobile"]
    stale = {"keys": {"stale": '{"events":9}'}, "_applied": {"mobile/0/0": [[0, 99]]}, "_evicted": 3}
    big = {f"k{i}": {"events": 1, "pad": "x" * 10_000} for i in range(60)}  # cut in several adopts of one bucket
    earlier = adopt_signals(kind.name, {"old": {"events": 5}}, 1, replace=True, run=1)
    signals = adopt_signals(kind.name, big, 1, replace=True, run=2)
    assert len(signals) > 1 and len({signal.payload["replace"] for signal in signals}) == 1
    run = signals[0].payload["replace"]
    assert run > earlier[0].payload["replace"]
    bucket: dict[str, Any] = json.loads(json.dumps(stale))
    for signal in reversed(signals):  # Durable Functions does not order a client's signals
        assert operate(kind.fold, kind.reduce, "~b0of1", bucket, "adopt", signal.payload).refused is None
    assert set(bucket["keys"]) == set(big) and bucket[REPLACED] == run
    assert "_applied" not in bucket and "_evicted" not in bucket
    for signal in signals:  # a run again of the same adopts (a signal sent twice): nothing changes
        operate(kind.fold, kind.reduce, "~b0of1", bucket, "adopt", signal.payload)
    assert set(bucket["keys"]) == set(big)
    late = operate(kind.fold, kind.reduce, "~b0of1", bucket, "adopt", earlier[0].payload)  # queued from before
    assert late.refused is not None and "superseded" in late.refused and set(bucket["keys"]) == set(big)
    assert verify(big, {"~b0of1": bucket}, 1, run=run).complete
    assert verify(big, {"~b0of1": bucket}, 1, run=run + 1).not_emptied == ["~b0of1"]


def test_an_adopt_drops_origins_no_key_it_holds_names_any_more() -> None:
    bucket: dict[str, Any] = {
        "keys": {"a": json.dumps({"events": 1, MOVED_FROM: "~b0of4"}), "b": json.dumps({"events": 1})},
        "_origins": {"~b0of4": {"mobile/0/0": [[0, 9]]}, "~b1of4": {"mobile/0/0": [[0, 9]]}},  # b1's keys evicted
    }
    payload = {"states": {"c": {"events": 2, MOVED_FROM: "~b2of4"}}, "origins": {"~b2of4": {"mobile/0/0": [[0, 5]]}}}
    assert adopt(bucket, payload) == []
    assert set(bucket["_origins"]) == {"~b0of4", "~b2of4"}


def test_verify_names_a_bucket_over_80_percent_of_its_bound_after_the_move(monkeypatch: Any) -> None:
    from shared.state import bucket_state

    monkeypatch.setattr(bucket_state, "MAX_BUCKET_BYTES", 10_000)
    states = {f"k{i}": {"events": 1, "pad": "x" * 400} for i in range(20)}  # ~9 KB in one bucket
    buckets: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals("mobile_activity", states, 1):
        adopt(buckets.setdefault(signal.key, {}), signal.payload)
    outcome = verify(states, buckets, 1)
    assert outcome.complete and list(outcome.near_capacity) == ["~b0of1"] and outcome.near_capacity["~b0of1"] > 8_000
    monkeypatch.setattr(bucket_state, "MAX_BUCKET_BYTES", 100_000)
    assert verify(states, buckets, 1).near_capacity == {}


def test_a_replacing_move_empties_a_bucket_no_moved_key_goes_to_and_verify_waits_for_it() -> None:
    kind = ENTITY_KINDS["mobile"]
    key = "device-0"
    home = bucket_for(key, 8)
    assert home != "~b7of8"
    stale = {other: {"keys": {"device-stale": '{"events":3}'}} for other in (f"~b{i}of8" for i in range(8))}
    signals = adopt_signals(kind.name, {key: {"events": 1}}, 8, replace=True, run=1)
    run = signals[0].payload["replace"]
    assert sorted(signal.key for signal in signals) == sorted(stale)
    assert all(signal.payload["states"] == {} for signal in signals if signal.key != home)
    buckets = json.loads(json.dumps(stale))
    for signal in signals:
        if signal.key != "~b7of8":  # its empty adopt still queued
            adopt(buckets[signal.key], signal.payload)
    waiting = verify({key: {"events": 1}}, buckets, 8, run=run)
    assert waiting.moved == [key] and not waiting.complete
    assert waiting.not_emptied == ["~b7of8"]
    adopt(buckets["~b7of8"], next(signal for signal in signals if signal.key == "~b7of8").payload)
    assert verify({key: {"events": 1}}, buckets, 8, run=run).complete
    assert [name for name, bucket in buckets.items() if bucket["keys"]] == [home]


@pytest.mark.parametrize("moved", [False, True])
def test_offsets_a_group_move_skipped_count_when_a_rewind_lands_them_after_a_move_to_another_n(moved: bool) -> None:
    """Review 2 of bddd9d1 (origins as spans). device-a's events at 5 and 205 were applied; the group was moved
    forward past 100-199 (tools.reconcile --move-group-to-time: docs/reliability.md, "a rewind to them lands
    them"), so its event at 150 never reached its bucket. A rewind to 100 later lands and signals it: it must
    count once, whether or not the keys moved to another N in between. The ledger, as the landing wrote it, does
    not count 100-199 as landed: the old bucket's gap over them stays open in its origin."""
    kind = ENTITY_KINDS["mobile"]
    old: dict[str, dict[str, Any]] = {}
    _apply(kind, old, {"device-a": [5]}, 4, (0, 9))
    _apply(kind, old, {"device-a": [205]}, 4, (200, 209))  # 100-199 skipped by the group move
    landed = _landed({"mobile/0/0": [(0, 9), (200, 209)]}, moved_to={"mobile/0/0": [200]})
    assert landed == {"mobile/0/0": [[0, 9], [200, 209]]}
    buckets, count = (_move(kind, old, 2, landed), 2) if moved else (old, 4)
    _apply(kind, buckets, {"device-a": [150, 205]}, count, (100, 209))  # the rewind to 100
    assert _events(buckets, "device-a", count) == 3


def test_an_origin_closes_a_gap_its_ledger_counts_landed_whole_and_keeps_one_it_does_not() -> None:
    """Old bucket: batches 0-9, 50-59, 200-209 and 300-309 of its keys; the partition landed 0-150 and 200-309
    (the group was moved from 151 to 200). 10-49 and 210-299 landed, signalled to other buckets: closed. 60-199
    reaches offsets moved over: kept open whole, though 60-150 landed. A position with no ledger keeps its gaps."""
    kind = ENTITY_KINDS["mobile"]
    old: dict[str, Any] = {}
    for partition in (0, 1):
        for low in (0, 50, 200, 300):
            part = _sparse_part(partition, low, low + 9, {"k": [low + 5]})
            operate(kind.fold, kind.reduce, "~b0of1", old, "apply", {"parts": [part]})
    landed = _landed({"mobile/0/0": [(0, 150), (200, 309)]}, moved_to={"mobile/0/0": [200]})
    assert landed == {"mobile/0/0": [[0, 150], [200, 309]]}
    assert origin_ranges(old, landed) == {
        "mobile/0/0": [[0, 59], [200, 309]],
        "mobile/1/0": [[0, 9], [50, 59], [200, 209], [300, 309]],  # no ledger read for partition 1
    }
    assert origin_ranges(old, {}) == {where: old["_applied"][where] for where in ("mobile/0/0", "mobile/1/0")}


def test_without_a_ledger_a_move_keeps_the_gaps_and_an_event_a_rewind_lands_in_one_still_counts() -> None:
    """No ledger for the partition (none read, or unreadable): the origins keep the old bucket's gaps, as before
    origins were spans; device-a's event at 150, passed over by a group move, counts once after the move."""
    kind = ENTITY_KINDS["mobile"]
    old: dict[str, dict[str, Any]] = {}
    _apply(kind, old, {"device-a": [5]}, 4, (0, 9))
    _apply(kind, old, {"other": [50]}, 4, (50, 59))
    _apply(kind, old, {"device-a": [205]}, 4, (200, 209))
    _, origins = unbucketed(old, {})
    assert origins[bucket_for("device-a", 4)] == {"mobile/0/0": [[0, 9], [200, 209]]}
    new = _move(kind, old, 2)
    _apply(kind, new, {"device-a": [5, 150, 205]}, 2, (0, 209))  # a rewind to 0
    assert _events(new, "device-a", 2) == 3


DAMAGED_TEXTS = ["{not json", "[1, 2]", "7", "null", '"_applied"', '{"_applied": {"mobile/0/0": [[0,', '{"_offsets"']


@pytest.mark.parametrize("text", DAMAGED_TEXTS)
def test_a_key_whose_stored_text_is_not_a_json_object_is_carried_by_a_move_and_adopted_as_stored(text: str) -> None:
    """Never dropped (a review's case: GET /api/state answered 404 for it after a move): its new bucket's adopt takes
    it whatever it is, holds it as damaged, and a move again carries it unchanged."""
    old = {"~b0of1": {"keys": {"k": text, "ok": '{"events": 1}'}, "_applied": {"mobile/0/0": [[0, 9]]}}}
    states, origins = unbucketed(old)
    assert set(states) == {"k", "ok"}
    buckets: dict[str, dict[str, Any]] = {}
    for signal in adopt_signals("device_activity", states, 2, origins):
        adopt(buckets.setdefault(signal.key, {}), signal.payload)
    assert verify(states, buckets, 2, origins).moved == ["k", "ok"]
    home = bucket_for("k", 2)
    held = key_text(buckets[home], "k")
    assert held is not None and key_state(buckets[home], "k") is None
    assert unbucketed({home: buckets[home]})[0]["k"] == states["k"]  # a move again: the same, not wrapped again
    export = export_of("device_activity", 2, buckets)
    assert parse_export(export_bytes({"mobile": export}), {"mobile": "device_activity"})["mobile"] == export


@pytest.mark.parametrize(
    ("field", "damaged"),
    [("_applied", [["mobile/0/0", 0, 9]]), ("_owed", "x"), ("_origins", ["~b0of2"]), ("_refused", 7)],
)
def test_a_bucket_whose_bookkeeping_is_damaged_is_read_as_its_entity_reads_it_and_named(
    field: str, damaged: Any
) -> None:
    bucket = {"keys": {"k": '{"events": 1}'}, "_applied": {"mobile/0/0": [[0, 9]]}, field: damaged}
    held = {"~b0of1": readable(bucket)}
    states, origins = unbucketed(held)
    assert states["k"]["events"] == 1 and set(origins) == {"~b0of1"}
    assert field in left_behind(held)["~b0of1"]


def test_a_key_moved_before_whose_origin_is_damaged_moves_without_that_origins_offsets_named() -> None:
    bucket = {
        "keys": {"a": '{"events": 1, "_moved_from": [1]}', "b": '{"events": 2, "_moved_from": "~b0of2"}'},
        "_origins": {"~b0of2": {"mobile/0/0": "x"}},
        "_applied": {"mobile/0/0": [[0, 9]]},
    }
    held = {"~b0of1": readable(bucket)}
    states, origins = unbucketed(held)
    assert (states["a"][MOVED_FROM], states["b"][MOVED_FROM]) == ("~b0of1", "~b0of1<~b0of2")
    assert origins["~b0of1<~b0of2"] == {"mobile/0/0": [[0, 9]]}
    assert "['a', 'b']" in left_behind(held)["~b0of1"]


def test_a_gap_whose_last_offset_never_landed_stays_open() -> None:
    """Offset 49 never landed: the gap 10-49 must stay open after a move, or the event rewound there is skipped."""
    bucket = {"keys": {}, "_applied": {"mobile/0/0": [[0, 9], [50, 59]]}}
    assert origin_ranges(bucket, {"mobile/0/0": [[0, 48], [50, 59]]}) == {"mobile/0/0": [[0, 9], [50, 59]]}


def test_a_bucket_owing_one_position_of_two_is_still_listed_as_not_owing() -> None:
    into = {"~b0of1": {"a/0/0": [[1, 1]], "b/0/0": [[2, 2]]}}
    assert not_owing(into, {"~b0of1": {"_owed": {"a/0/0": [[1, 1]]}}}) == ["~b0of1"]


def test_a_key_whose_new_state_lacks_offsets_the_held_one_applied_is_not_moved_on() -> None:
    """Moving a key again over a held state that applied offsets the given state lacks would undo their counts."""
    held = {"events": 1, "_applied": {"p/0/0": [[0, 9]], "q/0/0": [[0, 9]]}}
    given = {"events": 2, "_applied": {"p/0/0": [[0, 19]], "q/0/0": [[0, 4]]}}
    assert moved_on({"k": given}, {bucket_for("k", 1): {"keys": {"k": dump(held)}}}, 1) == []


def test_verify_names_a_key_whose_origin_is_held_with_other_ranges() -> None:
    state = {"events": 1, MOVED_FROM: "~b0of2"}
    bucket = {"keys": {"k": dump(as_adopted(state))}, "_origins": {"~b0of2": {"mobile/0/0": [[0, 5]]}}}
    outcome = verify({"k": state}, {"~b0of1": bucket}, 1, {"~b0of2": {"mobile/0/0": [[0, 9]]}})
    assert outcome.conflicts == ["k"] and not outcome.complete
