"""The model built from an Avro schema: Avro's types enforced; nested, logical and map types transformed
and landed in every format."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.batch import process_batch
from shared.datagen.config import quickstart_config
from shared.datagen.source import config_source
from shared.generator_ticks import generate_messages
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.source_model import record_validator
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, context_for, datagen_source
from tests.unit.shared.datagen.conftest import field, schema_source


def test_nested_records_arrays_of_records_unions_enums_and_logical_types_land() -> None:
    source = schema_source(
        [
            field("id", "long", iteration={"start": 1}),
            {
                "name": "who",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "person",
                        "fields": [
                            field("name", "string", options=["ann"]),
                            field("age", "int", range={"min": 1, "max": 9}),
                        ],
                    },
                ],
            },
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "arg.properties": {"length": 2},
                    "items": {"type": "record", "name": "line", "fields": [field("sku", "string", regex="S[0-9]")]},
                },
            },
            {"name": "either", "type": ["int", "string"]},
            {"name": "colour", "type": {"type": "enum", "name": "colour", "symbols": ["RED", "GREEN"]}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
            {
                "name": "price",
                "type": {
                    "type": "bytes",
                    "logicalType": "decimal",
                    "precision": 5,
                    "scale": 2,
                    "arg.properties": {"range": {"min": 1, "max": 2}},
                },
            },
            {"name": "props", "type": {"type": "map", "values": "string", "arg.properties": {"length": 1}}},
            {
                "name": "amount",
                "type": {
                    "type": "fixed",
                    "name": "amount",
                    "size": 4,
                    "logicalType": "decimal",
                    "precision": 6,
                    "scale": 1,
                },
            },
        ],
        keyfield="id",
    )
    messages = generate_messages(source, 100, now=FIXED_NOW, seed=3, start_index=0)
    validate = record_validator(source.model).validate_json
    whos = set()
    for message in messages:
        record = json.loads(message.value)
        assert message.key == str(record["id"])
        assert record["who"] is None or set(record["who"]) == {"name", "age"}  # the union is the plain value
        row = source.transform(validate(message.value))
        assert set(row) == set(source.column_names)
        whos.add(row["who_name"])
        assert row["at"] == FIXED_NOW_MS and row["day"] == "2026-11-24"
        assert 1.0 <= row["price"] < 2.0
        assert len(json.loads(row["lines"])) == 2 and isinstance(row["props"], dict)
        assert row["colour"] in ("RED", "GREEN")
        assert len(base64.b64decode(record["amount"])) == 4 and -100_000 < row["amount"] < 100_000
    assert whos == {None, "ann"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"i": "1"}, "i"),  # an int is a JSON number, not text
        ({"i": 2**31}, "i"),  # beyond Avro's int
        ({"l": 2**63}, "l"),
        ({"d": "NaN"}, "d"),
        ({"b": 1}, "b"),
        ({"e": "BLUE"}, "e"),
        ({"n": {"x": 1}}, "n.x"),
        ({"m": {"k": 1}}, "m.k"),
        ({"s": None}, "s"),
        ({"t": 86_400_000}, "t"),  # time-millis is milliseconds after midnight
        ({"t": -1}, "t"),
        ({"dec": base64.b64encode((10**4).to_bytes(2, "big")).decode()}, "dec"),  # 5 digits in precision 4
        ({"dec": base64.b64encode(b"\x7f" + bytes(200)).decode()}, "dec"),  # a double would land it as infinity
    ],
)
def test_model_enforces_avro_types(change: dict[str, Any], problem: str) -> None:
    source = schema_source(
        [
            field("i", "int"),
            field("l", "long"),
            field("d", "double"),
            field("b", "boolean"),
            {"name": "e", "type": {"type": "enum", "name": "e", "symbols": ["RED"]}},
            {"name": "n", "type": {"type": "record", "name": "n", "fields": [field("x", "string")]}},
            {"name": "m", "type": {"type": "map", "values": "string"}},
            field("s", "string"),
            {"name": "o", "type": ["null", "string"]},
            {"name": "t", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
        ]
    )
    good = {"i": 1, "l": 2, "d": 1.5, "b": True, "e": "RED", "n": {"x": "y"}, "m": {"k": "v"}, "s": "t", "o": None}
    good |= {"t": 86_399_999, "dec": base64.b64encode((-9999).to_bytes(2, "big", signed=True)).decode()}
    assert record_validator(source.model).validate_python(good)["o"] is None
    with pytest.raises(ValidationError) as failure:
        record_validator(source.model).validate_json(json.dumps(good | change))
    assert problem in str(failure.value)


@pytest.mark.parametrize("fmt", ["avro", "jsonl"])
@pytest.mark.parametrize("quickstart", ["users_", "purchases", "orders"])
def test_maps_json_columns_and_decimals_land_in_every_format(quickstart: str, fmt: str, tmp_path: Path) -> None:
    from shared import formats

    source = config_source(quickstart_config(quickstart, seed=4))
    messages = generate_messages(source, 50, now=FIXED_NOW, seed=4, start_index=0)
    records = [KafkaRecord(source.name, 0, i, m.key, m.value.encode(), FIXED_NOW_MS) for i, m in enumerate(messages)]
    outcome = handle_batch(
        context_for(source, LocalLake(tmp_path), settings={f"{source.name.upper()}_FORMAT": fmt}, now_ms=FIXED_NOW_MS),
        records,
    )
    assert (outcome.landed, outcome.dead_letters) == (50, 0)
    (path,) = outcome.files
    rows = formats.decode(fmt, (tmp_path / path).read_bytes())
    assert [row["_offset"] for row in rows] == list(range(50))
    assert set(rows[0]) >= set(source.column_names)


def test_a_record_sent_before_a_field_was_added_or_renamed_reads_its_default_and_old_name() -> None:
    """The schema's ``default`` fills a field the record lacks, and its ``aliases`` read a record that still
    uses an earlier name: on the JSON path (and reprocess, which validates _received as JSON) as Avro would."""
    source = schema_source(
        [
            field("id", "long"),
            {"name": "title", "type": "string", "aliases": ["name"]},
            {"name": "qty", "type": "int", "default": 3},
            {"name": "tag", "type": "bytes", "default": "\u00ff"},
        ]
    )
    older = KafkaRecord("test", 0, 0, "k", b'{"id": 1, "name": "a"}', FIXED_NOW_MS)
    today = KafkaRecord("test", 0, 1, "k", b'{"id": 2, "title": "b", "qty": 9, "tag": "AA=="}', FIXED_NOW_MS)
    for columnar in (False, True):
        batch = process_batch(source, [older, today], max_record_bytes=1 << 20, columnar=columnar)
        assert not batch.dead_letters
        rows = [(row["title"], row["qty"], row["tag"], row["_extra"]) for row in batch.rows()]
        assert rows == [("a", 3, base64.b64encode(b"\xff").decode(), None), ("b", 9, "AA==", None)]


@pytest.mark.parametrize("logical", [{}, {"logicalType": "decimal", "precision": 6, "scale": 1}])
def test_a_fixed_holds_exactly_its_size(logical: dict[str, Any]) -> None:
    """A fixed took any base64 text: 4 bytes landed in a fixed of 8 (a JSON record, or an Avro one of another
    fixed validated as sent). Its decoded length is its size; the error names the size."""
    source = schema_source(
        [field("id", "long"), {"name": "h", "type": {"type": "fixed", "name": "h", "size": 8} | logical}]
    )
    validate = record_validator(source.model).validate_python
    eight = base64.b64encode(bytes(7) + b"\x01").decode()
    assert validate({"id": 1, "h": eight})["h"] == eight
    for wrong in (b"abcd", bytes(9), b""):
        with pytest.raises(ValidationError) as failure:
            validate({"id": 1, "h": base64.b64encode(wrong).decode()})
        assert "h" in str(failure.value) and "fixed of size 8" in str(failure.value), failure.value


@pytest.mark.parametrize("sent", [2**53 + 1, 2**63 - 1, -(2**63), 7, 1.5, 1.0])
def test_a_value_of_a_long_or_double_union_lands_unchanged(sent: int | float) -> None:
    """A double cannot hold every long (2**53 + 1 would land as 2**53): a ``["long", "double"]`` union lands
    as JSON text, as multi-type unions do, which keeps the value and whether it was sent as a long."""
    source = datagen_source("readings_union", {"type": "record", "name": "reading", "fields": [_n(["long", "double"])]})
    record = KafkaRecord(source.name, 0, 0, None, json.dumps({"n": sent}).encode(), FIXED_NOW_MS)
    batch = process_batch(source, [record], max_record_bytes=1 << 20)
    assert batch.dead_letters == []
    (row,) = batch.rows()
    assert row["n"] == json.dumps(sent) and type(json.loads(row["n"])) is type(sent)


@pytest.mark.parametrize(
    ("branches", "column_type"),
    [
        (["int", "long"], "long"),
        (["null", "int", "long"], "long"),
        (["int", "double"], "double"),
        (["int", "float", "double"], "double"),
        (["long", "double"], "string"),
        (["null", "long", "float"], "string"),
        (["int", "long", "double"], "string"),
    ],
)
def test_a_numeric_union_lands_as_a_number_only_where_one_column_type_holds_all_its_values(
    branches: list[str], column_type: str
) -> None:
    source = datagen_source("numbers", {"type": "record", "name": "numbers", "fields": [_n(branches)]})
    (column,) = (column for column in source.columns if column.name == "n")
    assert column.type == column_type


def _n(branches: list[str]) -> dict[str, Any]:
    return {"name": "n", "type": branches}
