"""Transform: each columnar transform gives the rows of the row transform, one that fails falls back row
by row, and keys no entity can take are dead letters."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from shared.batch import process_batch
from shared.records import KafkaRecord
from shared.source_model import Row
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, records_for

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


def test_keys_no_entity_can_take_are_bad_key_dead_letters_only_with_state() -> None:
    source = SOURCES["mobile"]
    good = records_for(source, 3)
    too_long = good[1].value.replace(b'"device_id":"', b'"device_id":"' + "é".encode() * 100)  # type: ignore[union-attr]
    records = [good[0], KafkaRecord("mobile", 0, 1, None, too_long, FIXED_NOW_MS), good[2]]
    keyed = process_batch(source, records, max_record_bytes=1 << 20, keyed=True)
    assert [(d.record.offset, d.reason) for d in keyed.dead_letters] == [(1, "bad_key")]
    assert len(keyed.rows()) == 2
    unkeyed = process_batch(source, records, max_record_bytes=1 << 20)
    assert unkeyed.dead_letters == [] and len(unkeyed.rows()) == 3
