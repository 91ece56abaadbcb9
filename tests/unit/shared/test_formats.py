"""Landed formats read back losslessly, with the project's reader and with the standard ones."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest

from shared import formats
from shared.formats import format_named
from shared.landing.files import landed_columns, plan_batch
from shared.settings import LakeFormat
from shared.source_model import Column
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS
from tests.unit.shared.conftest import processed


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_formats_read_back_losslessly_with_standard_readers(tmp_path: Path, name: str) -> None:
    batch = processed(name, 25)
    for fmt in ("parquet", "avro", "jsonl"):
        columns = landed_columns(batch.source)
        data = plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS)[0].data
        expected = [{c.name: r.get(c.name) for c in columns} for r in batch.rows()]
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
            assert table.num_rows == 25 and table.column_names == [c.name for c in columns]
        elif fmt == "avro":
            assert len(list(fastavro.reader(io.BytesIO(data)))) == 25
        else:
            assert len(gzip.decompress(data).splitlines()) == 25
        assert formats.decode(fmt, data) == expected, fmt  # type: ignore[arg-type]


def test_raw_parquet_keeps_statistics_for_numbers_and_times_only() -> None:
    batch = processed("clickstream", 25)
    data = plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)[0].data
    row_group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    with_statistics = {
        row_group.column(i).path_in_schema
        for i in range(row_group.num_columns)
        if row_group.column(i).is_stats_set and row_group.column(i).statistics.has_min_max
    }
    assert {"_offset", "_partition", "_kafka_timestamp", "_event_time"} <= with_statistics
    assert not with_statistics & {"_received", "_key", "_topic", "_extra"}
    offsets = row_group.column([c.name for c in landed_columns(batch.source)].index("_offset")).statistics
    assert (offsets.min, offsets.max) == (0, 24)


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
@pytest.mark.parametrize("ms", [543_114_725_359, 269_551_745_655, -134_975_980_075, 0, FIXED_NOW_MS])
def test_a_timestamp_read_back_is_the_millisecond_that_landed(fmt: LakeFormat, ms: int) -> None:
    """Not one millisecond early, as a float product (``timestamp() * 1000``) truncated makes some instants: the
    rows read back from raw/ feed keyed state (a user's ``registered_at``, an event's window)."""
    columns = (Column("_offset", "long", nullable=False), Column("registered_at", "timestamp", nullable=False))
    data = formats.encode(fmt, columns, [{"_offset": 0, "registered_at": ms}], record_name="users")
    assert formats.decode(fmt, data) == [{"_offset": 0, "registered_at": ms}]
