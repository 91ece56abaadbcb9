"""``tools.reprocess --promote`` run again after a commit that failed, once the hour's rows changed: every row that
leaves curated is dead-lettered once, and no row that stays is.

The leaving rows' ``.reprocessed`` letters are written before the hour's commit, one file per topic, partition,
incarnation and Kafka hour, named by a digest of its offsets. A commit that failed (the store timed out) is left
for a rerun, which the tool tells operators to make after the next compaction; a late raw file compacted into the
hour in between (or a code change) gives the rerun another leaving set, so another file name, and the first
attempt's file stayed: its offsets were dead-lettered twice (a review proved it), a row that stays in curated
dead-lettered too. A promotion now removes first the letters of an attempt that never committed (every row they
hold is still in the hour's curated rows as read), then writes its own: at no moment is an offset in two files.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, cast

import pytest

from shared import formats
from shared.compaction.delta_table import CuratedTable
from shared.errors import LakeUnavailable
from shared.lake.base import LakeStore
from shared.reprocess import HourResult, removed_by_promotions
from shared.source_model import Row, Source
from tests.lake import test_compaction
from tests.lake.test_compaction import H10, Lake, curated_rows, run
from tests.lake.test_drift import land_records
from tests.lake.test_reprocess import H11, WINDOW, _changed, _land_two_hours, _reprocessed_files, _shadow
from tools.reprocess import promote, reprocess

lake = test_compaction.lake  # the fixture: a local lake, and Azurite
LATE = 30  # the offset of a late event of H10 (id 7, which today's code refuses)


class _CommitTimesOut:
    """The curated table, whose commits fail as a store timing out does (the hour is left for a rerun)."""

    def __init__(self, inner: CuratedTable) -> None:
        self.inner = inner

    def commit_hour(self, *args: object, **kwargs: object) -> None:
        raise LakeUnavailable("the store timed out on the commit")

    def clear_hour(self, *args: object, **kwargs: object) -> None:
        raise LakeUnavailable("the store timed out on the commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Crashing:
    """The lake; the process dies before its ``at``-th write or delete (counted from 1) reaches the store."""

    def __init__(self, inner: LakeStore, at: int) -> None:
        self.inner, self.at, self.count = inner, at, 0

    def _mutation(self) -> None:
        self.count += 1
        if self.count == self.at:
            raise LakeUnavailable(f"crashed before write {self.at}")

    def create(self, path: str, data: bytes) -> bool:
        self._mutation()
        return self.inner.create(path, data)

    def write_atomic(self, path: str, data: bytes) -> None:
        self._mutation()
        self.inner.write_atomic(path, data)

    def delete(self, path: str) -> None:
        self._mutation()
        self.inner.delete(path)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        self._mutation()
        return self.inner.write_if(path, data, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _timing_out(lake: Lake) -> CuratedTable:
    return cast(CuratedTable, _CommitTimesOut(lake.table("things")))


def _hours(lake: Lake, source: Source) -> dict[str, HourResult]:
    results = reprocess(
        source, lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake), window=WINDOW,
        max_record_bytes=10_000,
    )  # fmt: skip
    return {str(result.diff.hour): result for result in results}


def _letters_per_offset(lake: Lake) -> Counter[int]:
    """How many ``.reprocessed`` letters hold each offset (the test's rows are all of one partition and life)."""
    held: Counter[int] = Counter()
    for path in _reprocessed_files(lake):
        held.update(int(row["_offset"]) for row in formats.decode("jsonl", lake.store.read(path)))
    return held


def _curated_offsets(lake: Lake) -> set[int]:
    return {int(row["_offset"]) for hour in (H10, H11) for row in curated_rows(lake, "things", hour)}


def _first_attempt_fails_then_a_late_file_is_compacted(lake: Lake, landed: Source, today: Source) -> None:
    """Attempt 1: H10's commit times out (its letters, offsets 3 and 5, are written), H11 is promoted. Then a late
    event of H10 lands (with the code that landed the others) and the next compaction merges it into the hour."""
    hours = _hours(lake, today)
    with pytest.raises(LakeUnavailable, match="timed out"):
        promote(today, hours[str(H10)], lake=lake.store, curated=_timing_out(lake), run_id="a1", now_ms=0)
    promote(today, hours[str(H11)], lake=lake.store, curated=lake.table("things"), run_id="a1", now_ms=0)
    assert _letters_per_offset(lake) == {3: 1, 5: 1, 7: 1, 9: 1}, "written before the commits, H10's failed"
    land_records(lake, landed, [{"id": 7, "address": {"city": "late"}}], LATE)
    assert [hour.hour for hour in run(lake, "things").hours] == [H10]
    assert LATE in _curated_offsets(lake)


def test_a_rerun_after_a_failed_commit_and_a_late_file_dead_letters_every_offset_once(lake: Lake) -> None:
    landed = _land_two_hours(lake)
    today = _changed(landed)  # odd ids above 2 leave: offsets 3, 5 of H10, 7, 9 of H11
    _first_attempt_fails_then_a_late_file_is_compacted(lake, landed, today)

    hours = _hours(lake, today)
    assert not hours[str(H11)].diff.differs, "H11 was promoted: nothing to do there"
    promote(today, hours[str(H10)], lake=lake.store, curated=lake.table("things"), run_id="a2", now_ms=0)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4]
    letters = _letters_per_offset(lake)
    assert letters == {3: 1, 5: 1, LATE: 1, 7: 1, 9: 1}, f"dead letters per offset: {dict(letters)}"
    assert not set(letters) & _curated_offsets(lake), "no row is both in curated and dead-lettered"
    assert {identity[3] for identity in removed_by_promotions(lake.store, "things")} == {3, 5, LATE, 7, 9}

    files = _reprocessed_files(lake)
    assert not any(result.diff.differs for result in _hours(lake, today).values()), "an operator's rerun: nothing"
    assert _reprocessed_files(lake) == files


def _refuses_five(source: Source) -> Source:
    """The code changed again before the rerun: evens upper-cased as before, but only id 5 refused (3 passes)."""

    class Model(source.model):  # type: ignore[name-defined,misc]
        @staticmethod
        def check_record(record: Row) -> Row:
            if record["id"] == 5:
                raise ValueError("id 5 is refused now")
            return record

    return dataclasses.replace(_changed(source), model=Model)


def _refuses_none(source: Source) -> Source:
    """The code changed again before the rerun: evens upper-cased as before, nothing refused."""
    return dataclasses.replace(_changed(source), model=source.model)


@pytest.mark.parametrize(("rerun_code", "leaving"), [(_refuses_five, {5}), (_refuses_none, set())])
def test_a_row_that_left_in_the_failed_attempt_and_stays_in_the_rerun_keeps_no_letter(
    lake: Lake,
    rerun_code: Any,
    leaving: set[int],
) -> None:
    source = _land_two_hours(lake)
    hours = _hours(lake, _changed(source))  # offsets 3 and 5 leave H10
    with pytest.raises(LakeUnavailable, match="timed out"):
        promote(_changed(source), hours[str(H10)], lake=lake.store, curated=_timing_out(lake), run_id="a1", now_ms=0)
    assert _letters_per_offset(lake) == {3: 1, 5: 1}

    today = rerun_code(source)  # the operator changed the code before running the command again
    rerun = _hours(lake, today)[str(H10)]
    assert rerun.diff.differs and rerun.diff.removed == len(leaving)
    promote(today, rerun, lake=lake.store, curated=lake.table("things"), run_id="a2", now_ms=0)
    stays = {int(row["_offset"]) for row in curated_rows(lake, "things", H10)}
    assert stays == set(range(6)) - leaving
    letters = _letters_per_offset(lake)
    assert letters == dict.fromkeys(leaving, 1), f"dead letters per offset: {dict(letters)}; curated {sorted(stays)}"


@pytest.mark.parametrize("at", [1, 2, 3])
def test_a_rerun_crashing_between_any_two_writes_then_run_again_dead_letters_every_offset_once(
    lake: Lake,
    at: int,
) -> None:
    """The rerun's writes: the failed attempt's letters removed, its own written, the hour's data file; then the
    commit (the first attempt's failure). Whichever the process dies before, no offset is in two files, and the
    command run once more leaves every leaving offset in exactly one."""
    landed = _land_two_hours(lake)
    today = _changed(landed)
    _first_attempt_fails_then_a_late_file_is_compacted(lake, landed, today)

    crashing = cast(LakeStore, _Crashing(lake.store, at))
    with pytest.raises(LakeUnavailable, match=f"crashed before write {at}"):
        promote(today, _hours(lake, today)[str(H10)], lake=crashing, curated=lake.table("things"), run_id="c", now_ms=0)
    assert max(_letters_per_offset(lake).values()) == 1, f"after a crash before write {at}: {_letters_per_offset(lake)}"
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 3, 4, 5, 7], "not committed"

    promote(today, _hours(lake, today)[str(H10)], lake=lake.store, curated=lake.table("things"), run_id="c", now_ms=0)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4]
    assert _letters_per_offset(lake) == {3: 1, 5: 1, LATE: 1, 7: 1, 9: 1}


def test_the_letters_of_a_promotion_that_committed_stay_when_the_hour_is_promoted_again(lake: Lake) -> None:
    """Its rows left curated: its letters are not an attempt that never committed, whatever the next one removes."""
    source = _land_two_hours(lake)
    hours = _hours(lake, _changed(source))  # offsets 3 and 5 leave H10
    promote(_changed(source), hours[str(H10)], lake=lake.store, curated=lake.table("things"), run_id="p1", now_ms=0)
    committed = _reprocessed_files(lake)

    class Model(source.model):  # type: ignore[name-defined,misc]
        @staticmethod
        def check_record(record: Row) -> Row:
            if record["id"] % 2 and record["id"] < 6:
                raise ValueError("odd ids below 6 are refused now")
            return record

    stricter = dataclasses.replace(source, model=Model)  # 1 leaves too
    h10 = _hours(lake, stricter)[str(H10)]
    promote(stricter, h10, lake=lake.store, curated=lake.table("things"), run_id="p2", now_ms=0)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 2, 4]
    assert set(committed) < set(_reprocessed_files(lake))
    assert _letters_per_offset(lake) == {1: 1, 3: 1, 5: 1}
