"""Compaction in bounded memory gives exactly the in-memory reference, slice by slice, on real stores.

``rows.merge_hour`` is the reference: the whole hour in memory, first row per identity kept,
sorted by event time. The job (``rewrite``) must write the same rows in the same order while
holding one event-time slice at a time. Slices of a few rows force dozens of slices, rows on
slice boundaries, files that straddle slices, duplicates across files, within a file and
against the curated rows, and every raw format.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, QueryBuilder

from devhost.services.azurite import Azurite
from shared import formats
from shared.compaction import drift, rewrite
from shared.compaction.hours import Hour
from shared.compaction.job import compact, landed_schema, open_curated
from shared.compaction.rows import curated_as_landed, merge_hour, read_raw
from shared.errors import LakeError, LakeUnavailable
from shared.lake import LakeStore, LocalLake
from shared.lake.blob import BlobLake
from shared.lineage import LINEAGE_COLUMNS
from shared.settings import Settings, load_settings
from shared.sources import SOURCES
from tests.lake.conftest import NO_RETRIES

H10 = Hour("2026-11-24", "10")
LATER = H10.end_ms + 2 * 3_600_000
COLUMNS = (*SOURCES["sensors"].columns, *LINEAGE_COLUMNS)
EXTENSION = {"parquet": "parquet", "avro": "avro", "jsonl": "jsonl.gz"}


class Lake:
    def __init__(self, store: LakeStore, settings: Settings) -> None:
        self.store, self.settings = store, settings

    def delta(self) -> DeltaTable:
        location = open_curated(self.settings, "sensors").location
        return DeltaTable(location.uri, storage_options=location.storage_options)

    def compact(self, slice_rows: int) -> Any:
        table = open_curated(self.settings, "sensors")
        return compact("sensors", self.store, table, now_ms=LATER, grace_ms=0, slice_rows=slice_rows)

    def hour_in_stored_order(self) -> list[dict[str, Any]]:
        """The hour's rows file by file in the order the commit added them, each file in row order."""
        delta = self.delta()
        adds = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
        rows: list[dict[str, Any]] = []
        for action in sorted(adds, key=lambda a: a["path"]):  # part-00000-..., part-00001-...
            data = self.store.read(f"curated/sensors/{action['path']}")
            rows += pq.read_table(pa.BufferReader(data)).to_pylist()
        return [_plain(row) for row in rows]


@pytest.fixture(params=["local", "azurite"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    values = {
        "LAKE_KIND": "blob",
        "LAKE_CONNECTION_STRING": azurite.connection_string,
        "LAKE_FILE_SYSTEM": f"lake-{uuid.uuid4().hex[:8]}",
    }
    settings = load_settings(values)
    yield Lake(BlobLake.from_settings(settings, **NO_RETRIES), settings)


def rows(offsets: list[int], *, partition: int, value: float, chance: random.Random) -> list[dict[str, object]]:
    """Sensor-like rows whose event times scatter over the hour (some at the same instant)."""
    return [
        {
            "sensor_id": f"s{offset % 5}",
            "site": "plant",
            "metric": "temperature",
            "value": value,
            "unit": "C",
            "anomaly": offset % 11 == 0,
            "_topic": "sensors",
            "_partition": partition,
            "_incarnation": 0,
            "_offset": offset,
            "_key": f"k{offset % 7}",
            "_kafka_timestamp": H10.start_ms,
            "_event_time": H10.start_ms + 100 * chance.randrange(0, 36_000, 7),
            "_event_time_source": "record",
        }
        for offset in offsets
    ]


def land(lake: Lake, name: str, fmt: formats.LakeFormat, records: list[dict[str, object]]) -> str:
    path = f"raw/sensors/date={H10.date}/hour={H10.hour}/{name}.{EXTENSION[fmt]}"
    lake.store.write_atomic(path, formats.encode(fmt, COLUMNS, records, record_name="sensors"))
    return path


def reference(lake: Lake, curated: pa.Table, paths: list[str]) -> list[dict[str, Any]]:
    schema = landed_schema("sensors")
    tables = [curated] + [read_raw(_format(p), lake.store.read(p), path=p, schema=schema) for p in sorted(paths)]
    return [_plain(row) for row in merge_hour(H10, tables).to_pylist()]


def curated_now(lake: Lake) -> pa.Table:
    try:
        delta = lake.delta()
    except Exception:  # no table yet
        return pa.table({})
    reader = QueryBuilder().register("c", delta).execute(f"SELECT * FROM c WHERE {H10.predicate}")
    return curated_as_landed(pa.table(reader))


def _format(path: str) -> formats.LakeFormat:
    return "jsonl" if path.endswith(".jsonl.gz") else path.rsplit(".", 1)[1]  # type: ignore[return-value]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    plain = {}
    for name, value in row.items():
        if name in ("date", "hour"):
            continue
        if isinstance(value, datetime):
            value = int(value.astimezone(UTC).timestamp() * 1_000_000)
        elif isinstance(value, list) and all(isinstance(item, tuple) for item in value):
            value = dict(value)
        plain[name] = value
    return plain


def test_sliced_compaction_writes_the_reference_rows_in_the_reference_order(lake: Lake) -> None:
    chance = random.Random(22)
    first = [
        land(lake, "a", "parquet", rows(list(range(0, 60)), partition=0, value=1.0, chance=chance)),
        land(lake, "b", "avro", rows(list(range(50, 90)), partition=0, value=2.0, chance=chance)),  # repeats a
        land(lake, "c", "jsonl", rows(list(range(0, 40)), partition=1, value=3.0, chance=chance)),
        land(lake, "d", "parquet", rows([5, 6, 6, 7], partition=1, value=4.0, chance=chance)),  # repeats c and itself
    ]
    expected = reference(lake, pa.table({}), first)

    report = lake.compact(slice_rows=7)

    assert report.rows == len(expected) == 60 + 30 + 40
    assert lake.hour_in_stored_order() == expected

    # Recompaction: the curated rows come first and win over late files that repeat them.
    late = [
        land(lake, "e", "parquet", rows(list(range(80, 120)), partition=0, value=5.0, chance=chance)),
        land(lake, "f", "avro", rows(list(range(30, 50)), partition=1, value=6.0, chance=chance)),
    ]
    expected = reference(lake, curated_now(lake), late)
    report = lake.compact(slice_rows=9)
    assert report.rows == len(expected) == 130 + 30 + 10
    assert lake.hour_in_stored_order() == expected


def _slice_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each slice the compaction assembles, in order, as it runs."""
    sizes: list[int] = []
    assemble = rewrite.assemble_slice

    def measured(parts: Any, schema: pa.Schema) -> pa.Table:
        table = assemble(parts, schema)
        sizes.append(table.num_rows)
        return table

    monkeypatch.setattr(rewrite, "assemble_slice", measured)
    return sizes


def test_no_slice_holds_more_than_its_budget(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    chance = random.Random(7)
    for index in range(12):
        first = index * 50
        land(lake, f"p{index}", "parquet", rows(list(range(first, first + 50)), partition=0, value=1.0, chance=chance))
    sizes = _slice_sizes(monkeypatch)
    report = lake.compact(slice_rows=100)
    assert report.rows == sum(sizes) == 600
    assert len(sizes) >= 6 and max(sizes) <= 100


def test_a_late_event_in_every_file_neither_holds_the_hour_nor_decodes_it_again_per_slice(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch a minute, each carrying one event of the hour's first instant: every file spans the hour from its
    first instant to its own minute. Each file is read for the slices its rows are in, cut to the slice as it
    is decoded, and the rows held stay near a slice (they were the whole hour, decoded 16 times over)."""
    files, per_file, budget = 40, 250, 500
    paths = []
    for index in range(files):
        batch = rows(
            list(range(index * per_file, (index + 1) * per_file)), partition=0, value=1.0, chance=random.Random()
        )
        for n, row in enumerate(batch):
            row["_event_time"] = H10.start_ms + index * 60_000 + (n * 10_000) // per_file
        batch[0]["_event_time"] = H10.start_ms
        paths.append(land(lake, f"p{index:03d}", "parquet", batch))
    expected = reference(lake, pa.table({}), paths)
    decoded: list[int] = []
    read = rewrite.read_raw

    def counted(*args: Any, **kwargs: Any) -> pa.Table:
        table = read(*args, **kwargs)
        decoded.append(table.num_rows)
        return table

    held: list[int] = []
    cut = rewrite.HourRewrite._slice_of_raw

    def measured(self: Any, *args: Any) -> Any:
        parts, kept = cut(self, *args)
        held.append(sum(t.num_rows for t in [*parts.values(), *kept.values()]))
        return parts, kept

    monkeypatch.setattr(rewrite, "read_raw", counted)
    monkeypatch.setattr(rewrite.HourRewrite, "_slice_of_raw", measured)
    assert lake.compact(slice_rows=budget).rows == files * per_file
    assert lake.hour_in_stored_order() == expected
    assert sum(decoded) <= 3 * files * per_file, sum(decoded)
    assert max(held) <= 2 * budget + files, held


def test_a_file_of_timed_and_untimed_rows_carried_between_slices_keeps_every_row(lake: Lake) -> None:
    """The rest of a file carried to the next slice lost its rows with no time (a null mask, dropped by the split's
    both sides), so an hour of several slices holding such a file failed every run on its row count (a review)."""
    batch = rows(list(range(10)), partition=0, value=1.0, chance=random.Random(1))
    for row in batch[:3]:
        row["_event_time"] = None
    paths = [_parquet_file(lake, "a", batch)]
    expected = reference(lake, pa.table({}), paths)
    assert lake.compact(slice_rows=4).rows == 10
    assert lake.hour_in_stored_order() == expected


@pytest.mark.parametrize("seed", range(8))
def test_files_mixing_untimed_early_late_and_crowded_rows_compact_to_the_reference(tmp_path: Path, seed: int) -> None:
    """A seeded mix over slices of a few rows: rows with no time, before and after the hour, many at one instant, in
    files that also hold ordinary rows, repeated offsets across files, then a recompaction over curated rows. Every
    row of the reference once (the order within one instant is the reference's only up to ties)."""
    lake = Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
    chance = random.Random(seed)

    def mixed(fmt: str, first: int, count: int) -> str:
        batch = rows(list(range(first, first + count)), partition=chance.randrange(2), value=1.0, chance=chance)
        for row in batch:
            pick = chance.random()
            if pick < 0.15 and fmt == "parquet":  # a file written with a nullable _event_time (landing never does)
                row["_event_time"] = None
            elif pick < 0.25:
                row["_event_time"] = H10.start_ms - chance.randrange(1, 10**7)
            elif pick < 0.35:
                row["_event_time"] = H10.end_ms + chance.randrange(0, 10**7)
            elif pick < 0.5:
                row["_event_time"] = H10.start_ms + 1_234_500
        name = f"f{len(paths)}-{first}-{fmt}"
        return _parquet_file(lake, name, batch) if fmt == "parquet" else land(lake, name, fmt, batch)  # type: ignore[arg-type]

    def identities(table: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["_partition"], r["_offset"], r["_event_time"] is None) for r in table)

    paths: list[str] = []
    for _ in range(2):
        landed = len(paths)
        for _ in range(6):
            fmt = chance.choice(["parquet", "avro", "jsonl"])
            paths.append(mixed(fmt, chance.randrange(60), chance.randrange(3, 15)))
        expected = reference(lake, curated_now(lake), paths[landed:])
        lake.compact(slice_rows=chance.randrange(3, 12))
        assert identities(lake.hour_in_stored_order()) == identities(expected)


def test_rows_of_one_instant_past_the_budget_are_cut_by_identity_into_the_reference_order(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device whose clock is stuck puts its readings at one instant, and rows without time share none: each
    is one 0.1 s bin of many budgets, read and written in parts by offset range, repeats across the parts'
    files and against the curated rows still kept once, and the hour in the reference order."""
    chance = random.Random(5)

    def stuck(offsets: range, partition: int, value: float) -> list[dict[str, object]]:
        readings = rows(list(offsets), partition=partition, value=value, chance=chance)
        return [row | {"_event_time": H10.start_ms + 1_000} for row in readings]

    untimed = [row | {"_event_time": None} for row in rows(list(range(30)), partition=2, value=4.0, chance=chance)]
    first = [
        land(lake, "a", "parquet", stuck(range(0, 40), 0, 1.0)),
        land(lake, "b", "avro", stuck(range(30, 70), 0, 2.0)),  # repeats a
        land(lake, "c", "jsonl", stuck(range(0, 25), 1, 3.0)),
        land(lake, "d", "parquet", rows(list(range(70, 80)), partition=0, value=5.0, chance=chance)),  # over the hour
        _parquet_file(lake, "e", untimed),
    ]
    sizes = _slice_sizes(monkeypatch)
    expected = reference(lake, pa.table({}), first)
    assert lake.compact(slice_rows=10).rows == len(expected) == 70 + 25 + 10 + 30
    assert lake.hour_in_stored_order() == expected
    assert max(sizes) <= 10, sizes

    late = [land(lake, "f", "parquet", stuck(range(60, 90), 0, 6.0))]  # repeats curated rows of the instant
    expected = reference(lake, curated_now(lake), late)
    sizes.clear()
    assert lake.compact(slice_rows=10).rows == len(expected) == 135 + 10
    assert lake.hour_in_stored_order() == expected
    assert max(sizes) <= 10, sizes


@pytest.mark.parametrize("transient", [False, True], ids=["lake-error", "lake-unavailable"])
def test_a_failure_while_streaming_commits_nothing_and_is_reported_as_it_was(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, transient: bool
) -> None:
    """A transient error stops the run as it was raised (the next tick retries); any other fails the hour,
    with the store's own error as its reason (not a Delta write error). Neither commits a partial hour."""
    chance = random.Random(3)
    land(lake, "a", "parquet", rows(list(range(0, 30)), partition=0, value=1.0, chance=chance))
    lake.compact(slice_rows=10)
    version = lake.delta().version()
    late = land(lake, "b", "parquet", rows(list(range(30, 60)), partition=0, value=2.0, chance=chance))
    reads: list[str] = []
    read = lake.store.read
    error = LakeUnavailable if transient else LakeError

    def second_read_fails(path: str) -> bytes:  # the scan reads it, the slice cannot
        reads.append(path)
        if path == late and reads.count(path) > 1:
            raise error(f"read {path}: gone")
        return read(path)

    monkeypatch.setattr(lake.store, "read", second_read_fails)
    if transient:
        with pytest.raises(LakeUnavailable, match="gone"):
            lake.compact(slice_rows=10)
    else:
        report = lake.compact(slice_rows=10)
        (reason,) = report.failed.values()
        assert "LakeError" in reason and "gone" in reason
    assert lake.delta().version() == version, "a partial hour was committed"
    monkeypatch.undo()
    assert lake.compact(slice_rows=10).rows == 60


def test_drift_in_slices_is_the_in_memory_reference(lake: Lake) -> None:
    """A type change, unknown fields and a new column: the sliced job fits each slice to the curated
    schema and counts the drift as it goes; rows and report equal those of the whole hour in memory."""
    chance = random.Random(20)
    land(lake, "a", "parquet", rows(list(range(0, 40)), partition=0, value=1.0, chance=chance))
    lake.compact(slice_rows=7)
    curated = curated_now(lake)
    curated_schema = open_curated(lake.settings, "sensors").schema()
    retyped = rows(list(range(40, 70)), partition=0, value=0.0, chance=chance)
    for index, row in enumerate(retyped):  # value arrives as text: some of it casts to the double it was
        row["value"] = "hot" if index % 3 == 0 else f"{index}.5"
        row["_extra"] = '{"color": "red"}' if index % 4 == 0 else None
    newer = rows(list(range(0, 20)), partition=1, value=2.0, chance=chance)
    for row in newer:
        row["firmware"] = "2.1"  # a field a newer model adds
    late = [_parquet_file(lake, "b", retyped), _parquet_file(lake, "c", newer)]
    schema = landed_schema("sensors")
    tables = [curated] + [read_raw("parquet", lake.store.read(p), path=p, schema=schema) for p in sorted(late)]
    fitted, changes = drift.fit_tables(curated_schema, tables)
    merged = merge_hour(H10, fitted)
    expected = drift.report(H10, merged, curated_schema, changes)

    report = lake.compact(slice_rows=7)

    (hour,) = report.hours
    assert hour.drift is not None and hour.drift.document() == expected.document()
    assert hour.drift.type_changes["value"].moved == 10 and hour.drift.new_columns == ["firmware"]
    assert hour.drift.new_fields == {"color": 8}
    assert lake.hour_in_stored_order() == [_plain(row) for row in merged.to_pylist()]


def _parquet_file(lake: Lake, name: str, records: list[dict[str, object]]) -> str:
    path = f"raw/sensors/date={H10.date}/hour={H10.hour}/{name}.parquet"
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pylist(records)
    table = table.set_column(
        table.schema.get_field_index("_event_time"),
        "_event_time",
        pa.array([row["_event_time"] for row in records], pa.timestamp("ms", tz="UTC")),
    )
    pq.write_table(table, sink)
    lake.store.write_atomic(path, sink.getvalue().to_pybytes())
    return path
