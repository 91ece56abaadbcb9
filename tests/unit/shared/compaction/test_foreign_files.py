"""Raw files this project did not write, piece by piece: each fails as a ``CompactionError`` naming the
file, is fitted to what a Delta table can store, or is kept as it is; the statistics written for the
Delta log are only ones delta-rs parses back."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared import formats
from shared.compaction import drift
from shared.compaction.delta_table import delta_schema
from shared.compaction.parts import HourFiles
from shared.compaction.rows import CompactionError, read_raw, scan_raw
from shared.lake import LocalLake
from shared.lineage import LINEAGE_COLUMNS
from shared.source_model import Column
from tests.unit.shared.compaction.conftest import H10, START_US, identity

COLUMNS = (Column("value", "double"), *LINEAGE_COLUMNS)
Reader = Callable[..., Any]
PATH = "raw/clickstream/date=2026-11-24/hour=10/f"
ROW = {
    "value": 1.0,
    "_topic": "t",
    "_partition": 0,
    "_incarnation": 0,
    "_offset": 1,
    "_key": None,
    "_kafka_timestamp": H10.start_ms,
    "_event_time": H10.start_ms,
    "_event_time_source": "record",
    "_extra": None,
    "_received": None,
}


def _avro() -> bytes:
    return formats.encode("avro", COLUMNS, [ROW], record_name="t")


def _damaged_gzip() -> bytes:
    data = bytearray(gzip.compress(orjson.dumps(ROW) + b"\n"))
    data[10] = 0xFF  # the first deflate block's type becomes 11, which is invalid
    return bytes(data)


def _gzip_bomb() -> bytes:
    """About 3 KiB that decompress to 3 MiB of newlines (the review's was 255 KiB to 256 MiB, split at once into
    1.4 GB): past the lines a file may hold, before they are held."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(squeeze.compress(b"\n" * (1 << 20)) for _ in range(3)) + squeeze.flush()


def _avro_of_nulls() -> bytes:
    """The review's 179 bytes: a record whose array of nulls declares 2**40 items, which take no bytes."""
    schema = {"type": "record", "name": "r", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": b"null"}
    header = b"Obj\x01\x04" + b"".join(_varint(2 * len(k)) + k + _varint(2 * len(v)) + v for k, v in meta.items())
    record = _varint(2 * 2**40) + b"\x00"  # zig-zag: 2**40 items, then the end of the array
    return header + b"\x00" + b"S" * 16 + b"\x02" + _varint(2 * len(record)) + record + b"S" * 16


def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


DAMAGED = {
    "gzip-stream": ("jsonl", _damaged_gzip(), "error: Error -3"),  # zlib.error, not an OSError
    "avro-header-key": ("avro", _avro().replace(b"avro.schema", b"avro.schemX"), "KeyError"),
    "avro-schema": ("avro", _avro().replace(b'{"name": "value"', b'{"nam<": "value"', 1), "SchemaParseException"),
    "json-array-line": ("jsonl", gzip.compress(b"[1, 2]\n"), "row 1 is not an object (list)"),
    "json-number-line": ("jsonl", gzip.compress(orjson.dumps(ROW) + b"\n7\n"), "row 2 is not an object (int)"),
    "json-no-offset": ("jsonl", gzip.compress(orjson.dumps(ROW) + b"\n{}\n" * 3), "row 2 has no _offset"),
    "gzip-bomb": ("jsonl", _gzip_bomb(), "TooLargeToRead: holds more than 2,000,000 lines"),
    "avro-array-of-nulls": ("avro", _avro_of_nulls(), "TooLargeToRead: its schema has values that take no bytes"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
@pytest.mark.parametrize("read", [read_raw, scan_raw], ids=["read", "scan"])
def test_a_damaged_or_foreign_file_is_a_compaction_error_naming_it(case: str, read: Reader) -> None:
    fmt, data, reason = DAMAGED[case]
    with pytest.raises(CompactionError) as caught:
        read(fmt, data, path=PATH + "." + fmt, schema=formats.arrow_schema(COLUMNS))
    assert PATH in str(caught.value) and reason in str(caught.value)


@pytest.mark.parametrize("column", ["_topic", "_partition", "_incarnation", "_offset"])
@pytest.mark.parametrize("read", [read_raw, scan_raw], ids=["read", "scan"])
def test_a_row_without_its_identity_is_refused_by_name(column: str, read: Reader) -> None:
    """Deduplication and coverage key on a row's identity: a null there would be grouped as "None" or crash."""
    table = identity([1, 2], [START_US, START_US])
    index = table.schema.get_field_index(column)
    table = table.set_column(index, column, pa.array([table.column(column)[0].as_py(), None], table.schema[index].type))
    with pytest.raises(CompactionError, match=f"1 rows have no {column}"):
        read("parquet", _parquet(table), path=PATH + ".parquet")


def test_a_column_twice_in_one_file_is_refused() -> None:
    table = identity([1], [START_US])
    twice = pa.Table.from_arrays([*table.columns, pa.array([1])], names=[*table.column_names, "_offset"])
    with pytest.raises(CompactionError, match=r"has columns \['_offset'\] more than once"):
        scan_raw("parquet", _parquet(twice), path=PATH + ".parquet")


def test_view_columns_read_as_plain_ones() -> None:
    """Arrow cannot filter or sort string and binary views; a newer writer's Parquet file can hold them."""
    table = identity([1], [START_US]).append_column("s", pa.array(["x"], pa.string_view()))
    assert read_raw("parquet", _parquet(table), path=PATH + ".parquet").schema.field("s").type == pa.string()


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        (pa.uint8(), pa.int16()),
        (pa.uint16(), pa.int32()),
        (pa.uint32(), pa.int64()),
        (pa.uint64(), pa.int64()),
        (pa.float16(), pa.float32()),
        (pa.dictionary(pa.int8(), pa.large_string()), pa.string()),
        (pa.timestamp("ns"), pa.timestamp("us", tz="UTC")),
        (pa.date64(), pa.date32()),
        (pa.decimal256(20, 2), pa.decimal128(20, 2)),
        (pa.large_list(pa.uint64()), pa.list_(pa.int64())),
        (pa.list_(pa.int32(), 2), pa.list_(pa.int32())),
        (pa.map_(pa.string(), pa.uint32()), pa.map_(pa.string(), pa.int64())),
        (pa.struct([("a", pa.uint64()), ("b", pa.string_view())]), pa.struct([("a", pa.int64()), ("b", pa.string())])),
        (pa.duration("s"), None),
        (pa.time64("us"), None),
        (pa.month_day_nano_interval(), None),
        (pa.decimal256(50, 2), None),
        (pa.list_(pa.time32("s")), None),
        (pa.struct([("a", pa.duration("ms"))]), None),
        (pa.struct([]), None),
    ],
)
def test_each_arrow_type_is_stored_as_a_delta_type_or_refused(kind: pa.DataType, stored: pa.DataType | None) -> None:
    assert drift.storable(kind) == stored
    if stored is not None:
        delta_schema(H10, pa.schema([("c", stored)]))  # delta-rs takes it


def test_a_column_of_a_type_delta_lacks_fails_the_hour_naming_the_column_and_file() -> None:
    schemas = [pa.schema([("a", pa.int64())]), pa.schema([("a", pa.int64()), ("d", pa.duration("s"))])]
    with pytest.raises(CompactionError, match=r"column d is duration\[s\] in raw/b.parquet"):
        drift.HourFit(None, schemas, ["raw/a.parquet", "raw/b.parquet"])
    fit = drift.HourFit(pa.schema([("d", pa.string())]), schemas[1:], ["raw/b.parquet"])
    assert fit.schema.field("d").type == pa.string(), "the table's own type stands: the values are fitted to it"
    with pytest.raises(CompactionError, match="a Delta table cannot store these columns"):
        delta_schema(H10, pa.schema([("userid", pa.int64()), ("USERID", pa.int64())]))


def test_a_column_in_another_layout_of_its_type_is_no_type_change() -> None:
    """A dictionary (or view, or large) column holds the same values: it is cast, not reported as drift."""
    changes: dict[str, drift.TypeChange] = {}
    table = pa.table({"s": pa.array(["a", None, "a"]).dictionary_encode()})
    fitted = drift.fit_table(table, {"s": pa.string()}, changes)
    assert fitted.schema.field("s").type == pa.string() and fitted.column("s").to_pylist() == ["a", None, "a"]
    assert changes == {}


def test_unsigned_values_past_int64_move_to_extra() -> None:
    fit = drift.HourFit(None, [pa.schema([("c", pa.uint64())])])
    fitted = fit.fit(pa.table({"c": pa.array([1, 2**64 - 1, None], pa.uint64())}))
    assert fitted.column("c").to_pylist() == [1, None, None]
    assert fitted.column(drift.EXTRA).to_pylist() == [None, '{"c":18446744073709551615}', None]


@pytest.mark.parametrize("extra", ["not json", "[1, 2]", "7", '"text"'])
def test_an_extra_that_is_not_a_json_object_is_counted_as_no_fields_and_kept_whole(extra: str) -> None:
    table = pa.table({"n": pa.array(["x", "2"]), drift.EXTRA: pa.array([extra, extra])})
    tally = drift.DriftTally(frozenset(["n", drift.EXTRA]))
    tally.add(table)
    assert tally.fields == {} and tally.rows == 2
    fitted = drift.fit_table(table, {"n": pa.int64(), drift.EXTRA: pa.string()}, {})
    assert fitted.column("n").to_pylist() == [None, 2]
    assert fitted.column(drift.EXTRA).to_pylist() == [
        json.dumps({"_extra": extra, "n": "x"}, separators=(",", ":")),
        extra,
    ]


def test_statistics_are_only_those_delta_rs_parses_back(tmp_path: Path) -> None:
    """No flat nullCount for a struct column (Delta nests it); no min and max for a column holding a time
    out of Python's range; a time before year 1000 written with four digits."""
    rows = identity([1, 2, 3], [START_US, START_US + 1, START_US + 2])
    rows = rows.append_column("s", pa.array([{"a": 1}, None, {"a": None}]))
    rows = rows.append_column("far", pa.array([1, 300_000_000_000_000_000, None], pa.timestamp("us", tz="UTC")))
    early = int(datetime(500, 1, 2, 3, 4, 5, 6789, tzinfo=UTC).timestamp() * 1_000_000)
    rows = rows.append_column("early", pa.array([early, early, None], pa.timestamp("us", tz="UTC")))
    files = HourFiles(LocalLake(tmp_path), "curated/t", H10, rows.schema, target_bytes=1 << 30)
    files.write(rows.slice(0, 1))  # the far time comes in a later group: the first group's range is dropped too
    files.write(rows.slice(1))
    (written,) = files.finish()
    stats = json.loads(written.stats)
    assert "s" not in stats["nullCount"] and stats["nullCount"]["far"] == 1
    assert "far" not in stats["minValues"] and "far" not in stats["maxValues"]
    assert (stats["minValues"]["early"], stats["maxValues"]["early"]) == (
        "0500-01-02T03:04:05.006Z",
        "0500-01-02T03:04:05.007Z",
    )
    assert (stats["minValues"]["_offset"], stats["maxValues"]["_offset"]) == (1, 3)
