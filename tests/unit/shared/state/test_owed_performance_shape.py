"""What a bucket owes is built in one merge, whatever the count of owed offsets (review G, D4): it added each
offset alone, re-sorting the whole list each time, so 20,000 owed offsets took 21 s."""

from __future__ import annotations

import random
from typing import Any

import pytest

from shared.offset_ranges import OffsetRanges, add, contains, without
from shared.state import bucket_state
from shared.state.offsets import part_range


def _owing_per_offset(part: dict[str, Any], ranges: OffsetRanges | None, owing: OffsetRanges | None) -> OffsetRanges:
    """The algorithm before the fix, the reference."""
    low, high = part_range(part)
    applied_before = without(ranges or [], owing or [])
    owed = list(owing or [])
    for offset in sorted({int(offset) for offset in part["owed"] if low <= int(offset) <= high}):
        if not contains(applied_before, offset):
            owed = add(owed, offset, offset)
    return owed


def _ranges(rng: random.Random, count: int, top: int) -> OffsetRanges:
    merged: OffsetRanges = []
    for _ in range(count):
        low = rng.randrange(top)
        merged = add(merged, low, low + rng.randrange(5))
    return merged


@pytest.mark.parametrize("seed", range(200))
def test_what_a_bucket_owes_is_what_adding_each_owed_offset_alone_gave(seed: int) -> None:
    rng = random.Random(seed)
    low = rng.randrange(50)
    part = {"range": [low, low + rng.randrange(60)], "owed": [rng.randrange(120) for _ in range(rng.randrange(40))]}
    owing = _ranges(rng, rng.randrange(4), 120) or None
    ranges = add(_ranges(rng, rng.randrange(6), 120), *(owing[0] if owing else (0, 0))) if rng.random() < 0.8 else None
    expected = _owing_per_offset(part, ranges, [list(r) for r in owing] if owing else None)
    assert bucket_state._owing(part, ranges, owing) == expected


def test_twenty_thousand_owed_offsets_are_merged_once_not_added_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(*args: Any, **kwargs: Any) -> OffsetRanges:
        calls.append(1)
        return add(*args, **kwargs)

    monkeypatch.setattr(bucket_state, "add", counted, raising=False)
    n = 20_000
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [0, 2 * n], "keys": {}}
    state = bucket_state.apply(lambda *_: None, {}, {"parts": [part | {"owed": list(range(0, 2 * n, 2))}]}).state
    assert len(calls) <= 1
    kept = state["_owed"]["mobile/0/0"]
    assert kept == [[offset, offset] for offset in range(0, 2 * n, 2)][-bucket_state.KEPT_OWED :]
