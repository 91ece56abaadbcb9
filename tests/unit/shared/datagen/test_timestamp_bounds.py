"""A Datagen timestamp or date no date can hold (past year 9999, before year 1) is a ``schema`` dead letter,
sent as JSON or as Avro through a schema registry: the same model validates both. Landed, it would stop its
hour from compacting (tests/lake/test_datagen_timestamps.py goes through landing and compaction)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.registry.server import serve_registry
from shared.batch import process_batch
from shared.datagen.avro import MAX_DATE_DAYS, MIN_DATE_DAYS, MIN_TIMESTAMP_MS
from shared.dead_letters import Reason
from shared.records import KafkaRecord
from shared.schema_registry.client import ConfluentRegistry
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from shared.source_model import MAX_TIMESTAMP_MS, Source
from tests.conftest import FIXED_NOW_MS, datagen_source

AVRO = {
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": "http://registry.invalid:8081",
}
FIELDS = [
    {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "local_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
]
LOWEST = {"ms": MIN_TIMESTAMP_MS, "local_ms": MIN_TIMESTAMP_MS, "day": MIN_DATE_DAYS}
LOWEST |= {"us": MIN_TIMESTAMP_MS * 1000, "local_us": MIN_TIMESTAMP_MS * 1000}
HIGHEST = {"ms": MAX_TIMESTAMP_MS, "local_ms": MAX_TIMESTAMP_MS, "day": MAX_DATE_DAYS}
HIGHEST |= {"us": MAX_TIMESTAMP_MS * 1000 + 999, "local_us": MAX_TIMESTAMP_MS * 1000 + 999}


def timed(**config: Any) -> Source:
    return datagen_source("timed", {"type": "record", "name": "Timed", "fields": FIELDS}, **config)


def records(values: list[dict[str, Any]]) -> list[KafkaRecord]:
    return [KafkaRecord("timed", 0, i, "k", json.dumps(v).encode(), FIXED_NOW_MS) for i, v in enumerate(values)]


def test_the_bounds_are_the_first_and_last_instants_and_days_of_years_1_to_9999() -> None:
    epoch, millisecond = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(microsecond=999_000, tzinfo=UTC)
    assert ((first - epoch) // millisecond, (last - epoch) // millisecond) == (MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)
    assert ((date.min - epoch.date()).days, (date.max - epoch.date()).days) == (MIN_DATE_DAYS, MAX_DATE_DAYS)


def test_a_timestamp_no_date_can_hold_is_a_schema_dead_letter_for_a_datagen_source() -> None:
    """docs/reliability.md: ``schema`` covers "a timestamp no date can hold". A timestamp-millis of 2**62 ms
    (year ~146 million) used to land, and then fail every compaction of its hour."""
    source = datagen_source("tsx", {"type": "record", "name": "R", "fields": [FIELDS[0]]})
    record = KafkaRecord("tsx", 0, 0, "k", json.dumps({"ms": 2**62}).encode(), FIXED_NOW_MS)
    batch = process_batch(source, [record], max_record_bytes=1_000_000)
    assert [letter.reason for letter in batch.dead_letters] == [Reason.SCHEMA], batch.rows()


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize("name", [field["name"] for field in FIELDS])
def test_one_past_the_first_or_last_date_is_a_schema_dead_letter_naming_the_field(name: str, columnar: bool) -> None:
    values = [HIGHEST, LOWEST, HIGHEST | {name: HIGHEST[name] + 1}, LOWEST | {name: LOWEST[name] - 1}]
    values += [HIGHEST | {name: 2**62}, HIGHEST | {name: -(2**62)}]
    batch = process_batch(timed(), records(values), max_record_bytes=1_000_000, columnar=columnar)
    assert [row["_offset"] for row in batch.rows()] == [0, 1]
    assert [letter.reason for letter in batch.dead_letters] == [Reason.SCHEMA] * 4
    assert all(name in letter.detail for letter in batch.dead_letters)


def test_an_avro_record_through_the_registry_is_held_to_the_same_bounds(tmp_path: Path) -> None:
    source = timed(**AVRO)
    with serve_registry(tmp_path / "registry.sqlite") as url:
        registry = ConfluentRegistry(url)
        encoder = AvroEncoder(source, registry, "timed")
        values = [HIGHEST, LOWEST, HIGHEST | {"ms": 2**62}, LOWEST | {"us": -(2**62)}, HIGHEST | {"day": 2**31 - 1}]
        bodies = [encoder.encode("k", json.dumps(value)).value for value in values]
        batch = process_batch(
            source,
            [KafkaRecord("timed", 0, i, "k", body, FIXED_NOW_MS) for i, body in enumerate(bodies)],
            max_record_bytes=1_000_000,
            decoder=AvroDecoder(registry),
        )
    assert [row["_offset"] for row in batch.rows()] == [0, 1]
    assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [
        (2, Reason.SCHEMA),
        (3, Reason.SCHEMA),
        (4, Reason.SCHEMA),
    ]


def test_a_tick_at_the_last_microsecond_of_year_9999_generates_records_its_model_takes() -> None:
    """``now.timestamp() * 1000``, a float, rounded 9999-12-31T23:59:59.999999 one millisecond past the last one:
    the generated record failed its own model, on every retry of the tick (a review's reproduction)."""
    from shared.generator_ticks import Tick, tick_piece

    source = datagen_source("ts", {"type": "record", "name": "T", "fields": FIELDS[:3]})
    last = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    (message,) = tick_piece(source, Tick(0, 1, last.isoformat(), 1), 0).messages
    assert json.loads(message.value)["ms"] == MAX_TIMESTAMP_MS
