"""Offset sets as ranges: ``without`` against a plain set of offsets, on random ranges."""

from __future__ import annotations

import random
from itertools import pairwise

from shared.offset_ranges import OffsetRanges, add, overlap, runs, without


def _offsets(ranges: OffsetRanges) -> set[int]:
    return {offset for low, high in ranges for offset in range(low, high + 1)}


def _random_ranges(rng: random.Random) -> OffsetRanges:
    ranges: OffsetRanges = []
    for _ in range(rng.randrange(6)):
        low = rng.randrange(60)
        ranges = add(ranges, low, low + rng.randrange(8))
    return ranges


def test_without_removes_exactly_the_removed_offsets() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        ranges, removed = _random_ranges(rng), _random_ranges(rng)
        kept = without(ranges, removed)
        assert _offsets(kept) == _offsets(ranges) - _offsets(removed), (ranges, removed)
        assert kept == sorted(kept) and all(low <= high for low, high in kept)


def test_runs_and_overlap_match_plain_sets_of_offsets() -> None:
    rng = random.Random(7)
    for _ in range(500):
        ranges, other = _random_ranges(rng), _random_ranges(rng)
        assert _offsets(overlap(ranges, other)) == _offsets(ranges) & _offsets(other)
        offsets = {rng.randrange(80) for _ in range(rng.randrange(20))}
        made = runs(offsets)
        assert _offsets(made) == offsets and made == sorted(made)
        assert all(a[1] + 1 < b[0] for a, b in pairwise(made)), "runs are maximal"
