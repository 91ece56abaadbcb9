"""The Avro codec: records round-trip in the JSON converter's form; broken bodies are not Avro."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from shared.datagen.config import QUICKSTARTS, quickstart_config
from shared.datagen.source import config_source
from shared.schema_registry.avro_binary import BadSchema, decode, encode, parse_writer_schema, recursive_type
from shared.schema_registry.wire import NotAvro
from tests.unit.shared.schema_registry.conftest import generated


@pytest.mark.parametrize("quickstart", sorted(QUICKSTARTS))
def test_every_quickstart_record_survives_avro_binary_as_the_json_converter_sends_it(quickstart: str) -> None:
    """Bytes travel as base64, logical types as numbers, unions plain: Avro decodes to exactly the JSON form."""
    source = config_source(quickstart_config(quickstart, seed=3))
    schema = quickstart_config(quickstart).schema_json
    parsed = parse_writer_schema(json.dumps(schema))
    for _, text in generated(source, 25):
        record = orjson.loads(text)
        assert decode(parsed, encode(schema, parsed, record)) == record


def test_truncated_and_overlong_bodies_are_not_avro() -> None:
    schema = quickstart_config("orders").schema_json
    parsed = parse_writer_schema(json.dumps(schema))
    (_, text), *_ = generated(config_source(quickstart_config("orders")), 1)
    body = encode(schema, parsed, orjson.loads(text))
    with pytest.raises(NotAvro, match="does not decode"):
        decode(parsed, body[: len(body) // 2])
    with pytest.raises(NotAvro, match="2 bytes left"):
        decode(parsed, body + b"\x00\x00")


@pytest.mark.parametrize(
    ("schema", "found"),
    [
        ({"type": "record", "name": "N", "fields": [{"name": "next", "type": ["null", "N"]}]}, "N"),
        (
            {"type": "record", "name": "a.N", "fields": [{"name": "kids", "type": {"type": "array", "items": "a.N"}}]},
            "a.N",
        ),
        (
            {
                "type": "record",
                "name": "A",
                "namespace": "x",
                "fields": [
                    {"name": "b", "type": {"type": "record", "name": "B", "fields": [{"name": "a", "type": "A"}]}}
                ],
            },
            "x.A",
        ),
        ({"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "M"}}]}, "M"),
    ],
)
def test_a_named_type_inside_itself_is_found(schema: dict[str, Any], found: str) -> None:
    assert recursive_type(schema) == found
    with pytest.raises(BadSchema, match="recursive"):
        parse_writer_schema(json.dumps(schema))


def test_a_named_type_used_twice_side_by_side_is_not_recursive() -> None:
    point = {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "int"}]}
    schema = {
        "type": "record",
        "name": "Line",
        "fields": [{"name": "a", "type": point}, {"name": "b", "type": "Point"}],
    }
    assert recursive_type(schema) is None
    parse_writer_schema(json.dumps(schema))
