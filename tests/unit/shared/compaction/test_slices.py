"""The plan of a bounded-memory compaction: input statistics, duplicates, event-time slices."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pyarrow as pa
import pytest

from shared.compaction.slices import (
    BIN_US,
    BINS,
    InputStats,
    duplicate_positions,
    earlier_overlaps,
    in_slice,
    offset_ranges,
    plan_slices,
    repeating_groups,
    without_repeats,
)
from tests.unit.shared.compaction.conftest import H10, START_US, identity


def stats_of(*tables: pa.Table) -> InputStats:
    stats = InputStats()
    for table in tables:
        stats.add(H10, table)
    return stats


def test_stats_count_rows_times_and_offsets_per_group() -> None:
    stats = stats_of(
        identity([5, 6, 6], [START_US, START_US + BIN_US, None]),
        identity([1], [START_US - 1], partition=1),  # before the hour: the underflow bin
    )
    assert (stats.rows, stats.null_times, stats.min_us, stats.max_us) == (4, 1, START_US - 1, START_US + BIN_US)
    assert stats.bins == Counter({0: 1, 1: 1, -1: 1})
    group = stats.groups[("t", 0, 0)]
    assert (group.first, group.last, group.rows, group.distinct) == (5, 6, 3, 2)
    assert repeating_groups(stats) == [("t", 0, 0)]


@pytest.mark.parametrize("far", [-(2**63) + 1, -9_223_000_000_000_000_000, 2**63 - 1], ids=["min", "near min", "max"])
def test_a_time_near_int64s_ends_falls_in_the_bin_before_or_after_the_hour_and_its_slice_reads_it(far: int) -> None:
    """Subtracted from the hour's start, such a time (a foreign file's) wrapped around into the bin of the other end:
    the slice of its real time never read its file, and the hour failed every run ("30 rows sliced, 31 planned")."""
    table = identity([1, 2], [START_US, far])
    stats = stats_of(table)
    assert stats.bins == Counter({0: 1, -1 if far < 0 else BINS: 1})
    plan = plan_slices(H10, [stats], budget=1)
    assert sum(in_slice(table, s).num_rows for s in plan) == 2
    assert all(in_slice(table, s).num_rows == 0 or s.inputs == (0,) for s in plan)


def test_a_crowded_bin_of_an_input_read_in_batches_is_cut_by_each_batchs_offsets() -> None:
    """The curated rows of an hour are read batch by batch; taken as one span, a stuck clock's 10,000 rows at
    offsets 0-9,999 and one far offset (10**9) were spread over the whole range: one part held all 10,001 rows
    where the budget was 2,500 (a review's finding: a recompacted hour's memory grew with its crowded rows)."""
    offsets = [*range(10_000), 10**9]
    table = identity(offsets, [START_US] * len(offsets))
    curated = InputStats()
    for batch in table.to_batches(max_chunksize=2_500):
        curated.add(H10, batch)
    plan = plan_slices(H10, [curated], budget=2_500)
    held = [in_slice(table, part).num_rows for part in plan]
    assert sum(held) == len(offsets) and max(held) <= 2_501, held


def test_slices_hold_at_most_the_budget_in_time_order_and_cover_every_row() -> None:
    times = [START_US + BIN_US * (i % 50) for i in range(1000)]  # 20 rows in each of 50 bins
    first, second = identity(list(range(500)), times[:500]), identity(list(range(500, 1000)), times[500:])
    inputs = [stats_of(first), stats_of(second)]
    plan = plan_slices(H10, inputs, budget=100)
    assert [s.rows for s in plan] == [100] * 10
    assert plan[0].lo_us is None and plan[-1].hi_us is None
    assert all(a.hi_us == b.lo_us for a, b in pairwise(plan)), "slices meet"
    table = identity(list(range(1000)), times)
    assert sum(in_slice(table, s).num_rows for s in plan) == 1000
    assert all(s.inputs == (0, 1) for s in plan)


def test_a_burst_in_one_bin_is_cut_by_identity_and_rows_without_time_come_last() -> None:
    burst = identity(list(range(300)), [START_US] * 300)
    late = identity([300, 301], [START_US + 5 * BIN_US, None])
    plan = plan_slices(H10, [stats_of(burst), stats_of(late)], budget=100)
    assert [(s.rows, s.nulls, s.inputs) for s in plan] == [(100, False, (0,))] * 3 + [
        (1, False, (1,)),
        (1, True, (1,)),
    ]
    assert [[(r.first, r.last) for r in s.identities] for s in plan[:3]] == [[(0, 99)], [(100, 199)], [(200, 299)]]
    assert [in_slice(burst, s).column("_offset").to_pylist() for s in plan[:3]] == [
        list(range(0, 100)),
        list(range(100, 200)),
        list(range(200, 300)),
    ]
    assert all(s.lo_us == plan[0].lo_us and s.hi_us == plan[0].hi_us for s in plan[:3])


def test_parts_of_a_crowded_bin_read_only_the_inputs_holding_their_offsets() -> None:
    """A stuck clock: 20 files of one instant, 1,000 rows each; every part holds one file's rows."""
    files = [identity(list(range(i * 1000, (i + 1) * 1000)), [START_US] * 1000) for i in range(20)]
    plan = plan_slices(H10, [stats_of(file) for file in files], budget=1000)
    assert [(s.rows, s.inputs) for s in plan] == [(1000, (i,)) for i in range(20)]
    assert [in_slice(files[i], s).num_rows for i, s in enumerate(plan)] == [1000] * 20


def test_repeated_offsets_of_a_crowded_bin_fall_in_one_part_and_every_row_in_exactly_one() -> None:
    first = identity(list(range(0, 150)), [START_US] * 150)
    second = identity([*range(100, 250), 120], [START_US + 1] * 151)  # repeats the first, and itself
    other = identity(list(range(40)), [START_US + 2] * 40, partition=1)
    tables = [first, second, other]
    plan = plan_slices(H10, [stats_of(table) for table in tables], budget=60)
    seen: dict[tuple[int, int], int] = {}
    for position, part in enumerate(plan):
        for table in tables:
            for row in in_slice(table, part).select(["_partition", "_offset"]).to_pylist():
                assert seen.setdefault((row["_partition"], row["_offset"]), position) == position
    assert sum(in_slice(table, part).num_rows for table in tables for part in plan) == 341
    assert len(seen) == 250 + 40
    assert all(part.rows <= 60 for part in plan)


def test_rows_without_time_past_the_budget_are_cut_by_identity_too() -> None:
    missing = identity(list(range(250)), [None] * 250)
    plan = plan_slices(H10, [stats_of(missing)], budget=100)
    assert [(s.nulls, s.rows) for s in plan] == [(True, 100), (True, 100), (True, 50)]
    assert [in_slice(missing, s).num_rows for s in plan] == [100, 100, 50]


def test_small_groups_of_a_crowded_bin_share_a_part() -> None:
    tables = [identity(list(range(30)), [START_US] * 30, partition=p) for p in range(5)]
    plan = plan_slices(H10, [stats_of(table) for table in tables], budget=100)
    assert [[r.group[1] for r in s.identities] for s in plan] == [[0, 1, 2], [3, 4]]
    assert [s.inputs for s in plan] == [(0, 1, 2), (3, 4)]


def test_only_overlapping_earlier_inputs_are_reported() -> None:
    inputs = [
        stats_of(identity(list(range(0, 10)), [START_US] * 10)),  # 0: curated
        stats_of(identity(list(range(10, 20)), [START_US] * 10)),  # 1: no overlap
        stats_of(identity(list(range(5, 12)), [START_US] * 7)),  # 2: overlaps 0 and 1
        stats_of(identity(list(range(5, 12)), [START_US] * 7, partition=3)),  # 3: another partition
    ]
    assert earlier_overlaps(inputs) == {2: {("t", 0, 0): [0, 1]}}


def test_duplicate_positions_are_repeats_of_earlier_inputs_and_of_earlier_rows() -> None:
    table = identity([4, 7, 9, 7, 4, 8], [START_US] * 6)
    positions = duplicate_positions(table, ("t", 0, 0), seen=pa.array([9, 100], pa.int64()))
    assert positions.to_pylist() == [2, 3, 4]  # 9 seen before; the second 7 and the second 4


def test_offset_ranges_count_what_stays() -> None:
    inputs = [stats_of(identity([0, 1, 2], [START_US] * 3)), stats_of(identity([2, 3], [START_US] * 2))]
    (found,) = offset_ranges(inputs, Counter({("t", 0, 0): 1}))
    assert (found.first, found.last, found.rows) == (0, 3, 4)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan_slices(H10, [], budget=0)


def test_without_repeats_keeps_the_first_copy_of_each_repeated_identity_across_tables() -> None:
    def rows(offsets: list[int]) -> pa.Table:
        n = len(offsets)
        return pa.table({"_topic": ["t"] * n, "_partition": [0] * n, "_incarnation": [0] * n, "_offset": offsets})

    repeated = {("t", 0, 0, 1), ("t", 0, 0, 2)}
    kept: set[tuple[str, int, int, int]] = set()
    first = without_repeats(rows([0, 1, 1, 2]), repeated, kept)
    second = without_repeats(rows([2, 3, 2]), repeated, kept)
    assert first.column("_offset").to_pylist() == [0, 1, 2] and second.column("_offset").to_pylist() == [3]


def test_duplicate_positions_of_one_incarnation_ignore_the_same_offsets_of_another() -> None:
    """A topic re-created mid-hour: the old life's offsets 12-14 and the new life's 12-13 in one input. Selecting a
    group's rows by topic and partition only took the new life's rows for repeats of the old life's, and the
    hour lost them."""
    old = identity([12, 13, 14], [START_US] * 3)
    new = identity([12, 13], [START_US] * 2)
    new = new.set_column(new.schema.get_field_index("_incarnation"), "_incarnation", pa.array([1, 1], pa.int64()))
    table = pa.concat_tables([old, new])
    assert duplicate_positions(table, ("t", 0, 0), seen=pa.array([], pa.int64())).to_pylist() == []
    assert duplicate_positions(table, ("t", 0, 1), seen=pa.array([14], pa.int64())).to_pylist() == []
    assert duplicate_positions(table, ("t", 0, 1), seen=pa.array([13], pa.int64())).to_pylist() == [4]
