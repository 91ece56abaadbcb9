"""Writer schemas that differ from the source's in ways its records were refused or landed wrong for: a default
of the wrong type, a field added inside array items, a logical type that changes what a number means."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import fastavro
import orjson
import pytest

from shared.batch import process_batch
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import confluent_frame
from tests.unit.shared.schema_registry.conftest import records_of
from tests.unit.shared.schema_registry.test_decoder import THING, _Holding, _produced, _read_as, _thing_source, _with

COLOR = {"type": "enum", "name": "Color", "symbols": ["RED"]}


@pytest.mark.parametrize(
    ("field", "sent"),
    [
        ({"name": "note", "type": "string", "default": None}, "x"),
        ({"name": "count", "type": "long", "default": "0"}, 3),
        ({"name": "color", "type": COLOR | {"default": "BLUE"}}, "RED"),
    ],
    ids=["string, default null", "long, default text", "enum, default not a symbol"],
)
def test_a_writer_schema_with_a_default_of_the_wrong_type_still_decodes(field: dict[str, Any], sent: Any) -> None:
    """A writer's defaults are never used to read its own records (Confluent's deserializer does not validate
    them for a schema fetched by id; registries hold such schemas from before they validated). fastavro
    refused the whole schema: every record was ``unknown_schema``. The reader's own defaults still apply."""
    writer = _with(field)
    plain = _with({"name": field["name"], "type": COLOR if field["name"] == "color" else field["type"]})
    sink = io.BytesIO()
    fastavro.schemaless_writer(sink, fastavro.parse_schema(plain), {"id": 1, "name": "a", field["name"]: sent})
    values: list[bytes | None] = [confluent_frame("7", sink.getvalue())]
    with_qty = _thing_source(_with({"name": "qty", "type": "int", "default": 1}))
    for source, qty in ((_thing_source(THING), None), (with_qty, 1)):
        batch = process_batch(
            source, records_of(values, topic="things"), max_record_bytes=1 << 20, decoder=AvroDecoder(_Holding(writer))
        )
        assert [(str(letter.reason), letter.detail) for letter in batch.dead_letters] == []
        (row,) = batch.rows()
        assert (row["id"], json.loads(row["_extra"])) == (1, {field["name"]: sent})
        assert row.get("qty") == qty  # the reader's own default fills what the writer lacks


ITEM = {"type": "record", "name": "Item", "fields": [{"name": "sku", "type": "string"}]}
ITEM_WITH_QTY = ITEM | {"fields": [*ITEM["fields"], {"name": "qty", "type": "long"}]}


@pytest.mark.parametrize(
    ("container", "record"),
    [
        ({"type": "array", "items": ITEM}, [{"sku": "X", "qty": 3}, {"sku": "Y", "qty": 4}]),
        ({"type": "map", "values": ITEM}, {"first": {"sku": "X", "qty": 3}}),
        ({"type": "array", "items": {"type": "array", "items": ITEM}}, [[{"sku": "X", "qty": 3}]]),
    ],
    ids=["array items", "map values", "items of nested arrays"],
)
def test_a_field_only_the_writer_has_inside_items_lands_as_it_does_from_json(
    registry: str, container: dict[str, Any], record: Any
) -> None:
    """A newer producer adds ``qty`` to the records inside an array. Sent as JSON, qty stays in the landed
    ``items`` column; resolved from Avro it vanished from the column and from _extra."""
    newer = _swap_item(container, ITEM_WITH_QTY)
    reader, writer = _with({"name": "items", "type": container}), _with({"name": "items", "type": newer})
    value = {"id": 1, "name": "a", "items": record}
    source = _thing_source(reader)
    batch = _read_as(registry, source, _produced(registry, writer, [value]))
    assert batch.dead_letters == []
    (avro_row,) = batch.rows()
    json_source = dataclasses.replace(source, value_format="json")
    (json_row,) = process_batch(
        json_source, records_of([orjson.dumps(value)], topic="things"), max_record_bytes=1 << 20
    ).rows()
    assert '"qty":3' in json_row["items"].replace(" ", "")
    assert (avro_row["items"], avro_row["_extra"]) == (json_row["items"], json_row["_extra"])


def _swap_item(schema: Any, item: dict[str, Any]) -> Any:
    """``schema`` with its Item record replaced by ``item``."""
    if schema == ITEM:
        return item
    if isinstance(schema, dict):
        return {key: _swap_item(value, item) for key, value in schema.items()}
    return schema


MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
DATE = {"type": "int", "logicalType": "date"}


def _decimal(scale: int, precision: int = 9) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def _at_written_and_read(registry: str, written: Any, read: Any, value: Any) -> Any:
    """The batch of one record whose field ``at`` (``value``) is written as ``written``, read as ``read``."""
    reader, writer = _with({"name": "at", "type": read}), _with({"name": "at", "type": written})
    return _read_as(registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": value}]))


@pytest.mark.parametrize(
    ("written", "read", "value", "problem"),
    [
        (MILLIS, MICROS, 1_767_225_600_000, "written as timestamp-millis, read as timestamp-micros"),
        (DATE, MILLIS, 20_454, "written as date, read as timestamp-millis"),
        (["null", MILLIS], ["null", MICROS], 1_767_225_600_000, "at: written as timestamp-millis"),
        (_decimal(2), _decimal(3), b"\x30\x39", "written as decimal(9, 2), read as decimal(9, 3)"),
        ({"type": "array", "items": MILLIS}, {"type": "array", "items": MICROS}, [1], "at[]: written as"),
    ],
    ids=["millis read as micros", "date read as a timestamp", "in a union", "decimal scale", "array items"],
)
def test_a_logical_type_that_changes_what_the_number_means_is_a_schema_dead_letter(
    registry: str, written: Any, read: Any, value: Any, problem: str
) -> None:
    """Logical types were removed on both sides before resolving, so 2026-01-01 in ms resolved to the source's
    us and landed as 1970-01-21, a date as a timestamp in 1970, 123.45 as 12.345: no dead letter."""
    batch = _at_written_and_read(registry, written, read, value)
    assert batch.rows() == []
    (letter,) = batch.dead_letters
    assert str(letter.reason) == "schema" and problem in letter.detail, letter.detail
    assert letter.detail.startswith("schema 1: ")


@pytest.mark.parametrize(
    ("written", "read", "value"),
    [
        (MILLIS, MILLIS | {"connect.name": "x"}, 1_767_225_600_000),
        ("long", MICROS, 1_767_225_600_000_000),
        (MICROS, "long", 1_767_225_600_000_000),
        (DATE, "int", 20_454),
        ({"type": "int", "logicalType": "date"}, ["null", DATE], 20_454),
        (_decimal(2, precision=5), _decimal(2, precision=9), b"\x30\x39"),
    ],
    ids=["same logical type", "none written", "none read", "date as its int", "into a union", "wider precision"],
)
def test_logical_types_that_mean_the_same_or_are_declared_on_one_side_resolve(
    registry: str, written: Any, read: Any, value: Any
) -> None:
    """A side without a logical type reads or writes the number as it is (as the JSON converter sends it); a
    decimal's precision is checked per value by the model (its digits), not refused for the schema."""
    batch = _at_written_and_read(registry, written, read, value)
    assert [letter.detail for letter in batch.dead_letters] == []
    (row,) = batch.rows()
    assert row["id"] == 1
