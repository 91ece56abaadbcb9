"""The raw lake holds each offset once, however batches are cut, redelivered, crashed or restarted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.batch import ProcessedBatch, process_batch
from shared.errors import LakeUnavailable
from shared.formats import decode
from shared.lake import LocalLake
from shared.landing.guard import PartitionWaiting, guard_for, land_once
from shared.records import KafkaRecord
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for

CLICKS = get_source("clickstream")
_columnar = [False]  # clickstream has a columnar transform: every test runs with rows and with one Arrow table


@pytest.fixture(autouse=True, params=[False, True], ids=["rows", "arrow"])
def _batch_form(request: pytest.FixtureRequest) -> None:
    _columnar[0] = request.param


def _land(lake: LocalLake, records: list[KafkaRecord]) -> int:
    batch = process_batch(CLICKS, records, max_record_bytes=1 << 20, columnar=_columnar[0])
    assert (batch.table is not None) == _columnar[0]
    landed = land_once(lake, batch, records, "parquet", now_ms=FIXED_NOW_MS).rows
    assert (batch.table is not None) == _columnar[0]  # redeliveries and incarnations keep the table: no rows built
    return landed


def _rows(root: Path) -> list[dict[str, object]]:
    return [row for path in sorted(root.glob("raw/**/*.parquet")) for row in decode("parquet", path.read_bytes())]


def _positions(root: Path) -> list[tuple[object, ...]]:
    return sorted((row["_partition"], row["_incarnation"], row["_offset"]) for row in _rows(root))


def test_redelivered_and_recut_batches_land_each_offset_once(tmp_path: Path) -> None:
    records = records_for(CLICKS, 300)
    lake = LocalLake(tmp_path)
    assert _land(lake, records[:100]) == 100
    assert _land(lake, records[:100]) == 0  # redelivered as it was
    assert _land(lake, records[:150]) == 50  # redelivered, cut longer
    assert _land(lake, records[50:120]) == 0  # consumer group rewound into landed batches
    assert _land(lake, records[120:300]) == 150
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(300)]


def test_a_new_process_takes_its_position_from_the_lake_not_the_consumer_group(tmp_path: Path) -> None:
    records = records_for(CLICKS, 200)
    _land(LocalLake(tmp_path), records[:120])
    restarted = LocalLake(tmp_path)  # another worker process: no cache, reads the ledger
    assert _land(restarted, records[:200]) == 80
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(200)]


def test_a_crash_after_the_files_but_before_the_next_ledger_write_counts_the_files(tmp_path: Path) -> None:
    records = records_for(CLICKS, 200)
    crashed = LocalLake(tmp_path)
    _land(crashed, records[:100])  # its ledger still says "pending 0-99": the next batch would confirm it
    assert _land(LocalLake(tmp_path), records[:150]) == 50
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(150)]


def test_an_unfinished_landing_is_waited_for_then_removed_and_landed_again(tmp_path: Path) -> None:
    records = records_for(CLICKS, 100)
    crashed = LocalLake(tmp_path)
    _land(crashed, records)
    written = sorted(tmp_path.glob("raw/**/*.parquet"))
    written[0].unlink()  # as if the process died before its last file
    other = LocalLake(tmp_path)
    now = [time.time() + 5]  # within the writer's lease: it may still be writing
    guard_for(other).clock = lambda: now[0]
    with pytest.raises(PartitionWaiting):
        _land(other, records[:80])
    now[0] += 60  # the lease ran out: the writer is gone
    assert _land(other, records[:80]) == 80
    assert _land(other, records) == 20
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(100)]


def test_offsets_that_restart_land_as_a_new_incarnation_beside_the_old_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    first_life = records_for(CLICKS, 100, seed=1)
    _land(lake, first_life)
    old_files = {path: path.read_bytes() for path in tmp_path.glob("raw/**/*.parquet")}
    second_life = records_for(CLICKS, 60, seed=2)  # same offsets 0-59, other records
    assert _land(LocalLake(tmp_path), second_life) == 60
    assert all(path.read_bytes() == data for path, data in old_files.items())  # nothing overwritten
    positions = _positions(tmp_path)
    assert positions == sorted([(0, 0, o) for o in range(100)] + [(0, 1, o) for o in range(60)])
    assert len(list(tmp_path.glob("raw/**/*+i1+*.parquet"))) >= 1


def test_a_stale_cache_loses_the_conditional_write_and_reloads(tmp_path: Path) -> None:
    records = records_for(CLICKS, 300)
    first, second = LocalLake(tmp_path), LocalLake(tmp_path)
    _land(first, records[:100])
    _land(second, records[:200])  # the partition moved to another worker
    assert _land(first, records[100:300]) == 100  # it came back: the old owner's cache is stale
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(300)]


def test_partitions_of_one_batch_are_guarded_separately(tmp_path: Path) -> None:
    zero = records_for(CLICKS, 50, partition=0)
    one = records_for(CLICKS, 50, partition=1, first_offset=1000)
    lake = LocalLake(tmp_path)
    assert _land(lake, zero[:20] + one) == 70
    assert _land(LocalLake(tmp_path), zero + one) == 30
    assert _positions(tmp_path) == [(0, 0, o) for o in range(50)] + [(1, 0, o) for o in range(1000, 1050)]


def test_a_row_dead_lettered_as_unencodable_stays_out_of_a_redelivered_batch(tmp_path: Path) -> None:
    mobile = get_source("mobile")
    records = records_for(mobile, 20)

    def delivered() -> ProcessedBatch:
        batch = process_batch(mobile, records, max_record_bytes=1 << 20)
        batch.rows[5]["screen"] = "\udcff"  # no encoder takes a lone surrogate
        return batch

    first = delivered()
    assert land_once(LocalLake(tmp_path), first, records, "parquet", now_ms=FIXED_NOW_MS).rows == 19
    again = delivered()  # redelivered to a new process: nothing lands, nothing is encoded for landing
    assert land_once(LocalLake(tmp_path), again, records, "parquet", now_ms=FIXED_NOW_MS).rows == 0
    assert 5 not in {row["_offset"] for row in again.rows}  # so no entity counts it
    assert [letter.reason for letter in again.dead_letters] == ["unencodable"]


class _FlakyDeletes(LocalLake):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures = 1

    def delete(self, path: str) -> None:
        if self.failures:
            self.failures -= 1
            raise LakeUnavailable("the lake blinked")
        super().delete(path)


def test_an_unfinished_landing_is_forgotten_only_once_its_files_are_removed(tmp_path: Path) -> None:
    records = records_for(CLICKS, 100)
    _land(LocalLake(tmp_path), records)
    sorted(tmp_path.glob("raw/**/*.parquet"))[0].unlink()  # the writer died before its last file
    flaky = _FlakyDeletes(tmp_path)
    guard_for(flaky).clock = lambda: time.time() + 3600  # long past the writer's lease
    with pytest.raises(LakeUnavailable):
        _land(flaky, records)
    assert _land(flaky, records) == 100
    assert _positions(tmp_path) == [(0, 0, offset) for offset in range(100)]
