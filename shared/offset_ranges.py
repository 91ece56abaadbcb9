"""Sets of Kafka offsets as sorted, disjoint, inclusive ``[low, high]`` ranges (plain JSON lists).

The landing ledger and the entity guard both remember which offsets they have applied this
way: batches that arrive in order merge into one range, so the record stays small.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from itertools import pairwise

OffsetRanges = list[list[int]]


def contains(ranges: OffsetRanges, offset: int) -> bool:
    """Whether ``offset`` lies in one of ``ranges``."""
    index = bisect.bisect_right(ranges, offset, key=lambda r: r[0]) - 1
    return index >= 0 and ranges[index][1] >= offset


def add(
    ranges: OffsetRanges, low: int, high: int, *, limit: int | None = None, keep_open: OffsetRanges | None = None
) -> OffsetRanges:
    """``ranges`` with ``[low, high]`` added; touching or overlapping ranges merge.

    With ``limit``, the oldest gaps are closed until at most ``limit`` ranges remain: offsets in
    those gaps then count as applied (see the callers for why that is safe for them). A gap that
    meets ``keep_open`` stays open, even past ``limit`` (the caller bounds ``keep_open``).
    """
    merged = union(ranges, [[low, high]])
    if limit is not None and len(merged) > limit:
        if not keep_open:
            return [[merged[0][0], merged[-limit][1]], *merged[len(merged) - limit + 1 :]]
        return _close_oldest_gaps(merged, limit, keep_open)
    return merged


def union(ranges: OffsetRanges, other: OffsetRanges) -> OffsetRanges:
    """The offsets in ``ranges`` or ``other``, as sorted ranges; touching or overlapping ranges merge."""
    merged: OffsetRanges = []
    for current in sorted([*ranges, *other]):
        if merged and current[0] <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], current[1])
        else:
            merged.append([current[0], current[1]])
    return merged


def _close_oldest_gaps(ranges: OffsetRanges, limit: int, keep_open: OffsetRanges) -> OffsetRanges:
    """``ranges`` with their oldest gaps closed until at most ``limit`` ranges remain besides one per gap that meets
    ``keep_open``: such a gap stays open and takes no other gap's place, so a late signal into a newer gap still
    counts as it would without it."""
    meets = [
        any(low <= current[0] - 1 and high >= previous[1] + 1 for low, high in keep_open)
        for previous, current in pairwise(ranges)
    ]
    count = max(0, len(ranges) - limit - sum(meets))
    closed: OffsetRanges = [ranges[0]]
    for current, kept in zip(ranges[1:], meets, strict=True):
        if count and not kept:
            closed[-1][1] = current[1]
            count -= 1
        else:
            closed.append(current)
    return closed


def without(ranges: OffsetRanges, removed: OffsetRanges) -> OffsetRanges:
    """The offsets of ``ranges`` that are not in ``removed`` (both sorted and disjoint)."""
    kept: OffsetRanges = []
    index = 0
    for low, high in ranges:
        while index < len(removed) and removed[index][1] < low:
            index += 1
        scan = index
        while scan < len(removed) and removed[scan][0] <= high:
            if removed[scan][0] > low:
                kept.append([low, removed[scan][0] - 1])
            low = max(low, removed[scan][1] + 1)
            scan += 1
        if low <= high:
            kept.append([low, high])
    return kept


def overlap(ranges: OffsetRanges, other: OffsetRanges) -> OffsetRanges:
    """The offsets in both ``ranges`` and ``other``."""
    return without(ranges, without(ranges, other))


def runs(offsets: Iterable[int]) -> OffsetRanges:
    """``offsets`` as ranges."""
    ranges: OffsetRanges = []
    for offset in sorted(offsets):
        if ranges and offset <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], offset)
        else:
            ranges.append([offset, offset])
    return ranges
