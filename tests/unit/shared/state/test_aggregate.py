"""Pre-aggregation: one signal per key bucket a batch touches, carrying each event once."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import orjson

from shared.batch import process_batch
from shared.sources import SOURCES
from shared.state import device_activity
from shared.state.aggregate import MAX_ENTITY_LEAD_MS, MAX_SIGNAL_BYTES, members, signals_for, within_size
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
        (key, "mobile", part["partition"], *part["range"])
        for part in signals[0].payload["parts"]
        for key in part["keys"]
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


def _hot(count: int, partitions: int = 2) -> list[dict[str, Any]]:
    """``count`` mobile taps of one device per partition, each with its own screen (so no two events alike)."""
    return [
        tap(offset, 1_764_000_000_000 + offset, f"screen-{offset}") | {"_partition": partition}
        for partition in range(partitions)
        for offset in range(count)
    ]


def _sent(signal: Any) -> int:
    return len(json.dumps(signal.payload))  # as the Durable client sends it


def test_an_apply_within_the_size_bound_is_sent_as_it_is() -> None:
    signals = signals_for("mobile", landed("mobile", 1000), buckets=64)
    assert all(_sent(signal) <= MAX_SIGNAL_BYTES for signal in signals)
    sized = within_size(signals)
    assert len(sized) == len(signals) and all(a is b for a, b in zip(sized, signals, strict=True))


def test_a_hot_keys_apply_is_cut_by_offsets_into_signals_within_the_bound_that_tile_its_ranges() -> None:
    """One device's 2,000 events in two partitions, with owed offsets and holes: cut at 8 KiB, every signal is
    within it as sent, goes to the same bucket, and its parts' ranges tile each partition's range with every event
    and owed offset once, in the sub-range holding it."""
    from shared.state.aggregate import with_holes, with_owed

    rows = [row for row in _hot(1000) if row["_offset"] not in (10, 500, 999)]
    spans = {("mobile", 0): (0, 1000), ("mobile", 1): (0, 1000)}
    (signal,) = signals_for("mobile", rows, spans, buckets=1)
    (signal,) = with_owed("mobile", [signal], {("mobile", 0, 0): {10, 500, 999}}, 1)
    (signal,) = with_holes([signal], {("mobile", 1, 0): [[1001, 1003]]})
    assert _sent(signal) > 100_000
    sized = within_size([signal], max_bytes=8192)
    assert len(sized) >= _sent(signal) // 8192 and all(_sent(s) <= 8192 for s in sized)
    assert {(s.entity, s.key, s.operation) for s in sized} == {(signal.entity, signal.key, "apply")}
    for partition in (0, 1):
        parts = sorted(
            (p for s in sized for p in s.payload["parts"] if p["partition"] == partition), key=lambda p: p["range"]
        )
        ranges = [tuple(p["range"]) for p in parts]
        assert ranges[0][0] == 0 and ranges[-1][1] == 1000 and len(ranges) > 1
        assert all(b[0] == a[1] + 1 for a, b in pairwise(ranges))  # no gap, no overlap
        events = [(p["range"], e) for p in parts for es in p["keys"].values() for e in es]
        assert sorted(e[0] for _, e in events) == sorted(r["_offset"] for r in rows if r["_partition"] == partition)
        assert all(low <= e[0] <= high for (low, high), e in events)
        owed = [(p["range"], o) for p in parts for o in p.get("owed", [])]
        assert sorted(o for _, o in owed) == ([10, 500, 999] if partition == 0 else [])
        assert all(low <= o <= high for (low, high), o in owed)
        assert all(p.get("holes") == ([[1001, 1003]] if partition == 1 else None) for p in parts)


def test_a_cut_apply_counts_each_event_once_in_any_order_and_when_sent_again() -> None:
    """The signals one oversized apply became, applied forward, backward, and again: the device holds every event
    once, as the apply uncut does."""
    rows = _hot(600, partitions=1)
    (signal,) = signals_for("mobile", rows, {("mobile", 0): (0, 599)}, buckets=1)
    sized = within_size([signal], max_bytes=4096)
    assert len(sized) > 3

    def events(signals: list[Any]) -> int:
        state: dict[str, Any] = {}
        for s in signals:
            state = apply(device_activity.fold, state, json.loads(json.dumps(s.payload))).state
        return int(key_state(state, "d1")["events"])  # type: ignore[index]

    assert events([signal]) == events(sized) == events(sized[::-1]) == events(sized + sized[::-1]) == 600


def test_an_event_over_the_bound_alone_goes_in_a_signal_of_its_own() -> None:
    rows = [tap(0, 1_764_000_000_000, "a"), tap(1, 1_764_000_000_001, "x" * 5000), tap(2, 1_764_000_000_002, "b")]
    (signal,) = signals_for("mobile", rows, {("mobile", 0): (0, 2)}, buckets=1)
    sized = within_size([signal], max_bytes=2048)
    assert [s.payload["parts"][0]["range"] for s in sized] == [[0, 0], [1, 1], [2, 2]]


def test_an_apply_whose_text_escapes_grow_it_sixfold_is_measured_and_cut() -> None:
    """json.dumps writes DEL (U+007F) as six bytes where orjson writes one: 490 taps of 128-DEL screens are about
    86 KB compact and 420 KB as sent (a review found it sent whole, over the bound)."""
    rows = [tap(offset, 1_764_000_000_000 + offset, "\x7f" * 128) for offset in range(490)]
    (signal,) = signals_for("mobile", rows, {("mobile", 0): (0, 489)}, buckets=1)
    assert 6 * len(orjson.dumps(signal.payload)) > MAX_SIGNAL_BYTES >= 3 * len(orjson.dumps(signal.payload))
    sized = within_size([signal])
    assert len(sized) > 1 and all(_sent(s) <= MAX_SIGNAL_BYTES for s in sized)


def test_the_pieces_of_a_cut_apply_are_sent_one_after_another_in_offset_order() -> None:
    """Each piece that overtakes another leaves a gap in its bucket's applied ranges, and past KEPT_RANGES the
    oldest gaps close (a review lost 333 of 3,000 events with 82 pieces interleaved): one bucket's signals go in
    the order given, whatever the other buckets' do meanwhile."""
    import asyncio
    import random

    from shared.state.lookups import send_signals

    rows = _hot(600, partitions=1) + [tap(600 + n, 1_764_000_000_000, "s") | {"device_id": f"d{n}"} for n in range(40)]
    signals = within_size(signals_for("mobile", rows, buckets=8), max_bytes=2048)
    pieces = [s.payload["parts"][0]["range"][0] for s in signals if s.key == signals[0].key]
    assert len(pieces) > 10
    seen: list[tuple[str, int]] = []
    rng = random.Random(7)

    class Jittery:
        async def signal(self, signal: Any) -> None:
            for _ in range(rng.randint(0, 5)):
                await asyncio.sleep(0)  # yields only: other signals' sends interleave
            seen.append((signal.key, signal.payload["parts"][0]["range"][0]))

    asyncio.run(send_signals(Jittery(), signals))  # type: ignore[arg-type]
    assert sorted(seen) == sorted((s.key, s.payload["parts"][0]["range"][0]) for s in signals)
    assert [low for key, low in seen if key == signals[0].key] == pieces


def test_an_event_with_no_time_at_all_reaches_its_entity_as_happening_now_not_in_1970() -> None:
    """Review 15: no event time and no Kafka timestamp lands at epoch 0 (``_event_time_source`` "none"); folded at
    0 it became the device's first_seen and a session of 1970 for good."""
    now = 1_795_516_200_000
    rows = [tap(0, 0, "home") | {"_event_time_source": "none"}, tap(1, 5, "cart") | {"_event_time_source": "event"}]
    (signal,) = signals_for("mobile", rows, buckets=1, now_ms=now)
    assert [event[1] for event in signal.payload["parts"][0]["keys"]["d1"]] == [now, 5]
    assert rows[0]["_event_time"] == 0  # the landed row keeps what lineage gave it
