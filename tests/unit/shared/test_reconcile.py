"""Reconcile and reposition decisions without a broker: gaps, doubles, incarnations, offsets for a time."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.batch import process_batch
from shared.errors import UnreadableLakeFile
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.landing.ledger import Ledger, fingerprint
from shared.reconcile import (
    Landed,
    Life,
    Move,
    group_is_idle,
    in_ranges,
    landed_offsets,
    life_of,
    offset_for_time,
    ranges,
    reconcile,
)
from shared.records import KafkaRecord, TopicPartition
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.test_redrive import _valid_dead_letter_rows
from tools.reconcile import report_table

TIMES = [1000, 1000, 2000, 3000, 3000, 5000, 8000]  # record timestamps at offsets 10..16
LOW, END = 10, 17


def fetch(offset: int) -> int:
    return TIMES[offset - LOW]


@pytest.mark.parametrize(
    ("at_ms", "expected"), [(0, 10), (1000, 10), (1500, 12), (3000, 13), (4000, 15), (8000, 16), (9000, 17)]
)
def test_the_search_finds_the_first_record_at_or_after_the_time(at_ms: int, expected: int) -> None:
    assert offset_for_time(fetch, LOW, END, at_ms, broker_answer=LOW) == (
        expected,
        "broker" if expected == LOW else "search",
    )


def test_a_right_broker_answer_is_taken_and_a_wrong_one_is_not() -> None:
    assert offset_for_time(fetch, LOW, END, 3000, broker_answer=13) == (13, "broker")
    assert offset_for_time(fetch, LOW, END, 3000, broker_answer=14) == (13, "search")  # 13 is already at 3000
    assert offset_for_time(fetch, LOW, END, 3000, broker_answer=10) == (13, "search")  # Tansu's "earliest"
    assert offset_for_time(fetch, LOW, END, 9000, broker_answer=-1) == (17, "broker")  # none at or after: the end
    assert offset_for_time(fetch, LOW, LOW, 9000, broker_answer=None) == (LOW, "empty")


def _raw(offset: int, incarnation: int = 0, path: str = "raw/a") -> Landed:
    return Landed("t", 0, incarnation, offset, path)


def test_gaps_and_doubles_per_partition_of_the_current_incarnation() -> None:
    landed = [
        *(_raw(o) for o in (0, 1, 2, 5, 6)),
        _raw(6, path="raw/b"),  # a double
        Landed("t", 0, 0, 3, "deadletter/x", "schema"),
        Landed("t", 0, 0, 2, "deadletter/y", "entity_rejected"),  # landed and dead-lettered by design
        _raw(4, incarnation=1),  # another life of the partition's offsets: not this one
    ]
    (report,) = reconcile({("t", 0): (0, 8)}, landed, {("t", 0): 0})
    assert report.gaps == [(4, 4), (7, 7)] and report.missing == 2
    assert report.doubles == {6: ["raw/a", "raw/b"]}
    assert (report.landed, report.dead_lettered) == (5, 2)
    (current,) = reconcile({("t", 0): (4, 5)}, landed, {("t", 0): 1})
    assert current.clean


def test_ranges_group_consecutive_offsets() -> None:
    assert ranges([7, 1, 2, 3, 9, 10]) == [(1, 3), (7, 7), (9, 10)]


def test_only_an_idle_group_moves_and_a_move_says_what_it_does() -> None:
    assert group_is_idle("ConsumerGroupState.EMPTY") and group_is_idle("DEAD")
    assert not group_is_idle("ConsumerGroupState.STABLE") and not group_is_idle("PREPARING_REBALANCE")
    assert Move("t", 0, 100, 40, "search").shift == -60 and Move("t", 0, None, 40, "broker").shift is None


def test_an_unreadable_file_is_named_and_its_offsets_count_as_missing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    bad_path = f"deadletter/orders/date=2026-11-24/hour=10/orders+1+i0+{13:020d}+{13:020d}.schema.jsonl.gz"
    lake.write_atomic(bad_path, gzip.compress(b'{"hello": "world"}\n'))
    with pytest.raises(UnreadableLakeFile, match=re.escape(bad_path)):
        landed_offsets(lake, "orders")
    unreadable: list[str] = []
    landed = landed_offsets(lake, "orders", unreadable)
    assert [row.offset for row in landed] == [10, 11, 12] and unreadable == [f"{bad_path}: KeyError: '_topic'"]
    (report,) = reconcile({TopicPartition("orders", 1): (10, 14)}, landed, {})
    assert report.gaps == [(13, 13)]
    table = report_table("orders", "orders", [report], unreadable)
    assert f"unreadable (left out, its offsets count as missing): {bad_path}" in table
    assert table.endswith("result: NOT reconciled")


class _RetentionAfterListing:
    """A local lake whose first raw file listed is deleted right after the listing (the lifecycle rule's run)."""

    def __init__(self, inner: LocalLake) -> None:
        self.inner = inner

    def list_paths(self, prefix: str) -> list[str]:
        paths = self.inner.list_paths(prefix)
        if prefix.startswith("raw/") and paths:
            (self.inner.root / paths[0]).unlink()
        return paths

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_file_deleted_after_the_listing_is_named_and_its_offsets_count_as_missing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    for first in (0, 10):
        records = records_for(get_source("clickstream"), 10, first_offset=first)
        batch = process_batch(get_source("clickstream"), records, max_record_bytes=100_000)
        land(lake, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))
    gone = lake.list_paths("raw/clickstream")[0]
    unreadable: list[str] = []
    landed = landed_offsets(_RetentionAfterListing(lake), "clickstream", unreadable)  # type: ignore[arg-type]
    assert sorted(row.offset for row in landed) == list(range(10, 20))
    assert unreadable == [f"{gone}: LakeError: {gone} does not exist"]
    (report,) = reconcile({TopicPartition("clickstream", 0): (0, 20)}, landed, {})
    assert report.gaps == [(0, 9)]


def test_offsets_past_the_groups_committed_offset_are_pending_not_missing() -> None:
    """During a live run the processor has not reached the newest records: a gap there is not a loss."""
    landed = [_raw(o) for o in (0, 1, 3)]
    retained = {TopicPartition("t", 0): (0, 8), TopicPartition("t", 1): (0, 2)}
    (first, second) = reconcile(retained, landed, {}, {TopicPartition("t", 0): 5, TopicPartition("t", 1): None})
    assert (first.gaps, first.pending, first.clean) == ([(2, 2), (4, 4)], 3, False), "below 5: missing"
    assert (second.gaps, second.pending, second.clean) == ([], 2, True), "never committed: all pending"
    (without,) = reconcile({TopicPartition("t", 0): (0, 8)}, landed, {})
    assert (without.gaps, without.pending) == ([(2, 2), (4, 7)], 0)


def test_offsets_that_hold_no_record_are_counted_apart_from_gaps_and_pending() -> None:
    """A transactional producer's commit markers (and records aborted, or compacted away) take offsets no
    consumer is given: only offsets the broker holds a record at are gaps, or pending past the group."""
    asked: list[list[tuple[int, int]]] = []

    def records_in(position: TopicPartition, gaps: list[tuple[int, int]]) -> set[int]:
        asked.append(gaps)
        return {12, 13, 18, 20, 99}

    landed = [Landed("t", 0, 0, offset, "raw/x", None) for offset in (5, 6)]
    tp = TopicPartition("t", 0)
    [report] = reconcile({tp: (0, 21)}, landed, {}, {tp: 15}, records_in)
    assert asked == [[(0, 4), (7, 20)]]
    assert (report.gaps, report.pending, report.no_record, report.clean) == ([(12, 13)], 2, 15, False)
    [report] = reconcile({tp: (0, 21)}, landed, {}, {tp: 15}, lambda tp, gaps: set())
    assert (report.gaps, report.pending, report.no_record, report.clean) == ([], 0, 19, True)
    asked.clear()  # no committed offset: pending from past the last row landed (5-6), so 0-4 are read, as markers
    [report] = reconcile({tp: (0, 21)}, landed, {}, {tp: None}, records_in)
    assert (asked, report.gaps, report.pending, report.no_record) == ([[(0, 4), (7, 20)]], [], 4, 15)
    asked.clear()  # nothing landed: every missing offset is pending, and the log is not read for it
    [report] = reconcile({tp: (0, 21)}, [], {}, {tp: None}, records_in)
    assert (asked, report.gaps, report.pending, report.no_record) == ([], [], 21, 0)
    assert [in_ranges([(3, 3), (7, 9)], offset) for offset in (2, 3, 4, 7, 9, 10)] == [0, 1, 0, 1, 1, 0]


def test_an_offset_only_a_letter_in_raw_by_design_names_is_missing_whatever_the_group_committed() -> None:
    """``entity_rejected`` and reprocess letters are in raw/ and deadletter/ by design: alone, the raw row is gone.
    The record was processed (its letter says so): past the committed offset it is no pending record, and the
    broker is not asked whether the offset holds one."""
    asked: list[list[tuple[int, int]]] = []

    def records_in(position: TopicPartition, gaps: list[tuple[int, int]]) -> set[int]:
        asked.append(gaps)
        return {offset for first, last in gaps for offset in range(first, last + 1)}

    landed = [
        *(_raw(o) for o in (0, 1, 3)),
        Landed("t", 0, 0, 2, "deadletter/e", "entity_rejected"),
        Landed("t", 0, 0, 3, "deadletter/e", "entity_rejected"),  # with its raw row: in both by design
        Landed("t", 0, 0, 4, "deadletter/orders+0+i0+4+4.reprocessed-1.jsonl.gz", "schema"),
    ]
    tp = TopicPartition("t", 0)
    [report] = reconcile({tp: (0, 5)}, landed, {tp: 0}, {tp: 3}, records_in)
    assert (report.gaps, report.raw_gone, report.pending, report.doubles) == ([(2, 2), (4, 4)], [(2, 2), (4, 4)], 0, {})
    assert (report.landed, report.dead_lettered, asked) == (3, 1, [])


def _ledger(records: list[KafkaRecord], incarnation: int = 0, **fields: Any) -> Ledger:
    ledger = Ledger(incarnation=incarnation, **fields)
    ledger.remember(*records)
    return ledger


def _records(offsets: range, life: str) -> list[KafkaRecord]:
    return [KafkaRecord("t", 0, o, f"{life}{o}", b"v", FIXED_NOW_MS) for o in offsets]


def _broker(records: list[KafkaRecord], asked: list[int]) -> Callable[[list[int]], dict[int, str]]:
    def ask(offsets: list[int]) -> dict[int, str]:
        asked.extend(offsets)
        return {r.offset: fingerprint(r) for r in records if r.offset in offsets}

    return ask


def test_the_broker_records_at_fingerprinted_offsets_tell_which_rows_are_its_life() -> None:
    """As the landing tells a batch's life: records matching the ledger's fingerprints are its life; differing
    at every one, the topic was recreated (the next life, none of it landed); matching, then differing further up,
    the new life's first records landed as the old life and the rest has not landed."""
    old, new = _records(range(100, 120), "old"), _records(range(130), "new")
    ledger = _ledger([old[0], old[-1]], landed=[[100, 119]])
    asked: list[int] = []
    assert life_of(ledger, 100, 120, 100, _broker(old, asked)) == Life(0) and asked == [100, 119]
    assert life_of(ledger, 100, 130, 100, _broker(new, [])) == Life(1, recreated_from=100)
    asked.clear()  # nothing fingerprinted in the retained log, which ends below what landed: recreated, not asked
    assert life_of(ledger, 0, 100, 100, _broker(new, asked)) == Life(1, recreated_from=0) and asked == []
    assert life_of(ledger, 100, 130, 100, None) == Life(0)
    ledger.remember(new[0], new[49], new[50], new[99])  # 0-99 landed as the old life
    assert life_of(ledger, 0, 130, 0, _broker(new, [])) == Life(0, recreated_from=100)
    assert life_of(ledger, 0, 100, 0, _broker(new, [])) == Life(0)

    restarted = ledger.next_incarnation(seen_at=100)  # the restart showed at 100: 100-129 land as incarnation 1
    restarted.remember(new[100], new[129])
    restarted.landed = [[100, 129]]
    assert life_of(restarted, 0, 130, 100, _broker(new, [])) == Life(1, adopted_below=100)
    assert life_of(restarted, 0, 130, None, _broker(_records(range(130), "third"), [])) == Life(2, recreated_from=0)
    kept = Life(1, adopted_below=100)
    counts = [kept.counts(Landed("t", 0, i, o, "raw/x")) for i, o in ((0, 99), (0, 100), (1, 100), (2, 5))]
    assert counts == [True, False, True, False]  # the life before counts below the adopted offset only


def test_a_log_that_ends_below_what_the_ledger_landed_is_a_recreated_topic() -> None:
    """No fingerprinted offset in the retained [40, 50), but the ledger counts 0-999 landed: offsets never go back
    in one life, so the broker's records are a new life's, and the old life's rows at 40-49 do not count."""
    ledger = Ledger(
        incarnation=0, landed=[[0, 999]], fingerprints={0: "old0", **{o: f"old{o}" for o in range(936, 1000)}}
    )
    life = life_of(ledger, 40, 50, 0, lambda offsets: {o: f"new{o}" for o in offsets})
    assert (life.incarnation, life.recreated_from) == (1, 40)
    old_rows = [Landed("t", 0, 0, offset, f"raw/s/x{offset}", None) for offset in range(40, 50)]
    where = TopicPartition("t", 0)
    (report,) = reconcile({where: (40, 50)}, old_rows, {where: life})
    assert report.missing == 10 and not report.clean


def test_a_retained_log_with_no_fingerprinted_offset_is_reported_unverified_not_plainly_clean() -> None:
    """The ledger fingerprinted only offsets retention has deleted since: the rows at 90-99 cannot be compared
    with the broker's records, so the report says the result holds only if they are the broker's."""
    ledger = Ledger(incarnation=0, landed=[[0, 99]], fingerprints={o: f"d{o}" for o in range(0, 10)})
    life = life_of(ledger, 90, 100, 0, lambda offsets: {})
    assert (life.incarnation, life.recreated_from, life.verified) == (0, None, False)
    rows = [Landed("t", 0, 0, offset, f"raw/s/x{offset}", None) for offset in range(90, 100)]
    where = TopicPartition("t", 0)
    reports = reconcile({where: (90, 100)}, rows, {where: life})
    assert reports[0].clean
    printed = report_table("s", "t", reports)
    assert "unverified: partition 0" in printed
    assert printed.splitlines()[-1].startswith("result: every retained offset is in the lake exactly once, if")


def test_fingerprinted_offsets_that_hold_no_record_now_leave_the_life_unverified() -> None:
    """Review 15: the broker answered none of the fingerprinted offsets (a commit marker there, or compacted away):
    nothing matched and nothing differed, and the life was reported verified, its rows counted as clean."""
    old = _records(range(100, 120), "old")
    ledger = _ledger([old[0], old[-1]], landed=[[100, 119]])
    life = life_of(ledger, 100, 120, 100, lambda offsets: {})
    assert (life.incarnation, life.verified) == (0, False)
