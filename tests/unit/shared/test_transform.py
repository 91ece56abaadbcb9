"""The Arrow path of the core: a source's columnar transform lands exactly what its row transform lands."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pyarrow as pa
import pytest

from shared.batch import process_batch
from shared.formats import decode, format_named
from shared.landing.files import plan_batch
from shared.records import KafkaRecord, offset_spans
from shared.source_model import MAX_TIMESTAMP_MS, Row
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, records_for

HOUR_MS = 3_600_000
COLUMNAR = sorted(name for name, source in SOURCES.items() if source.transform_columns is not None)


def _odd_but_valid(record: KafkaRecord) -> list[KafkaRecord]:
    """Variants of a valid record whose strings are edge cases for string kernels (all still valid)."""
    event = json.loads(record.value or b"{}")
    texts = [
        "",
        " ",
        "-",
        "--",
        "  two  spaces  ",
        "a b c d",
        "x\u00a0y z",
        "SPİDER",
        "\u017fpider",
        "GoogleBOT",
        "crawler/\u212a",
        "sl\u00fcrp",
        "slurp",
        "\U0001f600 bot",
        "tab\tsep",
        "new\nline v",
    ]
    variants = []
    for index, text in enumerate(texts):
        changed = dict(event)
        for name, value in event.items():
            if isinstance(value, str) and name not in {"status", "bytes", "ip"}:
                changed[name] = text if name != "request" or text else "GET"
        variants.append(dataclasses.replace(record, offset=record.offset + index, value=json.dumps(changed).encode()))
    return variants


@pytest.mark.parametrize("name", COLUMNAR)
def test_each_columnar_transform_gives_the_rows_of_the_row_transform(name: str) -> None:
    source = get_source(name)
    records = records_for(source, 200)
    records += _odd_but_valid(dataclasses.replace(records[0], offset=1000))
    by_rows = process_batch(source, records, max_record_bytes=1 << 20)
    by_table = process_batch(source, records, max_record_bytes=1 << 20, columnar=True)
    assert all(part.table is not None for part in by_table) and by_table.row_count == len(records)
    assert by_table.rows() == by_rows.rows()  # rows built from the table, lineage included
    assert by_table.dead_letters == by_rows.dead_letters == []
    generated_only = process_batch(source, records[:200], max_record_bytes=1 << 20, columnar=True)
    assert generated_only.rows() == by_rows.rows()[:200]  # ASCII-only strings: the kernels' own path


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


def _failing_columns(table: pa.Table) -> pa.Table:
    if any(agent == "explode" for agent in table["agent"].to_pylist()):
        raise ValueError("cannot take the batch")
    return get_source("clickstream").transform_columns(table)  # type: ignore[misc]


def _failing_row(event: Row) -> Row:
    if event["agent"] == "explode":
        raise ValueError("cannot take this record")
    return get_source("clickstream").transform(event)


def test_a_batch_the_columnar_transform_cannot_take_goes_row_by_row_and_parks_only_the_bad_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = dataclasses.replace(
        get_source("clickstream"), name="fallback-test", transform=_failing_row, transform_columns=_failing_columns
    )
    records = records_for(source, 20)
    event = json.loads(records[7].value or b"{}") | {"agent": "explode"}
    records[7] = dataclasses.replace(records[7], value=json.dumps(event).encode())
    batch = process_batch(source, records, max_record_bytes=1 << 20, columnar=True)
    assert all(part.table is None for part in batch)
    assert [row["_offset"] for row in batch.rows()] == [r.offset for r in records if r.offset != 7]
    assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(7, "transform_error")]
    process_batch(source, records, max_record_bytes=1 << 20, columnar=True)
    warnings = [r.getMessage() for r in caplog.records if "goes row by row" in r.getMessage()]
    assert len(warnings) == 1 and "ValueError: cannot take the batch" in warnings[0]  # once, not per batch


@pytest.mark.parametrize("columnar", [False, True])
def test_an_event_time_no_long_can_hold_is_no_time_of_its_own(columnar: bool) -> None:
    source = dataclasses.replace(get_source("clickstream"), event_time_ms=lambda event: 2**64)
    batch = process_batch(source, records_for(source, 3), max_record_bytes=1 << 20, columnar=columnar)
    assert [(row["_event_time"], row["_event_time_source"]) for row in batch.rows()] == [(FIXED_NOW_MS, "kafka")] * 3


def test_offset_spans_are_each_partitions_lowest_and_highest_offset_however_records_interleave() -> None:
    chance = random.Random(13)
    for _ in range(500):
        records = [
            KafkaRecord(chance.choice("ab"), chance.randint(0, 3), chance.randint(0, 60), None, b"v", None)
            for _ in range(chance.randint(0, 40))
        ]
        expected: dict[tuple[str, int], Any] = {}
        for record in records:
            offsets = expected.setdefault((record.topic, record.partition), [])
            offsets.append(record.offset)
        assert offset_spans(records) == {key: (min(v), max(v)) for key, v in expected.items()}


@pytest.mark.parametrize("columnar", [False, True])
def test_an_event_time_past_the_last_storable_instant_lands_by_its_kafka_timestamp(columnar: bool) -> None:
    source = get_source("clickstream")
    record = records_for(source, 1)[0]
    event = json.loads(record.value or b"{}") | {"_time": MAX_TIMESTAMP_MS + 1}  # within the hour's lead
    record = dataclasses.replace(record, value=json.dumps(event).encode(), timestamp_ms=MAX_TIMESTAMP_MS)
    batch = process_batch(source, [record], max_record_bytes=1 << 20, columnar=columnar)
    planned = plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)  # a year-10000 hour has no directory
    assert [file.row_count for file in planned] == [1]
    assert [(row["_event_time"], row["_event_time_source"]) for row in batch.rows()] == [(MAX_TIMESTAMP_MS, "kafka")]
