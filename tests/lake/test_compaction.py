"""Compaction on real stores: a local directory and Azurite (Blob API), each with a real Delta table.

ADLS through the fake Data Lake server is not covered: delta-rs reaches Azure through the Blob
REST API (object_store), and the fake server implements only the Data Lake (dfs) endpoints.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from devhost.services.azurite import Azurite
from shared import formats
from shared.batch import process_batch
from shared.compaction import delta_table, parts, rewrite
from shared.compaction.coverage import METADATA_KEY, parse_commit
from shared.compaction.delta_table import CuratedTable
from shared.compaction.drift import METADATA_KEY as DRIFT_KEY
from shared.compaction.hours import Hour
from shared.compaction.job import compact, open_curated
from shared.errors import LakeUnavailable
from shared.formats import format_named
from shared.lake import LakeStore, LocalLake
from shared.lake.blob import BlobLake
from shared.landing.files import land, plan_batch
from shared.settings import Settings, load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.lake.conftest import NO_RETRIES
from tests.unit.tools.no_settings import NO_SETTINGS

H10 = Hour.of_ms(FIXED_NOW_MS)
LATER = H10.end_ms + 2 * 3_600_000
GRACE = 15 * 60_000
IDENTITY = ("_topic", "_partition", "_incarnation", "_offset")


@dataclass
class Lake:
    store: LakeStore
    settings: Settings

    def table(self, source: str = "clickstream") -> CuratedTable:
        return open_curated(self.settings, source)

    def delta(self, source: str = "clickstream") -> DeltaTable:
        location = self.table(source).location
        return DeltaTable(location.uri, storage_options=location.storage_options)


@pytest.fixture(params=["local", "azurite"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    settings = load_settings(
        {
            "LAKE_KIND": "blob",
            "LAKE_CONNECTION_STRING": azurite.connection_string,
            "LAKE_FILE_SYSTEM": f"lake-{uuid.uuid4().hex[:8]}",
        }
    )
    yield Lake(BlobLake.from_settings(settings, **NO_RETRIES), settings)


@pytest.fixture
def local_lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


def land_batch(
    lake: Lake, first_offset: int, count: int, *, fmt: formats.LakeFormat = "parquet", source: str = "clickstream"
) -> list[str]:
    src = get_source(source)
    batch = process_batch(src, records_for(src, count, first_offset=first_offset), max_record_bytes=100_000)
    return list(land(lake.store, plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS)).files)


def run(lake: Lake, source: str = "clickstream", now_ms: int = LATER) -> Any:
    return compact(source, lake.store, lake.table(source), now_ms=now_ms, grace_ms=GRACE)


def curated_rows(lake: Lake, source: str = "clickstream", hour: Hour = H10) -> list[dict[str, Any]]:
    reader = QueryBuilder().register("t", lake.delta(source)).execute(f"SELECT * FROM t WHERE {hour.predicate}")
    return [_plain(row) for row in pa.table(reader).to_pylist()]


def distinct_raw_rows(lake: Lake, source: str = "clickstream") -> list[dict[str, Any]]:
    """Every raw file decoded with the format's own reader, first row per offset kept."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in lake.store.list_paths(f"raw/{source}"):
        fmt = "jsonl" if path.endswith(".jsonl.gz") else path.rsplit(".", 1)[1]
        for row in formats.decode(fmt, lake.store.read(path)):  # type: ignore[arg-type]
            row.setdefault("_incarnation", 0)
            seen.setdefault(tuple(row[name] for name in IDENTITY), _plain(row))
    return list(seen.values())


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Comparable values: timestamps as epoch ms, maps as dicts, no partition columns."""
    plain = {}
    for name, value in row.items():
        if name in ("date", "hour"):
            continue
        if isinstance(value, datetime):
            value = int(value.astimezone(UTC).timestamp() * 1000)
        elif isinstance(value, list) and all(isinstance(item, tuple) for item in value):
            value = dict(value)
        plain[name] = value
    return plain


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in IDENTITY)


def test_curated_rows_equal_the_distinct_raw_rows_exactly(lake: Lake) -> None:
    files = land_batch(lake, 0, 40) + land_batch(lake, 30, 40) + land_batch(lake, 10, 5)  # overlapping offsets
    report = run(lake)
    assert (len(report.hours), report.files_in, report.rows) == (1, len(files), 70)
    curated = curated_rows(lake)
    assert sorted(curated, key=_key) == sorted(distinct_raw_rows(lake), key=_key)
    times = [row["_event_time"] for row in curated]
    assert times == sorted(times), "rows are sorted by event time"
    assert report.files_out == 1 and len(lake.delta().file_uris()) == 1


def test_rerun_is_idempotent_and_late_files_recompact_the_hour(lake: Lake) -> None:
    first_files = land_batch(lake, 0, 20)
    run(lake)
    version = lake.delta().version()
    again = run(lake)
    assert again.plan.tasks == () and lake.delta().version() == version

    late = land_batch(lake, 15, 10)  # 5 duplicates, 5 new offsets
    report = run(lake)
    assert [h.hour for h in report.hours] == [H10] and report.files_in == 1
    assert len(curated_rows(lake)) == 25
    assert lake.delta().version() == version + 1
    document = parse_commit(lake.delta().history(1)[0])
    assert document is not None and document["raw_files"] == sorted(first_files + late)
    assert document["offsets"] == [
        {"topic": "clickstream", "partition": 0, "incarnation": 0, "first": 0, "last": 24, "rows": 25}
    ]
    assert len(lake.delta().file_uris()) == 1, "the hour was replaced, not appended to"


def test_open_hours_wait_and_lag_reports_the_oldest_closed_hour(local_lake: Lake) -> None:
    land_batch(local_lake, 0, 10)
    waiting = run(local_lake, now_ms=H10.end_ms + GRACE - 1)
    assert waiting.plan.tasks == () and waiting.plan.waiting_hours == 1
    planned = run(local_lake, now_ms=H10.end_ms + 40 * 60_000)
    assert planned.plan.lag_ms == 40 * 60_000 and planned.rows == 10


def test_every_format_compacts_into_one_table(local_lake: Lake) -> None:
    land_batch(local_lake, 0, 10, fmt="avro", source="sensors")
    land_batch(local_lake, 5, 10, fmt="jsonl", source="sensors")
    land_batch(local_lake, 12, 10, fmt="parquet", source="sensors")
    assert run(local_lake, "sensors").rows == 22
    assert sorted(curated_rows(local_lake, "sensors"), key=_key) == sorted(
        distinct_raw_rows(local_lake, "sensors"), key=_key
    )


def test_rows_of_raw_files_deleted_by_retention_stay_curated(local_lake: Lake, tmp_path: Path) -> None:
    (expired,) = land_batch(local_lake, 0, 10)
    run(local_lake)
    (tmp_path / expired).unlink()  # what the storage lifecycle rule does after raw_retention_days
    land_batch(local_lake, 10, 5)
    run(local_lake)
    assert sorted(row["_offset"] for row in curated_rows(local_lake)) == list(range(15))


def test_a_reader_during_compaction_sees_the_old_hour_or_the_new_one(lake: Lake) -> None:
    land_batch(lake, 0, 2000)
    run(lake)
    land_batch(lake, 2000, 2000)
    counts: list[int] = []
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set() or not counts:
            counts.append(len(curated_rows(lake)))

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        run(lake)
    finally:
        done.set()
        reader.join(timeout=60)
    counts.append(len(curated_rows(lake)))
    assert counts and set(counts) <= {2000, 4000} and counts[-1] == 4000
    delta = lake.delta()
    for version in range(delta.version() + 1):  # and so does every version a reader could pin
        delta.load_as_version(version)
        reader_rows = pa.table(QueryBuilder().register("t", delta).execute("SELECT _offset FROM t")).num_rows
        assert reader_rows in {2000, 4000}


def test_an_unreadable_raw_file_is_quarantined_and_its_hours_good_rows_outlive_raw_retention(
    local_lake: Lake,
) -> None:
    """A truncated file used to fail its hour on every run; once the lifecycle rule deleted the hour's raw files
    (raw_retention_days), the hour was no longer planned, the lag metric dropped to 0 and its good rows were
    nowhere in curated. The file is quarantined and the good rows compact in the same run."""
    good = land_batch(local_lake, 0, 10)
    data = _parquet(pa.table({"_topic": ["clickstream"], "_partition": [0], "_offset": [100]}))
    bad = f"raw/clickstream/date={H10.date}/hour={H10.hour}/clickstream+0+i0+{100:020d}+{100:020d}.parquet"
    local_lake.store.write_atomic(bad, data[: len(data) // 2])
    report = run(local_lake)
    assert not report.failed and [q.raw_path for q in report.quarantined] == [bad]
    assert "cannot read raw file" in report.quarantined[0].why
    for path in good:  # raw_retention_days later: the storage lifecycle rule
        local_lake.store.delete(path)
    after = run(local_lake, now_ms=LATER + 8 * 86_400_000)
    assert not after.failed and after.plan.tasks == () and after.plan.lag_ms == 0
    assert sorted(row["_offset"] for row in curated_rows(local_lake)) == list(range(10))


def test_a_column_whose_type_changed_still_compacts_and_keeps_misfits_in_extra(local_lake: Lake) -> None:
    """userid is a long in the table; a raw file brings it as text: what casts stays, the rest goes to _extra."""
    land_batch(local_lake, 0, 10)
    run(local_lake)
    late = pa.table(
        {
            "_topic": ["clickstream", "clickstream"],
            "_partition": [0, 0],
            "_offset": [98, 99],
            "userid": ["not a number", "17"],
            "_extra": [None, '{"new_field": {"nested": [1, 2]}}'],
        }
    ).append_column("_event_time", pa.array([H10.start_ms + 5] * 2, pa.timestamp("ms", tz="UTC")))
    local_lake.store.write_atomic(
        f"raw/clickstream/date={H10.date}/hour={H10.hour}/clickstream+0+i0+{98:020d}+{99:020d}.parquet",
        _parquet(late),
    )
    report = run(local_lake)
    assert not report.failed
    (hour,) = report.hours
    assert hour.drift is not None
    assert {name: (c.curated, c.landed, c.moved) for name, c in hour.drift.type_changes.items()} == {
        "userid": ("int64", "string", 1)
    }
    assert hour.drift.new_fields == {"new_field": 1}
    rows = {row["_offset"]: row for row in curated_rows(local_lake)}
    assert (rows[98]["userid"], json.loads(rows[98]["_extra"])) == (None, {"userid": "not a number"})
    assert (rows[99]["userid"], json.loads(rows[99]["_extra"])) == (17, {"new_field": {"nested": [1, 2]}})
    commit = local_lake.delta().history(1)[0]
    assert json.loads(commit[DRIFT_KEY])["type_changes"]["userid"]["moved"] == 1


@pytest.mark.parametrize(
    ("values", "kept"),
    [(["not a number", "17"], "not a number"), (["not a number", 17], "not a number"), ([{"a": 1}, 17], '{"a":1}')],
)
def test_a_column_whose_type_changed_in_a_json_lines_file_compacts_as_in_parquet(
    local_lake: Lake, values: list[Any], kept: str
) -> None:
    """The same drift in a JSON lines (or Avro) file was typed with today's landed schema and failed its hour on
    every run (its rows lost once raw retention deleted the file): what casts stays, the rest goes to _extra
    (as text when the file's values mix types; the record as received is whole in _received)."""
    land_batch(local_lake, 0, 10)
    run(local_lake)
    rows = [
        {"_topic": "clickstream", "_partition": 0, "_offset": 98 + i, "userid": value, "_event_time": H10.start_ms + 5}
        for i, value in enumerate(values)
    ]
    local_lake.store.write_atomic(
        f"raw/clickstream/date={H10.date}/hour={H10.hour}/clickstream+0+i0+{98:020d}+{99:020d}.jsonl.gz",
        gzip.compress(b"\n".join(json.dumps(row).encode() for row in rows)),
    )
    report = run(local_lake)
    assert not report.failed, report.failed
    curated = {row["_offset"]: row for row in curated_rows(local_lake)}
    assert len(curated) == 12 and curated[99]["userid"] == 17
    assert json.loads(curated[98]["_extra"]) == {"userid": kept}


def test_commit_metadata_names_the_hour_and_its_offsets(local_lake: Lake) -> None:
    land_batch(local_lake, 100, 10)
    run(local_lake)
    commit = local_lake.delta().history(1)[0]
    assert METADATA_KEY in commit and commit["operation"] == "CREATE TABLE"  # the table's first commit
    document = parse_commit(commit)
    assert document is not None and (document["date"], document["hour"], document["rows"]) == (H10.date, H10.hour, 10)
    assert document["offsets"][0]["first"] == 100 and document["offsets"][0]["last"] == 109


def _parquet(table: pa.Table) -> bytes:
    import io

    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_coverage_reads_only_as_many_commits_as_the_listed_hours_need(local_lake: Lake) -> None:
    hours = [Hour.of_ms(H10.start_ms + index * 3_600_000) for index in range(5)]
    for index, hour in enumerate(hours):  # five commits, oldest hour first
        table = pa.table({"_topic": ["t"], "_partition": [0], "_offset": [index]})
        table = table.append_column("_event_time", pa.array([hour.start_ms], pa.timestamp("ms", tz="UTC")))
        local_lake.store.write_atomic(f"raw/clickstream/date={hour.date}/hour={hour.hour}/f.parquet", _parquet(table))
        run(local_lake, now_ms=hour.end_ms + GRACE)
    curated = local_lake.table()
    assert set(curated.coverage({hours[-1]}, first_page=1)) == set(hours[-2:])  # two newest commits sufficed
    assert set(curated.coverage({hours[0]}, first_page=1)) == set(hours)  # paged back to the oldest
    assert curated.coverage({Hour("2020-01-01", "00")}, first_page=2).keys() == set(hours)  # could be anywhere
    new_hour = Hour.of_ms(int(time.time() * 1000) + 3 * 3_600_000)  # begins after every commit was made
    assert set(curated.coverage({new_hour, hours[-1]}, first_page=1)) == set(hours[1:])  # one page: 2 per hour asked


def test_a_smaller_target_file_size_splits_an_hour(local_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    land_batch(local_lake, 0, 3000)
    location = local_lake.table().location
    small = CuratedTable(location, target_file_bytes=5_000)  # a file closes at the first row group past it
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 500)
    report = compact("clickstream", local_lake.store, small, now_ms=LATER, grace_ms=GRACE)
    assert report.files_out > 1 and len(local_lake.delta().file_uris()) == report.files_out
    assert len(curated_rows(local_lake)) == 3000


def test_a_new_nullable_column_is_added_to_the_table(local_lake: Lake) -> None:
    land_batch(local_lake, 0, 10)
    run(local_lake)
    next_hour = Hour.of_ms(H10.end_ms)
    newer = pa.table({"_topic": ["clickstream"], "_partition": [0], "_offset": [10], "firmware": ["2.1"]})
    newer = newer.append_column("_event_time", pa.array([next_hour.start_ms], pa.timestamp("ms", tz="UTC")))
    local_lake.store.write_atomic(
        f"raw/clickstream/date={next_hour.date}/hour={next_hour.hour}/newer.parquet", _parquet(newer)
    )
    report = run(local_lake, now_ms=next_hour.end_ms + GRACE)
    assert not report.failed and [h.hour for h in report.hours] == [next_hour]
    assert [row["firmware"] for row in curated_rows(local_lake, hour=next_hour)] == ["2.1"]
    assert {row["firmware"] for row in curated_rows(local_lake)} == {None}  # older hour: null


def _a_rival_creates_the_table_first(monkeypatch: pytest.MonkeyPatch, rival: Callable[[], Any]) -> None:
    """The next table creation finds that ``rival`` (another compaction) created the table just before."""
    create = delta_table.create_table_with_add_actions
    pending = [rival]

    def after_the_rival(*args: Any, **kwargs: Any) -> None:
        if pending:
            pending.pop()()  # its own creation goes straight through
        create(*args, **kwargs)

    monkeypatch.setattr(delta_table, "create_table_with_add_actions", after_the_rival)


def test_two_first_compactions_racing_create_the_table_once_and_never_append(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_batch(local_lake, 0, 30)
    rival: list[Any] = []
    _a_rival_creates_the_table_first(monkeypatch, lambda: rival.append(run(local_lake)))

    report = run(local_lake)  # looked before the table existed; the rival creates it as this one commits

    assert not report.failed and report.rows == 30 and rival[0].rows == 30
    curated = curated_rows(local_lake)
    assert len(curated) == 30 == len({_key(row) for row in curated})
    history = local_lake.delta().history()  # newest first
    assert [commit["operation"] for commit in history][-1] == "CREATE TABLE"
    assert [commit.get("operationParameters", {}).get("mode") for commit in history[:-1]] == ["Overwrite"]
    assert parse_commit(history[0]) is not None, "the later commit records the hour's coverage"


def test_a_racing_first_compaction_keeps_the_columns_the_rival_added(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rival compacted a later hour with a new column too; replacing the first hour must not drop it."""
    land_batch(local_lake, 0, 10)
    next_hour = Hour.of_ms(H10.end_ms)
    after = next_hour.end_ms + GRACE
    newer = pa.table({"_topic": ["clickstream"], "_partition": [0], "_offset": [10], "firmware": ["2.1"]})
    newer = newer.append_column("_event_time", pa.array([next_hour.start_ms], pa.timestamp("ms", tz="UTC")))

    def rival() -> None:
        path = f"raw/clickstream/date={next_hour.date}/hour={next_hour.hour}/newer.parquet"
        local_lake.store.write_atomic(path, _parquet(newer))  # landed after this compaction listed raw/
        assert [h.hour for h in run(local_lake, now_ms=after).hours] == [H10, next_hour]

    _a_rival_creates_the_table_first(monkeypatch, rival)
    report = run(local_lake, now_ms=after)

    assert not report.failed and [h.hour for h in report.hours] == [H10]
    assert "firmware" in local_lake.delta().schema().to_arrow().names
    assert [row["firmware"] for row in curated_rows(local_lake, hour=next_hour)] == ["2.1"]
    assert len(curated_rows(local_lake)) == 10


def _data_files_stored(lake: Lake) -> set[str]:
    return {p for p in lake.store.list_paths("curated/clickstream") if p.endswith(".parquet")}


def _active_files(lake: Lake) -> set[str]:
    adds = pa.table(lake.delta().get_add_actions(flatten=True)).column("path").to_pylist()
    return {f"curated/clickstream/{path}" for path in adds}


def test_replaced_files_stay_for_time_travel_within_the_file_retention(lake: Lake) -> None:
    land_batch(lake, 0, 20)
    run(lake)
    land_batch(lake, 20, 10)
    report = run(lake)  # replaces the hour; this run's vacuum must keep the file it replaced
    assert report.vacuumed == 0 and len(_data_files_stored(lake)) == 2 and len(_active_files(lake)) == 1
    delta = lake.delta()
    assert delta.metadata().configuration["delta.deletedFileRetentionDuration"] == delta_table.FILE_RETENTION
    delta.load_as_version(0)
    assert pa.table(QueryBuilder().register("t", delta).execute("SELECT _offset FROM t")).num_rows == 20


def test_vacuum_deletes_replaced_and_orphaned_files_past_the_retention(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(delta_table.TABLE_CONFIGURATION, "delta.deletedFileRetentionDuration", "interval 0 hours")
    land_batch(local_lake, 0, 20)
    run(local_lake)
    replaced = _data_files_stored(local_lake)
    orphan = f"curated/clickstream/date={H10.date}/hour={H10.hour}/part-00000-left-by-a-failed-run.parquet"
    local_lake.store.write_atomic(orphan, _parquet(pa.table({"x": [1]})))
    land_batch(local_lake, 20, 10)
    report = run(local_lake)
    assert report.vacuumed == len(replaced) + 1
    assert _data_files_stored(local_lake) == _active_files(local_lake)
    assert len(curated_rows(local_lake)) == 30


@pytest.mark.parametrize("failing", ["commit", "refresh"])
def test_a_commit_that_happened_keeps_its_files_whatever_fails_after_it(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The commit reports an error after the log took it (a request cut mid-way), or the refresh after it
    fails: the files stay, the table's version points at files that exist, no row is lost."""
    land_batch(local_lake, 0, 20)
    run(local_lake)
    write, refresh = DeltaTable.create_write_transaction, DeltaTable.update_incremental
    blips: list[str] = []

    def commit(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        write(self, *args, **kwargs)
        if failing == "commit" and not blips:
            blips.append("commit")
            raise OSError("connection reset after the log was written")

    def refresh_after_commit(self: DeltaTable) -> None:
        if failing == "refresh" and not blips and len(local_lake.delta().history()) > 1:
            blips.append("refresh")
            raise OSError("connection reset while reading _delta_log")
        refresh(self)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit)
    monkeypatch.setattr(DeltaTable, "update_incremental", refresh_after_commit)
    land_batch(local_lake, 20, 10)  # a late file: the hour is recompacted (the overwrite path)
    run(local_lake)
    monkeypatch.undo()
    assert blips == [failing]
    assert all(Path(uri.removeprefix("file://")).exists() for uri in local_lake.delta().file_uris())
    assert len(curated_rows(local_lake)) == 30 and not run(local_lake).plan.tasks


def test_a_commit_that_did_not_happen_removes_its_files(local_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    land_batch(local_lake, 0, 20)
    run(local_lake)

    def cut_before_the_log(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        raise OSError("connection reset before the log was written")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", cut_before_the_log)
    land_batch(local_lake, 20, 10)
    before = _data_files_stored(local_lake)
    with pytest.raises(delta_table.CommitOutcomeUnknown):
        compact("clickstream", local_lake.store, local_lake.table(), now_ms=LATER, grace_ms=GRACE)
    monkeypatch.undo()
    assert _data_files_stored(local_lake) == before
    run(local_lake)
    assert len(curated_rows(local_lake)) == 30


def _raw_file(lake: Lake, hour: Hour, name: str, offsets: range) -> None:
    table = pa.table(
        {"_topic": ["clickstream"] * len(offsets), "_partition": [0] * len(offsets), "_offset": list(offsets)}
    ).append_column("_event_time", pa.array([hour.start_ms + 1] * len(offsets), pa.timestamp("ms", tz="UTC")))
    lake.store.write_atomic(f"raw/clickstream/date={hour.date}/hour={hour.hour}/{name}.parquet", _parquet(table))


def test_two_compactions_of_a_new_hour_at_once_hold_its_rows_once(local_lake: Lake) -> None:
    """Run B compacts the whole hour while run A has planned it (a timer overlap, a second host): A's commit
    finds B's commit of the hour since A read it, so it fails as a commit that lost (the next run redoes the
    hour) instead of replacing B's hour or adding its own files beside B's."""
    land_batch(local_lake, 0, 10)
    run(local_lake)  # the table exists
    h11 = Hour.of_ms(H10.end_ms)
    _raw_file(local_lake, h11, "a", range(100, 120))
    after = h11.end_ms + GRACE + 1
    with pytest.raises(LakeUnavailable, match="another writer committed the hour after it was read"):
        compact(
            "clickstream",
            local_lake.store,
            local_lake.table(),
            now_ms=after,
            grace_ms=GRACE,
            on_planned=lambda _: run(local_lake, now_ms=after),
        )
    rows = curated_rows(local_lake, hour=h11)
    assert len(rows) == len({_key(row) for row in rows}) == 20
    assert run(local_lake, now_ms=after).plan.tasks == (), "B's commit covers the hour: nothing is left to redo"


def test_an_append_naming_no_hour_between_plan_and_commit_fails_the_commit_and_its_row_stays(
    local_lake: Lake,
) -> None:
    """Another kind of writer (an operator's append to curated/) names no hour in its commit, so it may have changed
    any. Taken for a commit of no hour, it was replaced by the recompaction: its row, offset 500, was gone."""
    land_batch(local_lake, 0, 10)
    run(local_lake)
    land_batch(local_lake, 10, 10)  # a late file: the hour is recompacted

    def operators_append(_: object) -> None:
        delta = local_lake.delta()
        row = pa.table(QueryBuilder().register("t", delta).execute(f"SELECT * FROM t WHERE {H10.predicate} LIMIT 1"))
        row = row.set_column(row.schema.get_field_index("_offset"), "_offset", pa.array([500], pa.int64()))
        write_deltalake(delta, row.cast(pa.schema(delta.schema().to_arrow())), mode="append")

    with pytest.raises(LakeUnavailable, match="another writer committed the hour after it was read"):
        compact(
            "clickstream",
            local_lake.store,
            local_lake.table(),
            now_ms=LATER,
            grace_ms=GRACE,
            on_planned=operators_append,
        )
    assert run(local_lake).plan.tasks != (), "the hour is left for the next run"
    assert sorted(row["_offset"] for row in curated_rows(local_lake)) == [*range(20), 500]


def test_rows_the_hour_holds_twice_are_held_once_after_it_is_recompacted(local_lake: Lake) -> None:
    """Two first commits of a new hour within the same moment both added before compaction committed with no
    retry (docs/reliability.md): tables older code wrote may hold an hour's rows twice. The next compaction of
    the hour (a late file) keeps one row per identity and counts it once."""
    land_batch(local_lake, 0, 10)
    run(local_lake)
    delta = local_lake.delta()
    hour_rows = pa.table(QueryBuilder().register("t", delta).execute(f"SELECT * FROM t WHERE {H10.predicate}"))
    write_deltalake(delta, hour_rows.cast(pa.schema(delta.schema().to_arrow())), mode="append")  # the rival's add
    assert len(curated_rows(local_lake)) == 20
    land_batch(local_lake, 10, 5)  # a late file: the hour is recompacted
    report = run(local_lake, now_ms=LATER + 900_000)
    assert not report.failed and report.rows == 15
    rows = curated_rows(local_lake)
    assert sorted(row["_offset"] for row in rows) == list(range(15))
    document = parse_commit(local_lake.delta().history(1)[0])
    assert document is not None and document["rows"] == 15
    assert [(r["first"], r["last"], r["rows"]) for r in document["offsets"]] == [(0, 14, 15)]


def test_a_recompaction_looks_for_identities_held_twice_only_when_the_hour_holds_more_than_its_commit_wrote(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up groups every identity of the hour; only two first commits at once make repeats, and they
    leave the hour more rows than its latest commit records."""
    asked = _count_repeat_lookups(monkeypatch)
    land_batch(local_lake, 0, 10)
    run(local_lake)
    land_batch(local_lake, 10, 5)  # a late file
    assert run(local_lake, now_ms=LATER + 900_000).rows == 15
    assert asked == [], "the hour held the 10 rows its commit wrote"


def test_an_hour_whose_commit_does_not_say_its_rows_is_checked_for_identities_held_twice(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits of older code lack the hour's row count: its rows are looked at, and repeats still go."""
    written = rewrite.commit_metadata

    def without_rows(*args: Any) -> dict[str, str]:
        metadata = written(*args)
        document = json.loads(metadata[METADATA_KEY])
        del document["rows"]
        return {METADATA_KEY: json.dumps(document)}

    with monkeypatch.context() as older_code:
        older_code.setattr(rewrite, "commit_metadata", without_rows)
        land_batch(local_lake, 0, 10)
        run(local_lake)
    delta = local_lake.delta()
    hour_rows = pa.table(QueryBuilder().register("t", delta).execute(f"SELECT * FROM t WHERE {H10.predicate}"))
    write_deltalake(delta, hour_rows.cast(pa.schema(delta.schema().to_arrow())), mode="append")  # the rival's add
    asked = _count_repeat_lookups(monkeypatch)
    land_batch(local_lake, 10, 5)
    assert run(local_lake, now_ms=LATER + 900_000).rows == 15
    assert asked == [H10] and sorted(row["_offset"] for row in curated_rows(local_lake)) == list(range(15))


def _count_repeat_lookups(monkeypatch: pytest.MonkeyPatch) -> list[Hour]:
    asked: list[Hour] = []
    look_up = CuratedTable.repeated_identities

    def counted(self: CuratedTable, hour: Hour) -> dict[tuple[str, int, int, int], int]:
        asked.append(hour)
        return look_up(self, hour)

    monkeypatch.setattr(CuratedTable, "repeated_identities", counted)
    return asked


def test_a_damaged_curated_file_fails_its_hour_and_the_tools_say_so_in_one_line(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A curated data file truncated (a disk fault, a hand edit): delta-rs reports it as pyarrow's ArrowInvalid,
    which neither compaction's reads nor the tools took for the lake's: tools.query and tools.reprocess ended in
    a traceback (query's exit 1 says "no curated tables yet"). Now the hour fails with the file named, the
    tools print one line and exit with their lake error code, and nothing else changes."""
    from tools import query, reprocess

    land_batch(local_lake, 0, 20)
    land_batch(local_lake, 0, 20, source="sensors")
    run(local_lake)
    run(local_lake, "sensors")
    (damaged,) = sorted((local_lake.store.root / "curated/clickstream").glob("date=*/hour=*/*.parquet"))
    with damaged.open("r+b") as file:
        file.truncate(30)
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(local_lake.store.root))
    settings = ["--settings", NO_SETTINGS]

    assert query.main(settings) == query.EXIT_LAKE_UNREADABLE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m tools.query: cannot read the lake (") and damaged.name in line
    window = ["clickstream", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T11:00Z"]
    assert reprocess.main([*window, *settings]) == reprocess.EXIT_LAKE_UNAVAILABLE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("reprocess of clickstream stopped: cannot use the lake") and "curated/clickstream" in line

    land_batch(local_lake, 20, 5)  # a late file: the hour is recompacted from its curated rows
    report = run(local_lake)
    assert list(report.failed) == [H10] and damaged.name in report.failed[H10]


def test_query_runs_the_query_of_the_table_there_and_names_the_one_not_there_yet(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2026-12-07: with only clickstream compacted (sensors off, or not compacted yet) tools.query printed
    clickstream's summary, then "no curated tables yet" and exit 1, and ran no query."""
    from tools import query

    land_batch(local_lake, 0, 20)
    run(local_lake)
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(local_lake.store.root))
    assert query.main(["--settings", NO_SETTINGS]) == 0
    out = capsys.readouterr().out
    assert "page_views" in out.split("Page views per user and hour")[1]
    assert "Sensor averages per minute (latest 10): curated/sensors has no table yet" in out


def test_a_run_of_many_hours_reads_each_commit_since_its_plan_once(
    local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hour's commit is checked against every commit since the run's plan (another writer's commit of the hour
    fails it); the log's entries are read once per run, not once per hour after them (12 hours: 66 reads)."""
    land_batch(local_lake, 0, 10)
    run(local_lake)  # the table exists
    hours = [Hour.of_ms(H10.end_ms + index * 3_600_000) for index in range(12)]
    for index, hour in enumerate(hours):
        _raw_file(local_lake, hour, f"h{index}", range(100 + 10 * index, 110 + 10 * index))
    read: list[int] = []
    history = DeltaTable.history

    def counted(self: DeltaTable, limit: int | None = None) -> list[dict[str, Any]]:
        entries = history(self, limit)
        read.append(len(entries))
        return entries

    monkeypatch.setattr(DeltaTable, "history", counted)
    report = run(local_lake, now_ms=hours[-1].end_ms + GRACE + 1)
    assert [task.hour for task in report.plan.tasks] == hours and not report.failed
    coverage_page = read[0]
    assert sum(read[1:]) == len(hours) - 1, f"the checks read {read[1:]} after the coverage's {coverage_page}"
