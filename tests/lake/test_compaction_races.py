"""Two compaction runs of one source at once (a second host, a manual run during a timer tick), on a local
lake and on Azurite, each with a real Delta table. Threads meet at barriers, never sleeps.

delta-rs retries a commit that lost the race for its version as the next version: an overwrite that read an
empty partition, or a table's creation, then goes in beside the winner's (the hour's rows twice, or a second
CREATE TABLE that replaces the table's schema). Compaction commits with no retry, so the loser's commit fails:
a creation that lost takes the existing table's overwrite path, any other commit stops its run (the next run
redoes the hour, or finds it covered).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shared.compaction import delta_table
from shared.compaction.coverage import REPROCESS_KEY, commit_metadata
from shared.compaction.delta_table import CuratedTable, HourChangedSince
from shared.compaction.hours import Hour
from shared.compaction.job import CompactionReport, compact
from shared.compaction.location import curated_path
from shared.compaction.plan import CompactionPlan
from shared.compaction.rewrite import replace_hour
from shared.compaction.rows import offset_ranges, sort_by_event_time, with_partition_columns
from shared.errors import LakeUnavailable
from shared.lake import LocalLake
from shared.lake.blob import BlobLake
from shared.settings import load_settings
from tests.lake.conftest import NO_RETRIES
from tests.lake.test_compaction import GRACE, H10, LATER, Lake, _key, _parquet, _raw_file, curated_rows, land_batch, run

H11 = Hour.of_ms(H10.end_ms)
AFTER_H11 = H11.end_ms + GRACE + 1
# The creation race is inside delta-rs (its "does the table exist?" look against the other's version 0): the
# barrier sends both runs into it together and one round in several lost it before commits had no retry (it
# lost in every run of 4 rounds on both stores; 0 retries hold whatever the interleaving).
ROUNDS = 3


@pytest.fixture(params=["local", "azurite"])
def new_lake(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Lake]:
    """A fresh, empty lake on each call (the creation race needs a table that does not exist yet)."""

    def make() -> Lake:
        if request.param == "local":
            root = tmp_path / uuid.uuid4().hex[:8]
            return Lake(LocalLake(root), load_settings({"LAKE_LOCAL_ROOT": str(root)}))
        settings = load_settings(
            {
                "LAKE_KIND": "blob",
                "LAKE_CONNECTION_STRING": request.getfixturevalue("azurite").connection_string,
                "LAKE_FILE_SYSTEM": f"lake-{uuid.uuid4().hex[:8]}",
            }
        )
        return Lake(BlobLake.from_settings(settings, **NO_RETRIES), settings)

    return make


@pytest.fixture
def lake(new_lake: Callable[[], Lake]) -> Lake:
    return new_lake()


def _both_at(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, *, after: bool = False) -> None:
    """Each of two runs waits at ``owner.name`` (before the call, or ``after`` it) until the other is there too."""
    barrier = threading.Barrier(2, timeout=60)
    original = getattr(owner, name)

    def gated(*args: Any, **kwargs: Any) -> Any:
        if not after:
            barrier.wait()
        result = original(*args, **kwargs)
        if after:
            barrier.wait()
        return result

    monkeypatch.setattr(owner, name, gated)


def _at_once(*runs: Callable[[], CompactionReport]) -> list[CompactionReport | Exception]:
    """Each run in a thread of its own; what each returned or raised."""
    outcomes: list[CompactionReport | Exception] = [RuntimeError("did not finish")] * len(runs)

    def one(index: int) -> None:
        try:
            outcomes[index] = runs[index]()
        except Exception as error:  # the outcome is asserted on
            outcomes[index] = error

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def _one_won_one_lost(outcomes: list[CompactionReport | Exception]) -> None:
    """One run committed; the other's commit lost its version, which stopped that run (transient)."""
    won = [outcome for outcome in outcomes if isinstance(outcome, CompactionReport)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, LakeUnavailable)]
    assert len(won) == len(lost) == 1, outcomes
    assert "another writer committed first" in str(lost[0])


def _compaction(lake: Lake, now_ms: int, only: Hour | None = None) -> Callable[[], CompactionReport]:
    def planned(plan: CompactionPlan) -> None:
        if only is not None:  # this run compacts one hour of those due
            object.__setattr__(plan, "tasks", tuple(task for task in plan.tasks if task.hour == only))

    return lambda: compact("clickstream", lake.store, lake.table(), now_ms=now_ms, grace_ms=GRACE, on_planned=planned)


def test_two_first_compactions_creating_the_table_at_once_hold_each_row_once(
    new_lake: Callable[[], Lake], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run whose creation lost took the existing table's overwrite path: one CREATE TABLE, the hour once."""
    rounds = []
    for _ in range(ROUNDS):
        lake = new_lake()
        land_batch(lake, 0, 10)
        with monkeypatch.context() as patched:
            _both_at(patched, delta_table, "create_table_with_add_actions")
            outcomes = _at_once(_compaction(lake, LATER), _compaction(lake, LATER))
        run(lake)  # a later tick: nothing new lands in the hour, so nothing would repair it
        operations = [commit["operation"] for commit in lake.delta().history()]
        rounds.append((len(curated_rows(lake)), operations.count("CREATE TABLE"), outcomes))
    assert all(rows == 10 and creations == 1 for rows, creations, _ in rounds), rounds
    assert all(isinstance(outcome, CompactionReport) for *_, outcomes in rounds for outcome in outcomes), rounds


def test_two_first_compactions_of_different_hours_at_once_keep_every_column(
    new_lake: Callable[[], Lake], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A creates the table with H10 (column firmware, only that hour has it), run B with H11 (column region).
    A second CREATE TABLE would replace the table's schema, and the next rewrite of the other hour (a late file)
    drop that column's values for good."""
    rounds = []
    for _ in range(ROUNDS):
        lake = new_lake()
        for hour, offset, extra in ((H10, 0, {"firmware": ["2.1"]}), (H11, 1, {"region": ["eu"]})):
            table = pa.table({"_topic": ["clickstream"], "_partition": [0], "_offset": [offset], **extra})
            table = table.append_column("_event_time", pa.array([hour.start_ms + 1], pa.timestamp("ms", tz="UTC")))
            lake.store.write_atomic(f"raw/clickstream/date={hour.date}/hour={hour.hour}/f.parquet", _parquet(table))
        with monkeypatch.context() as patched:
            _both_at(patched, delta_table, "create_table_with_add_actions")
            _at_once(_compaction(lake, AFTER_H11, only=H10), _compaction(lake, AFTER_H11, only=H11))
        run(lake, now_ms=AFTER_H11)
        _raw_file(lake, H10, "late", range(5, 6))  # late files: each hour is rewritten from its curated rows
        _raw_file(lake, H11, "late", range(6, 7))
        run(lake, now_ms=AFTER_H11 + 900_000)
        rounds.append(
            (
                {"firmware", "region"} - set(lake.delta().schema().to_arrow().names),
                [row.get("firmware") for row in curated_rows(lake, hour=H10) if row["_offset"] == 0],
                [row.get("region") for row in curated_rows(lake, hour=H11) if row["_offset"] == 1],
            )
        )
    assert all(lost == set() and firmware == ["2.1"] and region == ["eu"] for lost, firmware, region in rounds), rounds


def test_two_first_commits_of_a_new_hour_at_once_hold_its_rows_once(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs found no commit of the hour since they read it (an empty partition: Delta records no read
    of it), then both commit: the second fails instead of adding its files beside the first's, and stops its
    run. The hour holds its rows once even though nothing more lands to make it due again."""
    land_batch(lake, 0, 10)
    run(lake)  # the table exists
    _raw_file(lake, H11, "a", range(100, 120))
    with monkeypatch.context() as patched:
        _both_at(patched, CuratedTable, "_latest_unchanged", after=True)
        outcomes = _at_once(_compaction(lake, AFTER_H11), _compaction(lake, AFTER_H11))
    _one_won_one_lost(outcomes)
    assert run(lake, now_ms=AFTER_H11).plan.tasks == (), "the winner's commit covers the hour"
    keys = [_key(row) for row in curated_rows(lake, hour=H11)]
    assert len(keys) == len(set(keys)) == 20


def test_two_recompactions_of_a_compacted_hour_at_once_hold_its_rows_once(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs read the hour's curated rows and a late file, then both commit: one replaces the hour, the
    other's commit fails (its run stops)."""
    land_batch(lake, 0, 20)
    run(lake)
    land_batch(lake, 20, 10)  # a late file: both runs recompact the hour
    with monkeypatch.context() as patched:
        _both_at(patched, CuratedTable, "_latest_unchanged", after=True)
        outcomes = _at_once(_compaction(lake, LATER), _compaction(lake, LATER))
    _one_won_one_lost(outcomes)
    keys = [_key(row) for row in curated_rows(lake)]
    assert len(keys) == len(set(keys)) == 30
    assert run(lake).plan.tasks == ()


def test_a_run_whose_creation_lost_does_not_undo_a_commit_of_its_hour_made_after_the_creation(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review's reproduction: run B plans with no table; run A creates it with H10, a promotion removes offset 3
    from H10; B's creation then fails and it took the overwrite path unchecked: offset 3 was back in curated (and
    in the promotion's ``.reprocessed`` dead letter too: counted twice). B's run now stops at the hour (the next
    run redoes it from the table as it is, or finds it covered)."""
    land_batch(lake, 0, 10)
    create = delta_table.create_table_with_add_actions
    pending = [True]

    def others_first(*args: Any, **kwargs: Any) -> Any:
        if pending:  # B got here having seen no table; meanwhile A compacts and a promotion follows
            pending.pop()
            run(lake)
            table = lake.table()
            read_version = table.version()
            hour = table.read_hour(H10)
            kept = hour.filter(pc.not_equal(hour.column("_offset"), 3))
            rows = with_partition_columns(H10, sort_by_event_time(kept))
            raw = [path for path in lake.store.list_paths("raw/clickstream") if path.endswith(".parquet")]
            metadata = commit_metadata("clickstream", H10, raw, offset_ranges(rows), rows.num_rows)
            replace_hour(lake.store, table, curated_path("clickstream"), H10, rows, metadata, read_version=read_version)
        return create(*args, **kwargs)

    monkeypatch.setattr(delta_table, "create_table_with_add_actions", others_first)
    with pytest.raises(HourChangedSince):
        _compaction(lake, LATER)()
    run(lake)  # the next tick: the promotion's commit covers the hour's raw files
    assert sorted(row["_offset"] for row in curated_rows(lake)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_a_run_whose_creation_lost_to_a_promotion_does_not_undo_it(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second review of the fix above: a promotion on a source with no table yet creates it (version 0), and a
    compaction that planned before then took version 0 for another compaction's creation and overwrote the hour."""
    land_batch(lake, 0, 10)
    elsewhere = tmp_path / "elsewhere"  # the promotion's rows: the hour compacted, offset 3 removed
    other = Lake(LocalLake(elsewhere), load_settings({"LAKE_LOCAL_ROOT": str(elsewhere)}))
    land_batch(other, 0, 10)
    run(other)
    hour = other.table().read_hour(H10)
    rows = with_partition_columns(H10, sort_by_event_time(hour.filter(pc.not_equal(hour.column("_offset"), 3))))
    raw = [path for path in lake.store.list_paths("raw/clickstream") if path.endswith(".parquet")]
    metadata = commit_metadata("clickstream", H10, raw, offset_ranges(rows), rows.num_rows) | {REPROCESS_KEY: "{}"}
    create = delta_table.create_table_with_add_actions
    pending = [True]

    def promotion_first(*args: Any, **kwargs: Any) -> Any:
        if pending:
            pending.pop()
            replace_hour(lake.store, lake.table(), curated_path("clickstream"), H10, rows, metadata, read_version=-1)
        return create(*args, **kwargs)

    monkeypatch.setattr(delta_table, "create_table_with_add_actions", promotion_first)
    with pytest.raises(HourChangedSince):
        _compaction(lake, LATER)()
    run(lake)
    assert sorted(row["_offset"] for row in curated_rows(lake)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
