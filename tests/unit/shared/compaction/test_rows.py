"""Arrow work of one hour: raw files of every format read back, merged, deduplicated by offset, sorted."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shared import formats
from shared.compaction.rows import CompactionError, merge_hour, offset_ranges, read_raw
from shared.lineage import LINEAGE_COLUMNS
from shared.source_model import Column
from tests.unit.shared.compaction.conftest import H10

COLUMNS = (Column("value", "double"), Column("tags", "map"), *LINEAGE_COLUMNS)
SCHEMA = formats.arrow_schema(COLUMNS)


def rows(offsets: list[int], *, partition: int = 0, value: float = 1.0) -> list[dict[str, object]]:
    return [
        {
            "value": value,
            "tags": {"k": str(offset)},
            "_topic": "sensors",
            "_partition": partition,
            "_incarnation": 0,
            "_offset": offset,
            "_key": f"k{offset}",
            "_kafka_timestamp": H10.start_ms,
            "_event_time": H10.start_ms + 1000 * (100 - offset),  # later offsets happened earlier
            "_event_time_source": "record",
        }
        for offset in offsets
    ]


@pytest.mark.parametrize("fmt", ["parquet", "avro", "jsonl"])
def test_every_landed_format_reads_back_with_lineage(fmt: formats.LakeFormat) -> None:
    data = formats.encode(fmt, COLUMNS, rows([1, 2]), record_name="sensors")
    table = read_raw(fmt, data, path="raw/x.parquet", schema=SCHEMA)
    assert table.column("tags").to_pylist() == [[("k", "1")], [("k", "2")]]
    assert table.column("_incarnation").to_pylist() == [0, 0]
    assert table.schema.field("_event_time").type == pa.timestamp("us", tz="UTC")
    assert table.column("_offset").to_pylist() == [1, 2]


def test_duplicates_across_files_collapse_to_the_first_and_rows_sort_by_event_time() -> None:
    first = read_raw(
        "parquet", formats.encode("parquet", COLUMNS, rows([1, 2, 3], value=1.0), record_name="s"), path="a"
    )
    again = read_raw(
        "parquet", formats.encode("parquet", COLUMNS, rows([2, 3, 4], value=2.0), record_name="s"), path="b"
    )
    letters = formats.encode("jsonl", COLUMNS, rows([3], partition=1), record_name="s")
    other = read_raw("jsonl", letters, path="c", schema=SCHEMA)
    merged = merge_hour(H10, [first, again, other])
    assert merged.num_rows == 5
    assert list(zip(merged.column("_partition").to_pylist(), merged.column("_offset").to_pylist(), strict=True)) == [
        (0, 4),
        (0, 3),
        (1, 3),
        (0, 2),
        (0, 1),
    ]
    assert merged.column("value").to_pylist() == [2.0, 1.0, 1.0, 1.0, 1.0]  # offsets 2, 3 kept from the first file
    assert set(merged.column("date").to_pylist()) == {"2026-11-24"} and set(merged.column("hour").to_pylist()) == {"10"}
    ranges = offset_ranges(merged)
    assert [(r.partition, r.first, r.last, r.rows) for r in ranges] == [(0, 1, 4, 4), (1, 3, 3, 1)]


def test_incarnations_are_distinct_rows() -> None:
    old = read_raw("parquet", formats.encode("parquet", COLUMNS, rows([0, 1]), record_name="s"), path="a")
    new = old.set_column(old.schema.get_field_index("_incarnation"), "_incarnation", pa.array([1, 1], pa.int64()))
    assert merge_hour(H10, [old, new]).num_rows == 4


def test_new_nullable_column_is_added_and_conflicting_types_are_a_clear_error() -> None:
    base = read_raw("parquet", formats.encode("parquet", COLUMNS, rows([1]), record_name="s"), path="a")
    wider = base.append_column("firmware", pa.array(["1.2"]))
    merged = merge_hour(
        H10, [base, wider.set_column(wider.schema.get_field_index("_offset"), "_offset", pa.array([2]))]
    )
    assert merged.column("firmware").to_pylist().count(None) == 1
    clash = base.set_column(0, "value", pa.array(["one"]))
    with pytest.raises(CompactionError, match="disagree on a column type"):
        merge_hour(H10, [base, clash])


def test_unreadable_raw_file_is_a_compaction_error_naming_it() -> None:
    with pytest.raises(CompactionError, match=r"raw/bad\.parquet"):
        read_raw("parquet", b"not parquet", path="raw/bad.parquet")


def test_the_same_offset_in_two_incarnations_is_two_rows_when_the_old_life_holds_offsets_below_it() -> None:
    """A topic re-created mid-hour: the old life's offsets 6 and 7, the new life's 7. Deduplication that compared
    only topic, partition and offset of neighbours in identity order kept 2 of the 3 rows; the new life's first
    record was lost."""
    old = read_raw("parquet", formats.encode("parquet", COLUMNS, rows([6, 7]), record_name="s"), path="a")
    new_life = rows([7], value=2.0)
    new_life[0]["_incarnation"] = 1
    new = read_raw("parquet", formats.encode("parquet", COLUMNS, new_life, record_name="s"), path="b")
    merged = merge_hour(H10, [old, new])
    identities = zip(merged.column("_incarnation").to_pylist(), merged.column("_offset").to_pylist(), strict=True)
    assert sorted(identities) == [(0, 6), (0, 7), (1, 7)]
    assert sorted(merged.column("value").to_pylist()) == [1.0, 1.0, 2.0]
