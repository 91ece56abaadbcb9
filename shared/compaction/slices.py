"""Compacting one hour in bounded memory: what each input holds, which rows repeat, and slices.

The inputs of an hour are, in order, its curated rows (when the hour was compacted before) and
its new raw files. Among rows with the same identity the first input's wins, as in
``rows.merge_hour``, the in-memory reference. Pure: identity tables in, plans out.

1. **Scan.** Each input's identity and event-time columns give its ``InputStats``: rows, event-time
   range and a histogram of event time (0.1 s bins), and per topic-partition-incarnation the offset
   range, rows and distinct offsets.
2. **Duplicates.** Rows can only repeat where offset ranges overlap: with an earlier input in the
   same topic-partition-incarnation (``earlier_overlaps``), or within one input (fewer distinct
   offsets than rows). Only those are checked row by row (``duplicate_positions``). The landing
   ledger keeps raw files apart, so this is rare, and the scan is all most hours need.
3. **Slices.** The histogram cuts the hour into event-time slices of at most ``budget`` rows each.
   Each slice is read, sorted and written in turn, so the slices in order are the hour sorted by
   event time, and memory holds one slice, not the hour.
4. **Crowded instants.** One bin can hold more than ``budget`` rows: a device whose clock is stuck
   puts days of readings at one instant, rows without a time pile up at none. Such a bin (and the
   rows without time) is cut by identity instead: ranges of offsets per topic-partition-incarnation,
   from the per-input offset ranges of the scan, in identity order, each at most ``budget`` rows if
   an input's offsets of a group are spread evenly over its range (landing writes runs of
   consecutive offsets). Every copy of one identity falls in the same range, so every row is read
   once and repeats still go. The parts in order are sorted by event time, then identity, when the
   bin holds one instant or no time (a stuck clock, missing times); a bin of several instants is
   sorted within each part.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from shared.compaction.coverage import OffsetRange
from shared.compaction.hours import Hour
from shared.compaction.rows import EVENT_TIME, IDENTITY, sort_by_event_time
from shared.layout import HOUR_MS

GroupKey = tuple[str, int, int]  # topic, partition, incarnation
Identity = tuple[str, int, int, int]  # topic, partition, incarnation, offset
BIN_US = 100_000
BINS = HOUR_MS * 1000 // BIN_US  # bins -1 and BINS hold the times before and after the hour


@dataclass(slots=True)
class GroupStats:
    """Offsets of one topic-partition-incarnation in one input."""

    first: int
    last: int
    rows: int
    distinct: int

    def overlaps(self, other: GroupStats) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class InputStats:
    """One input of an hour, from its identity and event-time columns (added batch by batch)."""

    rows: int = 0
    min_us: int | None = None
    max_us: int | None = None
    null_times: int = 0
    groups: dict[GroupKey, GroupStats] = field(default_factory=dict)
    # each group's offsets batch by batch: how a crowded bin is cut. One span for the curated rows of a whole
    # hour took 100,000 rows at one offset range and one far offset as spread over both, a part for all of them
    pieces: dict[GroupKey, list[GroupStats]] = field(default_factory=dict)
    bins: Counter[int] = field(default_factory=Counter)
    spans: list[TimeSpan] = field(default_factory=list)  # where its times are: kept when ``bins`` is not

    def add(self, hour: Hour, identity: pa.Table | pa.RecordBatch) -> None:
        """Count a table or batch of ``IDENTITY`` and ``EVENT_TIME`` columns (typed as ``read_raw`` gives them)."""
        if identity.num_rows == 0:
            return
        table = identity if isinstance(identity, pa.Table) else pa.Table.from_batches([identity])
        self.rows += table.num_rows
        self._add_times(hour, micros(table.column(EVENT_TIME)))
        grouped = table.group_by(list(IDENTITY[:3]), use_threads=False).aggregate(
            [("_offset", "min"), ("_offset", "max"), ("_offset", "count"), ("_offset", "count_distinct")]
        )
        for row in grouped.to_pylist():
            key = (str(row["_topic"]), int(row["_partition"]), int(row["_incarnation"]))
            found = GroupStats(
                row["_offset_min"], row["_offset_max"], row["_offset_count"], row["_offset_count_distinct"]
            )
            self.pieces.setdefault(key, []).append(found)
            known = self.groups.get(key)
            # Adding per-batch distinct counts is exact only when batches share no offset: true of the
            # curated rows (unique by construction: every compaction wrote them deduplicated), the
            # only input read in batches. Raw files are added whole.
            self.groups[key] = found if known is None else _combined(known, found)

    def _add_times(self, hour: Hour, times: pa.ChunkedArray) -> None:
        self.null_times += times.null_count
        present = times.drop_null()
        if len(present) == 0:
            return
        extremes = pc.min_max(present)
        low, high = int(extremes["min"].as_py()), int(extremes["max"].as_py())
        self.min_us = low if self.min_us is None else min(self.min_us, low)
        self.max_us = high if self.max_us is None else max(self.max_us, high)
        start_us = hour.start_ms * 1000
        # kept within a bin of the hour first: a time near int64's ends (a foreign file's) wrapped around when
        # subtracted, into a bin its slice never read, and its hour failed every run on the rows it missed
        within = pc.min_element_wise(pc.max_element_wise(present, start_us - 1), start_us + BINS * BIN_US)
        since = pc.subtract(within, start_us)
        index = pc.if_else(pc.less(since, 0), -1, pc.min_element_wise(pc.divide(since, BIN_US), BINS))
        occupied = []
        for entry in pc.value_counts(index).to_pylist():
            self.bins[int(entry["values"])] += int(entry["counts"])
            occupied.append(bin_span(hour, int(entry["values"])))
        self.spans = joined_spans([*self.spans, *occupied])

    def overlaps(self, time_slice: TimeSlice) -> bool:
        """Whether the input may hold rows of ``time_slice``: never false when it does. By its occupied bins, so
        a file of one minute with one event late by fifty is read for the slices of those two times alone."""
        if time_slice.nulls:
            return self.null_times > 0
        if self.min_us is None or self.max_us is None:
            return False
        above = time_slice.lo_us is None or self.max_us >= time_slice.lo_us
        below = time_slice.hi_us is None or self.min_us < time_slice.hi_us
        return above and below and any(_meets(span, time_slice) for span in self.spans)


TimeSpan = tuple[int | None, int | None]  # event times lo_us <= t < hi_us (None: unbounded)
MAX_SPANS = 64  # per input; past it the nearest spans join (a wider span only makes a file read more often)


def bin_span(hour: Hour, index: int) -> TimeSpan:
    """The event times bin ``index`` of ``hour`` holds (bins -1 and ``BINS``: all before and after the hour)."""
    start = hour.start_ms * 1000
    return (
        None if index < 0 else start + index * BIN_US,
        None if index >= BINS else start + (index + 1) * BIN_US,
    )


def joined_spans(spans: Iterable[TimeSpan]) -> list[TimeSpan]:
    """``spans`` in order, those that meet joined, and the closest joined until at most ``MAX_SPANS`` are left."""
    ordered = sorted(spans, key=lambda span: -math.inf if span[0] is None else span[0])
    joined: list[TimeSpan] = []
    for lo, hi in ordered:
        if joined and (joined[-1][1] is None or lo is None or lo <= joined[-1][1]):
            last_lo, last_hi = joined[-1]
            joined[-1] = (last_lo, None if last_hi is None or hi is None else max(last_hi, hi))
        else:
            joined.append((lo, hi))
    while len(joined) > MAX_SPANS:
        gaps = [(right[0] - left[1], index) for index, (left, right) in enumerate(pairwise(joined))]  # type: ignore[operator]
        _, index = min(gaps)
        joined[index : index + 2] = [(joined[index][0], joined[index + 1][1])]
    return joined


def _meets(span: TimeSpan, time_slice: TimeSlice) -> bool:
    lo, hi = span
    return (hi is None or time_slice.lo_us is None or hi > time_slice.lo_us) and (
        lo is None or time_slice.hi_us is None or lo < time_slice.hi_us
    )


def micros(times: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Event times as integer microseconds since the epoch (UTC), nulls kept."""
    return times.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())


def _combined(known: GroupStats, found: GroupStats) -> GroupStats:
    return GroupStats(
        min(known.first, found.first),
        max(known.last, found.last),
        known.rows + found.rows,
        known.distinct + found.distinct,
    )


@dataclass(frozen=True, slots=True)
class IdentityRange:
    """The offsets ``first`` to ``last`` (both included) of one topic-partition-incarnation."""

    group: GroupKey
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class TimeSlice:
    """Rows with ``lo_us <= event time < hi_us`` (None: unbounded), or with no event time (``nulls``);
    of those, when ``identities`` are given (a part of a crowded bin), only the rows in one of them.
    ``rows`` is what the plan expects it to hold (for a part, an estimate from offset ranges)."""

    lo_us: int | None
    hi_us: int | None
    nulls: bool
    inputs: tuple[int, ...]
    rows: int
    identities: tuple[IdentityRange, ...] = ()


def plan_slices(
    hour: Hour, inputs: Sequence[InputStats], budget: int, histogram: Counter[int] | None = None
) -> list[TimeSlice]:
    """Event-time slices of at most ``budget`` rows (crowded bins cut by identity), in order, and the inputs each reads.

    ``histogram`` is the hour's, when the inputs' own bins were merged into it as they were scanned.
    """
    if budget < 1:
        raise ValueError("budget must be at least one row")
    total: Counter[int] = Counter() if histogram is None else histogram
    if histogram is None:
        for stats in inputs:
            total.update(stats.bins)
    bounds: list[tuple[int | None, int | None, int]] = []
    low: int | None = None
    rows = 0
    for index in sorted(total):
        if rows and rows + total[index] > budget:
            cut = hour.start_ms * 1000 + index * BIN_US
            bounds.append((low, cut, rows))
            low, rows = cut, 0
        rows += total[index]
    if rows:
        bounds.append((low, None, rows))
    slices = [_slice(inputs, lo, hi, False, count) for lo, hi, count in bounds]
    nulls = sum(stats.null_times for stats in inputs)
    if nulls:
        slices.append(_slice(inputs, None, None, True, nulls))
    return [part for whole in slices for part in _within_budget(inputs, whole, budget)]


def _slice(inputs: Sequence[InputStats], lo: int | None, hi: int | None, nulls: bool, rows: int) -> TimeSlice:
    probe = TimeSlice(lo, hi, nulls, (), rows)
    return TimeSlice(lo, hi, nulls, tuple(i for i, stats in enumerate(inputs) if stats.overlaps(probe)), rows)


def _within_budget(inputs: Sequence[InputStats], time_slice: TimeSlice, budget: int) -> list[TimeSlice]:
    return [time_slice] if time_slice.rows <= budget else split_by_identity(inputs, time_slice, budget)


def split_by_identity(inputs: Sequence[InputStats], crowded: TimeSlice, budget: int) -> list[TimeSlice]:
    """``crowded`` (one bin, or the rows without time) as parts of about ``budget`` rows, in identity order.

    Each input that may hold rows of the slice is taken to spread its rows of a group evenly over the
    group's offset range in each batch it was read in (raw files: one), all of them in the slice: a part
    holds no more than its bound by more than a batch's rows.
    Ranges are cut where the bound of a part would pass ``budget``; a part takes one or more groups'
    consecutive ranges.
    """
    spans = [(key, piece) for index in crowded.inputs for key, found in inputs[index].pieces.items() for piece in found]
    parts: list[TimeSlice] = []
    for identities, rows in _packed(_segments(spans, budget), budget):
        reading = tuple(i for i in crowded.inputs if _holds_any(inputs[i], identities))
        estimate = min(crowded.rows, max(1, round(rows)))
        parts.append(TimeSlice(crowded.lo_us, crowded.hi_us, crowded.nulls, reading, estimate, identities))
    return parts


def _segments(spans: Sequence[tuple[GroupKey, GroupStats]], budget: int) -> list[tuple[IdentityRange, float]]:
    """The groups' offsets, in identity order, as ranges of at most ``budget`` rows' bound (or one offset).

    A sweep per group: each span adds its rows per offset from its first offset to its last."""
    changes: dict[GroupKey, defaultdict[int, float]] = defaultdict(lambda: defaultdict(float))
    for key, group in spans:
        density = group.rows / (group.last - group.first + 1)
        changes[key][group.first] += density
        changes[key][group.last + 1] -= density
    segments: list[tuple[IdentityRange, float]] = []
    for key in sorted(changes):
        density = 0.0
        for start, end in pairwise(sorted(changes[key])):
            density += changes[key][start]
            segments += _cut(IdentityRange(key, start, end - 1), max(density, 0.0), budget)
    return segments


def _cut(offsets: IdentityRange, density: float, budget: int) -> list[tuple[IdentityRange, float]]:
    """``offsets`` in ranges of at most ``budget`` rows at ``density`` rows per offset (at least one offset each)."""
    length = offsets.last - offsets.first + 1
    step = length if density * length <= budget else max(1, int(budget // density))
    cuts = []
    for first in range(offsets.first, offsets.last + 1, step):
        last = min(first + step - 1, offsets.last)
        cuts.append((IdentityRange(offsets.group, first, last), density * (last - first + 1)))
    return cuts


def _packed(
    segments: Sequence[tuple[IdentityRange, float]], budget: int
) -> list[tuple[tuple[IdentityRange, ...], float]]:
    """Consecutive segments gathered into parts of at most ``budget`` rows' bound (a heavier segment alone),
    each group's adjacent ranges of a part joined."""
    parts: list[tuple[tuple[IdentityRange, ...], float]] = []
    ranges: list[IdentityRange] = []
    load = 0.0
    for segment, rows in segments:
        if ranges and load + rows > budget:
            parts.append((tuple(ranges), load))
            ranges, load = [], 0.0
        if ranges and ranges[-1].group == segment.group and ranges[-1].last + 1 == segment.first:
            ranges[-1] = IdentityRange(segment.group, ranges[-1].first, segment.last)
        else:
            ranges.append(segment)
        load += rows
    if ranges:
        parts.append((tuple(ranges), load))
    return parts


def _holds_any(stats: InputStats, identities: Iterable[IdentityRange]) -> bool:
    for wanted in identities:
        group = stats.groups.get(wanted.group)
        if group is not None and group.first <= wanted.last and wanted.first <= group.last:
            return True
    return False


def earlier_overlaps(inputs: Sequence[InputStats]) -> dict[int, dict[GroupKey, list[int]]]:
    """Per input, per topic-partition-incarnation, the earlier inputs whose offset ranges overlap its own.

    One sweep per group over the ranges sorted by first offset: ranges that do not overlap (the
    normal case) keep the sweep's active set at one entry.
    """
    by_group: dict[GroupKey, list[tuple[int, int, int]]] = defaultdict(list)
    for index, stats in enumerate(inputs):
        for key, group in stats.groups.items():
            by_group[key].append((group.first, group.last, index))
    found: dict[int, dict[GroupKey, list[int]]] = defaultdict(lambda: defaultdict(list))
    for key, ranges in by_group.items():
        active: list[tuple[int, int]] = []  # (last offset, input) of ranges that may still overlap
        for first, last, index in sorted(ranges):
            while active and active[0][0] < first:
                heapq.heappop(active)
            for _, other in active:
                later, earlier = max(index, other), min(index, other)
                found[later][key].append(earlier)
            heapq.heappush(active, (last, index))
    return {index: {key: sorted(earlier) for key, earlier in groups.items()} for index, groups in found.items()}


def repeating_groups(stats: InputStats) -> list[GroupKey]:
    """Groups in which one input holds an offset more than once."""
    return [key for key, group in stats.groups.items() if group.distinct < group.rows]


def group_mask(identity: pa.Table, key: GroupKey) -> pa.ChunkedArray:
    topic, partition, incarnation = key
    same_topic = pc.equal(identity.column("_topic"), topic)
    same_partition = pc.equal(identity.column("_partition"), partition)
    return pc.and_(pc.and_(same_topic, same_partition), pc.equal(identity.column("_incarnation"), incarnation))


def duplicate_positions(identity: pa.Table, key: GroupKey, seen: pa.Array) -> pa.Array:
    """Positions of ``key``'s rows in ``identity`` whose offset an earlier input holds (``seen``) or an
    earlier row of the same input holds: the rows the hour must not keep."""
    positions = pc.indices_nonzero(group_mask(identity, key))
    offsets = identity.column("_offset").take(positions).combine_chunks()
    earlier = positions.filter(pc.is_in(offsets, value_set=seen.cast(pa.int64())))
    order = pc.sort_indices(offsets)  # stable: of equal offsets, the earliest row comes first
    ordered = offsets.take(order)
    repeat = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)), False)
    again = positions.take(order).slice(1).filter(repeat)
    return pc.unique(pa.concat_arrays([earlier.cast(pa.int64()), again.cast(pa.int64())])).sort()


def offset_ranges(inputs: Sequence[InputStats], dropped: Counter[GroupKey]) -> list[OffsetRange]:
    """The hour's offset range and row count per topic, partition and incarnation, after duplicates go."""
    merged: dict[GroupKey, GroupStats] = {}
    for stats in inputs:
        for key, group in stats.groups.items():
            merged[key] = group if key not in merged else _combined(merged[key], group)
    return [
        OffsetRange(key[0], key[1], key[2], group.first, group.last, group.rows - dropped[key])
        for key, group in sorted(merged.items())
    ]


def without_positions(table: pa.Table, positions: pa.Array | None) -> pa.Table:
    if positions is None or len(positions) == 0:
        return table
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()), value_set=positions.cast(pa.int64())))
    return table.filter(keep)


def without_repeats(rows: pa.Table, repeated: Collection[Identity], kept: set[Identity]) -> pa.Table:
    """``rows`` without the copies of ``repeated`` identities after the first one seen, in this table or an
    earlier one (``kept``, which this adds to). Only the curated rows can hold such copies (two first
    commits of a new hour at once), and only a few: the rows are looked at one by one only then."""
    if not repeated or rows.num_rows == 0:
        return rows
    keep = []
    for identity in zip(*(rows.column(name).to_pylist() for name in IDENTITY), strict=True):
        first = identity not in repeated or identity not in kept
        if identity in repeated:
            kept.add(identity)
        keep.append(first)
    return rows.filter(pa.array(keep, pa.bool_()))


def in_slice(table: pa.Table, time_slice: TimeSlice) -> pa.Table:
    """The rows of ``table`` that belong to ``time_slice``."""
    return table.filter(slice_mask(table, time_slice))


def split_slice(table: pa.Table, time_slice: TimeSlice) -> tuple[pa.Table, pa.Table]:
    """The rows of ``table`` that belong to ``time_slice``, and the others (rows with no time among them)."""
    mask = slice_mask(table, time_slice)
    return table.filter(mask), table.filter(pc.invert(mask))


def slice_mask(table: pa.Table, time_slice: TimeSlice) -> pa.ChunkedArray | pa.Array:
    """True for each row of the slice, false for every other: never null (a row with no time compared with a bound
    is null in Arrow, which ``filter`` drops from both sides of a split)."""
    return pc.fill_null(_slice_mask(table, time_slice), False)


def _slice_mask(table: pa.Table, time_slice: TimeSlice) -> pa.ChunkedArray | pa.Array:
    times = micros(table.column(EVENT_TIME))
    if time_slice.nulls:
        mask = pc.is_null(times)
    else:
        mask = pc.is_valid(times)
        if time_slice.lo_us is not None:
            mask = pc.and_(mask, pc.greater_equal(times, time_slice.lo_us))
        if time_slice.hi_us is not None:
            mask = pc.and_(mask, pc.less(times, time_slice.hi_us))
    if time_slice.identities:
        mask = pc.and_(mask, _in_identities(table, time_slice.identities))
    return mask


def _in_identities(table: pa.Table, identities: Iterable[IdentityRange]) -> pa.ChunkedArray | pa.Array:
    offsets = table.column("_offset")
    inside: pa.ChunkedArray | pa.Array = pa.repeat(pa.scalar(False), table.num_rows)
    for wanted in identities:
        between = pc.and_(pc.greater_equal(offsets, wanted.first), pc.less_equal(offsets, wanted.last))
        inside = pc.or_(inside, pc.and_(group_mask(table, wanted.group), between))
    return inside


def assemble_slice(parts: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    """One slice's rows (duplicates already gone) sorted by event time, shaped as ``schema``."""
    present = [part for part in parts if part.num_rows]
    if not present:
        return schema.empty_table()
    combined = pa.concat_tables(present, promote_options="default").combine_chunks()
    return conform(sort_by_event_time(combined), schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order and types (missing ones null)."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
