"""File layout, idempotent landing and lossless formats, on a real local directory."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest

from shared import formats
from shared.batch import process_batch
from shared.errors import UnsafePath
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, landed_columns, plan_batch
from shared.layout import batch_file_name, check_relative_path, safe_segment
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, records_for

HOUR_MS = 3_600_000


def _batch(name: str, count: int = 20, **kwargs: object):  # type: ignore[no-untyped-def]
    source = get_source(name)
    return process_batch(source, records_for(source, count, **kwargs), max_record_bytes=100_000)


def test_file_name_is_topic_partition_and_zero_padded_offsets() -> None:
    assert batch_file_name(TopicPartition("clickstream", 2), OffsetSpan(7, 1234), 0, "parquet") == (
        "clickstream+2+i0+00000000000000000007+00000000000000001234.parquet"
    )


def test_batch_lands_in_event_hour_directory() -> None:
    planned = plan_batch(_batch("sensors", first_offset=500), format_named("parquet"), now_ms=FIXED_NOW_MS)
    assert [p.path for p in planned] == [
        "raw/sensors/date=2026-11-24/hour=10/sensors+0+i0+00000000000000000500+00000000000000000519.parquet"
    ]


def test_batch_spanning_two_hours_writes_one_file_per_hour() -> None:
    batch = _batch("mobile", 10)
    for row in batch.rows()[5:]:
        row["_event_time"] += HOUR_MS
    paths = [p.path for p in plan_batch(batch, format_named("jsonl"), now_ms=FIXED_NOW_MS)]
    assert [p.split("/")[3] for p in paths] == ["hour=10", "hour=11"]
    assert len({p.split("/")[-1] for p in paths}) == 1  # same offset range, two hours


def test_partitions_land_in_separate_files() -> None:
    source = get_source("clickstream")
    records = records_for(source, 5, partition=0) + records_for(source, 5, partition=1, first_offset=90)
    batch = process_batch(source, records, max_record_bytes=100_000)
    names = sorted(p.path.split("/")[-1] for p in plan_batch(batch, format_named("avro"), now_ms=FIXED_NOW_MS))
    assert names == [
        "clickstream+0+i0+00000000000000000000+00000000000000000004.avro",
        "clickstream+1+i0+00000000000000000090+00000000000000000094.avro",
    ]


@pytest.mark.parametrize("fmt", ["parquet", "avro", "jsonl"])
def test_same_batch_twice_gives_the_same_files_and_no_duplicate_rows(tmp_path: Path, fmt: str) -> None:
    lake = LocalLake(tmp_path)
    batch = _batch("clickstream", 30)
    first = land(lake, plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS))  # type: ignore[arg-type]
    second = land(lake, plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS))  # type: ignore[arg-type]
    assert first.files == second.files
    assert lake.list_paths("raw") == list(first.files)
    rows = formats.decode(fmt, lake.read(first.files[0]))  # type: ignore[arg-type]
    assert sorted(r["_offset"] for r in rows) == list(range(30))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_formats_read_back_losslessly_with_standard_readers(tmp_path: Path, name: str) -> None:
    batch = _batch(name, 25)
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


def test_dead_letters_keep_raw_bytes_reason_and_position(tmp_path: Path) -> None:
    source = get_source("sensors")
    records = [*records_for(source, 3), KafkaRecord("sensors", 0, 3, "bad-key", b"\x00\xffnot json", FIXED_NOW_MS)]
    batch = process_batch(source, records, max_record_bytes=100_000)
    report = land(LocalLake(tmp_path), plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))
    assert (report.row_count, report.dead_letter_count) == (3, 1)
    letter_path = next(p for p in report.files if p.startswith("deadletter/"))
    assert letter_path == (
        "deadletter/sensors/date=2026-11-24/hour=10/sensors+0+i0+00000000000000000000+00000000000000000003.jsonl.gz"
    )
    (letter,) = [json.loads(line) for line in gzip.decompress((tmp_path / letter_path).read_bytes()).splitlines()]
    assert base64.b64decode(letter["raw_base64"]) == b"\x00\xffnot json"
    assert (letter["reason"], letter["_topic"], letter["_partition"], letter["_offset"]) == (
        "not_utf8",
        "sensors",
        0,
        3,
    )
    assert letter["dead_lettered_at"] == FIXED_NOW_MS


@pytest.mark.parametrize("topic", ["../../etc", "a/b", "..", "ünïcode topic"])
def test_hostile_topic_names_stay_inside_one_path_segment(topic: str) -> None:
    segment = safe_segment(topic) if topic != ".." else None
    if segment is None:
        with pytest.raises(UnsafePath):
            safe_segment(topic)
        return
    assert "/" not in segment and segment not in (".", "..")
    check_relative_path(f"raw/x/{segment}")


@pytest.mark.parametrize("path", ["../x", "/abs/x", "a//b", "a/./b", "a/../b", ""])
def test_paths_that_could_escape_the_lake_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePath):
        LocalLake(tmp_path).write_atomic(path, b"x")
    assert list(tmp_path.iterdir()) == []
