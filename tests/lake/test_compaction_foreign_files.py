"""Raw files this project did not write (damaged, foreign, empty) on a real local lake and Delta table.

A bad file is quarantined with its reason and the rest of its hour compacts, in the same run; an
hour that fails for another reason of its own never fails the run: the hours after it compact and
vacuum runs (the bad hour is the oldest, so it is first in every run). Nothing that the table
cannot read back is committed. An hour whose raw files hold no rows is covered, not failed on
every run.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, QueryBuilder

from shared.batch import process_batch
from shared.compaction import rewrite
from shared.compaction.delta_table import CuratedTable
from shared.compaction.hours import Hour
from shared.compaction.job import compact, open_curated, run_compaction
from shared.compaction.quarantine import quarantined_files
from shared.compaction.rows import CompactionError, curated_as_landed
from shared.errors import LakeError, LakeUnavailable
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.guard import LandingGuard, PartitionLander
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.lake.test_compaction import GRACE, H10, LATER, Lake, land_batch, run

H09 = Hour.of_ms(H10.start_ms - 1)
H11 = Hour.of_ms(H10.end_ms)
CLICKS = get_source("clickstream")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


def put(lake: Lake, hour: Hour, name: str, data: bytes) -> str:
    path = f"raw/clickstream/date={hour.date}/hour={hour.hour}/{name}"
    lake.store.write_atomic(path, data)
    return path


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def raw_table(hour: Hour, offsets: list[int], **columns: pa.Array | list[object]) -> pa.Table:
    """Rows with the lineage compaction needs (no ``_incarnation``: files of older landings lack it)."""
    table = pa.table(
        {"_topic": ["clickstream"] * len(offsets), "_partition": [0] * len(offsets), "_offset": offsets, **columns}
    )
    times = pa.array([hour.start_ms + 1000 + i for i in range(len(offsets))], pa.timestamp("ms", tz="UTC"))
    return table.append_column("_event_time", times)


def readable(lake: Lake, hour: Hour | None = None, source: str = "clickstream") -> pa.Table:
    """The table's rows (of ``hour``) as a new reader reads them, opening the log and its statistics afresh;
    typed as raw files are, without the partition columns."""
    location = lake.table(source).location
    delta = DeltaTable(location.uri, storage_options=location.storage_options)
    where = "" if hour is None else f" WHERE {hour.predicate}"
    return curated_as_landed(pa.table(QueryBuilder().register("t", delta).execute(f"SELECT * FROM t{where}")))


def offsets(lake: Lake, hour: Hour) -> list[int]:
    return sorted(readable(lake, hour).column("_offset").to_pylist())


# A bad file of each kind (a bytes factory; the lake lets the damaged Avro file start from a real one).
def _damaged_jsonl_gz(lake: Lake) -> bytes:
    data = bytearray(gzip.compress(b'{"_topic":"clickstream","_partition":0,"_offset":1,"_event_time":1}\n' * 20))
    data[10] = 0xFF  # the first deflate block's type becomes 11, which is invalid: zlib.error, not OSError
    return bytes(data)


def _damaged_avro(lake: Lake) -> bytes:
    (path,) = land_batch(lake, 500, 3, fmt="avro")
    data = lake.store.read(path)
    lake.store.delete(path)
    return data.replace(b"avro.schema", b"avro.schemX")  # one header key damaged: KeyError in fastavro


BAD_FILES: dict[str, tuple[Callable[[Lake], bytes], str]] = {
    "damaged.jsonl.gz": (_damaged_jsonl_gz, "cannot read raw file"),
    "damaged.avro": (_damaged_avro, "cannot read raw file"),
    "array-line.jsonl.gz": (lambda lake: gzip.compress(b"[1, 2]\n"), "row 1 is not an object (list)"),
    "null-partition.parquet": (
        lambda lake: parquet(raw_table(H09, [1, 2, 3], _partition=pa.array([0, None, 0], pa.int64()))),
        "1 rows have no _partition",
    ),
    "duration.parquet": (
        lambda lake: parquet(raw_table(H09, [1, 2], elapsed=pa.array([1, 2], pa.duration("s")))),
        "column elapsed is duration[s]",
    ),
    "nested-duration.parquet": (
        lambda lake: parquet(raw_table(H09, [1, 2], d=pa.array([[1], None], pa.list_(pa.duration("s"))))),
        "a type a Delta table cannot store",
    ),
    "case-clash.parquet": (
        lambda lake: parquet(raw_table(H09, [1, 2], USERID=[1, 2])),  # the table has "userid"
        "column USERID",
    ),
    "partition-case.parquet": (lambda lake: parquet(raw_table(H09, [1, 2], Date=["x", "y"])), "['Date']"),
    "nested-nanoseconds.parquet": (  # passes every check; fitting its values fails
        lambda lake: parquet(
            raw_table(H09, [1, 2], s=pa.array([{"at": 1}, None], pa.struct([("at", pa.timestamp("ns"))])))
        ),
        "ValueError",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_raw_file_is_quarantined_naming_why_and_the_rest_of_its_hour_compacts(
    lake: Lake, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad file used to fail its hour on every run until the lifecycle rule deleted the hour's raw files, and
    the hour's good rows were lost with them. It is moved to the quarantine with its reason, the rest of its
    hour compacts in the same run, and the hours after it too; vacuum runs once, after them."""
    land_batch(lake, 0, 10)
    run(lake)  # H10 compacted: the table exists
    make, reason = BAD_FILES[name]
    data = make(lake)
    path = put(lake, H09, name, data)
    put(lake, H09, "good.parquet", parquet(raw_table(H09, [7, 8])))
    land_batch(lake, 10, 5)  # a late file of H10, after the bad hour in the same run
    vacuums: list[int] = []
    vacuum = CuratedTable.vacuum

    def counted(table: CuratedTable) -> int:
        vacuums.append(1)
        return vacuum(table)

    monkeypatch.setattr(CuratedTable, "vacuum", counted)

    report = run(lake)

    assert not report.failed and [h.hour for h in report.hours] == [H09, H10]
    (moved,) = report.quarantined
    assert moved.raw_path == path and reason in moved.why, moved.why
    assert moved.path.startswith(f"deadletter/clickstream/quarantine/date={H09.date}/hour={H09.hour}/{name}.")
    assert lake.store.read(moved.path) == data and not lake.store.exists(path)
    sidecar = orjson.loads(lake.store.read(moved.path + ".json"))
    assert (sidecar["raw_path"], sidecar["reason"], sidecar["detail"]) == (path, "unusable_raw_file", moved.why)
    assert quarantined_files(lake.store, "clickstream") == [moved]
    assert vacuums == [1]
    assert offsets(lake, H10) == list(range(15)) and offsets(lake, H09) == [7, 8]
    put(lake, H11, "later.parquet", parquet(raw_table(H11, [100, 101])))
    again = run(lake, now_ms=LATER + 3_600_000)
    assert not again.failed and not again.quarantined and [h.hour for h in again.hours] == [H11]


def test_a_transient_or_lake_error_reading_a_raw_file_never_quarantines_it(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the file's own bytes make it unusable: the lake away stops the run (the next tick retries), and an
    error the lake calls permanent (a permission, a file gone since the listing) fails the hour, as before."""
    path = put(lake, H09, "a.parquet", parquet(raw_table(H09, [1, 2])))
    read = lake.store.read
    failure: list[Exception] = [LakeUnavailable("the lake is away")]

    def failing(wanted: str) -> bytes:
        if wanted == path:
            raise failure[0]
        return read(wanted)

    monkeypatch.setattr(lake.store, "read", failing)
    with pytest.raises(LakeUnavailable, match="away"):
        run(lake)
    failure[0] = LakeError("403 this request is not authorized")
    report = run(lake)
    assert list(report.failed) == [H09] and "403" in report.failed[H09] and not report.quarantined
    assert lake.store.list_paths("deadletter") == [] and lake.store.exists(path)


def test_every_raw_file_of_an_hour_quarantined_commits_nothing(lake: Lake) -> None:
    put(lake, H09, "a.parquet", parquet(raw_table(H09, [1, 2])))
    run(lake)
    version = lake.delta().version()
    put(lake, H09, "late.parquet", b"not parquet")
    report = run(lake)
    assert not report.failed and [q.raw_path for q in report.quarantined] == [
        f"raw/clickstream/date={H09.date}/hour={H09.hour}/late.parquet"
    ]
    assert lake.delta().version() == version and offsets(lake, H09) == [1, 2]
    assert run(lake).plan.tasks == ()


def test_an_unforeseen_error_of_one_hour_fails_that_hour_and_a_transient_one_stops_the_run(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backstop: any error of an hour but a transient one is that hour's failure, with its type."""
    land_batch(lake, 0, 10)
    put(lake, H09, "a.parquet", parquet(raw_table(H09, [1, 2])))
    scan = rewrite.HourRewrite._scan
    failure: list[Exception] = [RuntimeError("something no one foresaw")]

    def failing(self: rewrite.HourRewrite, pool: Any) -> Any:
        if self.task.hour == H09:
            raise failure[0]
        return scan(self, pool)

    monkeypatch.setattr(rewrite.HourRewrite, "_scan", failing)
    report = run(lake)
    assert report.failed == {H09: "hour 2026-11-24T09: RuntimeError: something no one foresaw"}
    assert [h.hour for h in report.hours] == [H10]

    failure[0] = LakeUnavailable("the lake is away")
    with pytest.raises(LakeUnavailable, match="away"):  # the next tick retries the run
        run(lake)


BIG = 2**64 - 1
AT = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("column", "kept"),
    [
        (pa.array([{"a": 1, "b": "x"}, None]), [{"a": 1, "b": "x"}, None]),  # a struct column, with a null
        (pa.array([{"a": {"x": 1}}, {"a": None}]), [{"a": {"x": 1}}, {"a": None}]),  # a nested struct
        (pa.array([1, BIG], pa.uint64()), [1, None]),  # an unsigned value past int64
        (pa.array([1, 2**32 - 1], pa.uint32()), [1, 2**32 - 1]),  # delta-rs would make it a 32-bit integer
        (pa.array([1, 255], pa.uint8()), [1, 255]),
        (pa.array([[1, BIG], None], pa.list_(pa.uint64())), [None, None]),  # would not cast back on reading
        (pa.array([[("k", BIG)], None], pa.map_(pa.string(), pa.uint64())), [None, None]),
        (pa.array([{"a": BIG}, None], pa.struct([("a", pa.uint64())])), [None, None]),
        (pa.array([1.5, None], pa.float16()), [1.5, None]),
        (pa.array([{"at": 1}, None], pa.struct([("at", pa.timestamp("us"))])), [{"at": AT}, None]),
        (pa.array(["a", None]).dictionary_encode(), ["a", None]),
    ],
    ids=[
        "struct",
        "nested-struct",
        "uint64",
        "uint32",
        "uint8",
        "list-of-uint64",
        "map-of-uint64",
        "struct-of-uint64",
        "float16",
        "struct-of-naive-time",
        "dictionary",
    ],
)
@pytest.mark.parametrize("table_exists", [True, False], ids=["existing-table", "new-table"])
def test_a_raw_file_with_an_unusual_column_never_makes_the_table_unreadable(
    lake: Lake, column: pa.Array, kept: list[object], table_exists: bool
) -> None:
    """Statistics delta-rs cannot parse back (a flat nullCount for a struct, a maxValue past the type Delta
    gives an unsigned column) or data it cannot cast back would leave curated/<source> unreadable for
    every reader and every later compaction. The column is fitted to a type Delta has: a value that does
    not fit (past int64) moves to ``_extra``, as any misfit does."""
    if table_exists:
        land_batch(lake, 0, 5)
        run(lake)
    put(lake, H09, "odd.parquet", parquet(raw_table(H09, [100, 101], c=column)))

    report = run(lake)

    assert not report.failed
    rows = readable(lake, H09).sort_by("_offset").to_pylist()
    assert [row["_offset"] for row in rows] == [100, 101]
    assert [row["c"] for row in rows] == kept
    moved = [row.get("_extra") for row in rows if row.get("_extra")]
    assert all(str(BIG) in extra for extra in moved) and len(moved) == sum(
        str(BIG) in str(value) for value in column.to_pylist()
    )
    land_batch(lake, 10, 5)
    assert not run(lake).failed, "the table still takes the next hour"


def test_a_time_in_nanoseconds_is_cut_to_microseconds_not_quarantined(lake: Lake) -> None:
    """A pandas file's times are nanoseconds; Delta holds microseconds. A safe cast refused any value with
    nanoseconds, and the file was quarantined as 'timestamp[ns], not a timestamp'."""
    at = pa.array([1_500, 2_000, None, -1, -3_600_000_000_001], pa.timestamp("ns"))
    put(lake, H09, "pandas.parquet", parquet(raw_table(H09, [100, 101, 102, 103, 104], seen_at=at)))

    report = run(lake)

    assert not report.failed and not report.quarantined
    rows = readable(lake, H09).sort_by("_offset").to_pylist()
    before = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # floored: a plain cast made -1 ns 1970
    expected = [AT, AT.replace(microsecond=2), None, before, before.replace(hour=22)]
    assert [row["seen_at"] for row in rows] == expected


def test_a_foreign_extra_and_a_time_past_year_9999_are_kept_as_they_are(lake: Lake) -> None:
    """Neither is wrong enough to fail the hour: an ``_extra`` that is not a JSON object (counted as no
    fields; kept whole when a misfit joins it) and a time the log's statistics cannot write (that
    column of that file has no min and max)."""
    land_batch(lake, 0, 5)
    run(lake)
    far = pa.array([300_000_000_000_000_000, 1], pa.timestamp("us", tz="UTC"))
    odd = raw_table(
        H09, [1, 2, 3], _extra=["not json", "[1]", None], userid=["x", "2", "3"], seen_at=far.take([0, 1, 1])
    )
    put(lake, H09, "odd.parquet", parquet(odd))

    report = run(lake)

    assert not report.failed
    hour = readable(lake, H09)
    rows = {row["_offset"]: row for row in hour.select(["_offset", "userid", "_extra"]).to_pylist()}
    assert rows[1]["userid"] is None and rows[1]["_extra"] == '{"_extra":"not json","userid":"x"}'
    assert (rows[2]["userid"], rows[2]["_extra"]) == (2, "[1]")
    assert (rows[3]["userid"], rows[3]["_extra"]) == (3, None)
    times = hour.sort_by("_offset").column("seen_at").cast(pa.int64()).to_pylist()
    assert times == [300_000_000_000_000_000, 1, 1]
    (drift,) = [h.drift for h in report.hours if h.hour == H09]
    assert drift is not None and drift.new_fields == {}


def test_a_foreign_extra_of_another_type_becomes_json_text_in_a_new_table(lake: Lake) -> None:
    put(lake, H09, "odd.parquet", parquet(raw_table(H09, [1, 2], _extra=pa.array([5, None], pa.int64()))))
    assert not run(lake).failed
    assert readable(lake, H09).sort_by("_offset").column("_extra").to_pylist() == ["5", None]
    land_batch(lake, 0, 5)
    assert not run(lake).failed


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.jsonl.gz", gzip.compress(b"")),
        ("blank-lines.jsonl.gz", gzip.compress(b"\n\n")),
        ("empty.parquet", parquet(raw_table(H10, []))),
    ],
    ids=["empty", "blank-lines", "empty-parquet"],
)
@pytest.mark.parametrize("table_exists", [False, True], ids=["new-table", "existing-table"])
def test_an_hour_whose_raw_files_hold_no_rows_is_covered_not_failed_forever(
    lake: Lake, name: str, data: bytes, table_exists: bool
) -> None:
    """The hour's only raw file holds no rows: it used to fail with 'has no rows' on every run, forever,
    its lag growing without bound. A commit of no files records it as covered; other hours keep their rows."""
    if table_exists:
        put(lake, H09, "rows.parquet", parquet(raw_table(H09, [1, 2])))
        run(lake)
    path = put(lake, H10, name, data)

    first = run(lake)
    second = run(lake, now_ms=LATER + 3_600_000)

    assert not first.failed and [(h.hour, h.rows, h.files_in) for h in first.hours] == [(H10, 0, 1)]
    assert second.plan.tasks == () and second.plan.lag_ms == 0
    assert lake.table().coverage([H10])[H10] == frozenset([path])
    assert offsets(lake, H10) == [] and offsets(lake, H09) == ([1, 2] if table_exists else [])


def test_a_table_an_empty_hour_created_has_the_columns_a_first_hour_with_rows_gives(lake: Lake, tmp_path: Path) -> None:
    """An empty first hour creates the table with the source's landed columns, as read: the hours with rows
    after it commit into it as into a table they created."""
    put(lake, H09, "empty.jsonl.gz", gzip.compress(b""))
    run(lake)
    land_batch(lake, 0, 10)
    assert run(lake).rows == 10
    other_root = tmp_path / "other"
    other = Lake(LocalLake(other_root), load_settings({"LAKE_LOCAL_ROOT": str(other_root)}))
    land_batch(other, 0, 10)
    run(other)
    assert lake.delta().schema() == other.delta().schema()
    assert offsets(lake, H10) == list(range(10))


def test_an_empty_first_hour_of_a_source_without_landed_columns_creates_a_table_the_next_hour_fills(
    lake: Lake,
) -> None:
    """A source the code does not register has no landed columns: the table starts with the columns every
    raw file has (those compaction queries), and the first hour with rows adds its own."""
    table = open_curated(lake.settings, "things")
    lake.store.write_atomic(f"raw/things/date={H09.date}/hour={H09.hour}/e.jsonl.gz", gzip.compress(b""))
    assert not compact("things", lake.store, table, now_ms=LATER, grace_ms=GRACE).failed
    names = [field.name for field in lake.delta("things").schema().fields]
    assert names == ["_topic", "_partition", "_incarnation", "_offset", "_event_time", "date", "hour"]
    rows = raw_table(H10, [1, 2], level=["a", "b"])
    lake.store.write_atomic(f"raw/things/date={H10.date}/hour={H10.hour}/r.parquet", parquet(rows))
    report = compact("things", lake.store, table, now_ms=LATER, grace_ms=GRACE)
    assert not report.failed and report.rows == 2
    assert readable(lake, H10, "things").sort_by("_offset").column("level").to_pylist() == ["a", "b"]


def _land_guarded(lake: Lake, guard: LandingGuard, partition: int, first_offset: int) -> list[str]:
    """One guarded landing of five records of ``partition`` in H10: as its last landing, the ledger keeps it
    pending until the partition's next batch."""
    records = records_for(CLICKS, 5, partition=partition, first_offset=first_offset, seed=3)
    (part,) = process_batch(CLICKS, records, max_record_bytes=1 << 20)
    lander = PartitionLander(
        guard.partition(CLICKS.name, part.topic_partition), part, format_named("parquet"), FIXED_NOW_MS
    )
    before = set(lake.store.list_paths("raw"))
    lander.admit()
    lander.begin()
    lander.write()
    lander.finish()
    return sorted(set(lake.store.list_paths("raw")) - before)


def test_an_unusable_file_of_a_pending_landing_is_left_out_and_the_rest_of_its_hour_compacts(lake: Lake) -> None:
    """The file cannot be moved while its partition's landing still names it (``StillLanding``), and that
    landing stays pending until the partition's next batch. It used to fail its whole hour on every run, so
    an idle partition held the hour's good files of every other partition uncompacted until the lifecycle
    rule deleted them. It is left out instead: not moved, not covered, tried again by each run (which commits
    nothing more while it is the hour's only new file), and quarantined once the landing is finished."""
    land_batch(lake, 0, 10)  # partition 0: ten good rows in H10
    guard = LandingGuard(lake.store)
    (bad,) = _land_guarded(lake, guard, 1, 0)  # partition 1, H10: its last landing, pending
    lake.store.write_atomic(bad, b"PAR1 damaged")

    first = run(lake)
    assert not first.failed and not first.quarantined and first.rows == 10
    (left,) = first.left_out
    assert left.raw_path == bad and "cannot read raw file" in left.why and lake.store.exists(bad)
    assert offsets(lake, H10) == list(range(10))
    assert bad not in lake.table().coverage([H10])[H10]

    version = lake.delta().version()
    again = run(lake, now_ms=LATER + 900_000)  # partition 1 idle: the file is tried again, alone
    assert [raw.path for task in again.plan.tasks for raw in task.new_files] == [bad]
    assert [q.raw_path for q in again.left_out] == [bad] and not again.failed
    assert lake.delta().version() == version, "nothing new to commit"

    later = _land_guarded(lake, guard, 1, 5)  # partition 1's next batch finishes the landing
    done = run(lake, now_ms=LATER + 1_800_000)
    assert [q.raw_path for q in done.quarantined] == [bad] and not done.left_out and not done.failed
    assert not lake.store.exists(bad) and len(offsets(lake, H10)) == 10 + 5 * len(later)
    assert run(lake, now_ms=LATER + 2_700_000).plan.tasks == ()


def test_a_run_that_left_a_file_out_fails_naming_it(lake: Lake) -> None:
    """As a quarantine does, a file left out fails the invocation (its hour's lag grows meanwhile)."""
    land_batch(lake, 0, 10)
    (bad,) = _land_guarded(lake, LandingGuard(lake.store), 1, 0)
    lake.store.write_atomic(bad, b"PAR1 damaged")
    with pytest.raises(CompactionError, match=f"1 unusable raw files left for the next run.*{re.escape(bad)}"):
        run_compaction("clickstream", lake.store, lake.settings, now_ms=LATER)
    assert offsets(lake, H10) == list(range(10))
