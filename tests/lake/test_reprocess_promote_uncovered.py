"""A promotion never leaves a raw file of its hour that the next compaction would merge without knowing of it.

A promotion moves rows to dead letters and records as covered the raw files its rows were read with. A raw file
of the hour it did not cover (a redelivery landed twice under another name, a late file) is new to the next
compaction, which merges it: the removed rows came back, in curated and in deadletter/ (a review proved it). The
hour is refused instead (``shared.reprocess.check_promotable``), and promoted by a rerun once compaction has it.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from shared.batch import process_batch
from shared.compaction.hours import Hour
from shared.compaction.job import compact
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.records import KafkaRecord
from shared.redrive import read_dead_letters
from shared.reprocess import HourNotPromotable
from shared.settings import load_settings
from tests.conftest import FIXED_NOW_MS
from tests.lake.test_compaction import GRACE, H10, Lake, curated_rows, run
from tests.lake.test_drift import things
from tests.lake.test_reprocess import WINDOW, _changed, _land_two_hours, _shadow, _values
from tools.reprocess import promote, reprocess

HOUR = 3_600_000
PAST_HOURS = 70  # > 64 commits after the ahead commit: more than a lookup of one hour reads at first


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


def test_rows_a_promotion_removed_do_not_come_back_with_the_next_compaction(lake: Lake) -> None:
    source = _land_two_hours(lake)  # H10: offsets 0-5 compacted; H11: 6-9
    # The same records 3-5 land again under another name (a redelivery cut differently), after the last tick.
    again = [
        KafkaRecord("things", 0, offset, None, orjson.dumps(value), FIXED_NOW_MS + offset)
        for offset, value in zip(range(3, 6), _values(range(3, 6)), strict=True)
    ]
    batch = process_batch(source, again, max_record_bytes=10_000)
    (duplicate,) = land(lake.store, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)).files
    assert f"date={H10.date}/hour={H10.hour}" in duplicate

    curated = lake.table("things")
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    h10 = next(r for r in results if r.diff.hour == H10)
    with pytest.raises(HourNotPromotable, match=f"{H10} holds raw files its rows were not read from") as refused:
        promote(source, h10, lake=lake.store, curated=curated, run_id="r1", now_ms=FIXED_NOW_MS)
    assert duplicate in str(refused.value)
    assert {e.offset for e in read_dead_letters(lake.store, "things")} == {20}, "refused: nothing written"
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 3, 4, 5]

    run(lake, "things")  # the next tick merges the duplicate: its rows are held once
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    h10 = next(r for r in results if r.diff.hour == H10)
    promote(source, h10, lake=lake.store, curated=curated, run_id="r2", now_ms=FIXED_NOW_MS)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4]
    removed = {e.offset for e in read_dead_letters(lake.store, "things")} - {20}
    assert removed == {3, 5}, "the promotion moved rows 3 and 5 to dead letters"

    run(lake, "things")  # the next tick
    offsets = sorted(row["_offset"] for row in curated_rows(lake, "things", H10))
    assert offsets == [0, 1, 2, 4], f"curated {offsets}; offsets {sorted(removed)} are also dead letters now"


def test_an_hour_that_has_not_begun_is_not_promoted(lake: Lake) -> None:
    """A commit made before its hour began is found by compaction only through the hour's data files, written then
    (``CuratedTable.hour_coverage``): a promotion that empties the hour leaves none, could be missed, and the raw
    files merged again with the rows it removed. Refused, named, until the hour has begun."""
    source = things()
    start = int(time.time() * 1000) // HOUR * HOUR + 40 * 24 * HOUR
    records = [
        KafkaRecord("things", 0, offset, None, orjson.dumps(value), start + offset)
        for offset, value in enumerate(_values(range(6)))
    ]
    land(
        lake.store,
        plan_batch(process_batch(source, records, max_record_bytes=10_000), format_named("parquet"), now_ms=start),
    )
    curated = lake.table("things")
    assert compact("things", lake.store, curated, now_ms=int(time.time() * 1000), grace_ms=GRACE).rows == 6
    results = reprocess(
        _changed(source),
        lake=lake.store,
        curated=curated,
        shadow=_shadow(lake),
        window=(start, start + HOUR),
        max_record_bytes=10_000,
    )
    (ahead,) = results
    assert ahead.diff.differs
    with pytest.raises(HourNotPromotable, match=f"{ahead.diff.hour} has not begun"):
        promote(source, ahead, lake=lake.store, curated=curated, run_id="r", now_ms=start)
    assert {e.offset for e in read_dead_letters(lake.store, "things")} == set(), "refused: nothing written"
    promote(source, ahead, lake=lake.store, curated=curated, run_id="r", now_ms=start, clock=lambda: start / 1000)
    assert sorted(row["id"] for row in curated_rows(lake, "things", ahead.diff.hour)) == [0, 1, 2, 4]


def _land(lake: Lake, records: list[KafkaRecord], now_ms: int) -> None:
    batch = process_batch(things(), records, max_record_bytes=10_000)
    assert batch.dead_letters == []
    land(lake.store, plan_batch(batch, format_named("parquet"), now_ms=now_ms))


def test_a_promotion_of_an_hour_compacted_ahead_is_not_refused_for_good(lake: Lake) -> None:
    """An hour compacted ahead of its start (``plan.AHEAD_LEAD_MS``) has a commit older than the hour's start.
    Compaction asks about every hour with raw files, so it paged far enough to find it; ``tools.reprocess`` asked
    about its window's hours only, missed it once more than a page of commits came after, and refused the hour as
    holding "raw files its rows were not read from" on every rerun, although compaction had them: it had nothing
    left to do for the hour, until the lifecycle rule deleted the raw files."""
    source = things()
    real_now = int(time.time() * 1000)
    start = real_now // HOUR * HOUR + 3 * HOUR  # starts > AHEAD_LEAD_MS past now: compacted at once
    ahead = Hour.of_ms(start)
    _land(
        lake,
        [
            KafkaRecord("things", 0, offset, None, orjson.dumps(value), start + offset)
            for offset, value in enumerate(_values(range(6)))
        ],
        start,
    )
    curated = lake.table("things")
    first = compact("things", lake.store, curated, now_ms=real_now, grace_ms=GRACE)
    assert first.plan.ahead_hours == 1 and first.rows == 6

    # Then the source's other hours are compacted: one commit each (late data, a backfill).
    past = [real_now // HOUR * HOUR - (30 + i) * HOUR for i in range(PAST_HOURS)]
    _land(
        lake,
        [
            KafkaRecord("things", 0, 100 + i, None, orjson.dumps({"id": 100 + i, "address": {"city": "c"}}), at)
            for i, at in enumerate(past)
        ],
        real_now,
    )
    assert compact("things", lake.store, curated, now_ms=real_now, grace_ms=GRACE).rows == PAST_HOURS

    # Now the hour has begun (and closed): compaction finds its commit, so it has nothing to do for it.
    later = start + 2 * HOUR
    settled = compact("things", lake.store, curated, now_ms=later, grace_ms=GRACE)
    assert ahead not in {task.hour for task in settled.plan.tasks}, "compaction never commits the hour again"

    results = reprocess(
        _changed(source),
        lake=lake.store,
        curated=curated,
        shadow=_shadow(lake),
        window=(start, start + HOUR),
        max_record_bytes=10_000,
    )
    (result,) = results
    assert result.diff.differs
    # Refused with "holds raw files its rows were not read from ... run the command again once compaction has
    # them" before: but compaction has them (above), so every rerun was refused alike.
    promote(source, result, lake=lake.store, curated=curated, run_id="r", now_ms=later, clock=lambda: later / 1000)
    assert sorted(row["id"] for row in curated_rows(lake, "things", ahead)) == [0, 1, 2, 4]
