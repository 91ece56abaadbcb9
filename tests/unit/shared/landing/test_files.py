"""One partition's files: one per event hour, raw and dead letters, the same from rows or an Arrow table,
and landing them twice changes nothing (on a real local directory)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from shared import formats
from shared.batch import process_batch
from shared.formats import decode, format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch, plan_files
from shared.landing.guard import land_once
from shared.records import KafkaRecord
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.conftest import processed
from tests.unit.shared.landing.conftest import CLICKS, PARQUET

HOUR_MS = 3_600_000


def test_batch_lands_in_event_hour_directory() -> None:
    planned = plan_batch(processed("sensors", first_offset=500), format_named("parquet"), now_ms=FIXED_NOW_MS)
    assert [p.path for p in planned] == [
        "raw/sensors/date=2026-11-24/hour=10/sensors+0+i0+00000000000000000500+00000000000000000519.parquet"
    ]


def test_batch_spanning_two_hours_writes_one_file_per_hour() -> None:
    batch = processed("mobile", 10)
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
    batch = processed("clickstream", 30)
    first = land(lake, plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS))  # type: ignore[arg-type]
    second = land(lake, plan_batch(batch, format_named(fmt), now_ms=FIXED_NOW_MS))  # type: ignore[arg-type]
    assert first.files == second.files
    assert lake.list_paths("raw") == list(first.files)
    rows = formats.decode(fmt, lake.read(first.files[0]))  # type: ignore[arg-type]
    assert sorted(r["_offset"] for r in rows) == list(range(30))


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


def test_an_unencodable_row_becomes_a_dead_letter_and_the_rest_lands() -> None:
    source = SOURCES["mobile"]
    batch = process_batch(source, records_for(source, 20), max_record_bytes=1 << 20)
    batch.rows()[5]["screen"] = "\udcff"  # a gap no model closes today: a transform producing a lone surrogate
    (part,) = batch
    plan = plan_files(part, format_named("parquet"), now_ms=FIXED_NOW_MS)
    raw = [f for f in plan.files if f.path.startswith("raw/")]
    letters = [row for f in plan.files if f.dead_letters for row in formats.decode("jsonl", f.data)]
    assert sum(len(formats.decode("parquet", f.data)) for f in raw) == 19
    assert [(row["_offset"], row["reason"]) for row in letters] == [(5, "unencodable")]
    assert [letter.record.offset for letter in plan.unencodable] == [5]  # returned, so no signal is sent for it
    assert len(batch.rows()) == 20  # the batch itself is left as it was


def test_an_arrow_batch_lands_the_same_files_as_its_rows() -> None:
    source = get_source("clickstream")
    records = [
        dataclasses.replace(record, partition=index % 3, timestamp_ms=FIXED_NOW_MS + (index % 2) * HOUR_MS)
        for index, record in enumerate(records_for(source, 120))
    ]
    records.append(dataclasses.replace(records[0], offset=500, value=b"not json"))
    by_rows = plan_batch(
        process_batch(source, records, max_record_bytes=1 << 20), format_named("parquet"), now_ms=FIXED_NOW_MS
    )
    table_batch = process_batch(source, records, max_record_bytes=1 << 20, columnar=True)
    by_table = plan_batch(table_batch, format_named("parquet"), now_ms=FIXED_NOW_MS)
    assert all(part.table is not None for part in table_batch)  # planning read the tables, not rows
    assert [file.path for file in by_table] == [file.path for file in by_rows]
    assert len([file for file in by_table if file.path.startswith("raw/")]) >= 3
    for from_table, from_rows in zip(by_table, by_rows, strict=True):
        assert from_table.row_count == from_rows.row_count
        fmt = "jsonl" if from_table.dead_letters else "parquet"
        assert decode(fmt, from_table.data) == decode(fmt, from_rows.data)


def test_a_table_encoder_failure_falls_back_to_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Arrow fast path is an optimisation: an encoder edge case there lands the batch from its rows instead of
    stopping every batch of the partition."""
    batch = process_batch(CLICKS, records_for(CLICKS, 10), max_record_bytes=1 << 20, columnar=True)
    assert all(part.table is not None for part in batch)

    def broken(_self: object, _table: object) -> bytes:
        raise RuntimeError("an encoder edge case")

    monkeypatch.setattr(type(PARQUET), "encode_table", broken)
    assert land_once(LocalLake(tmp_path), batch, PARQUET, now_ms=FIXED_NOW_MS).row_count == 10
