"""The Avro codec: records round-trip in the JSON converter's form; broken bodies are not Avro."""

from __future__ import annotations

import json

import orjson
import pytest

from shared.datagen.config import QUICKSTARTS, quickstart_config
from shared.datagen.source import config_source
from shared.schema_registry.avro_binary import decode, encode, parse_writer_schema
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
