"""Datagen configs as sources: every quickstart lands, rates and seeds follow the config, names and topics
stay unique."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.datagen.config import QUICKSTARTS, DatagenConfigError, quickstart_config
from shared.datagen.source import config_source, load_config_sources
from shared.generator_ticks import generate_messages
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, context_for
from tests.unit.shared.datagen.conftest import config_document, field, schema_source, write_config


@pytest.mark.parametrize("quickstart", sorted(QUICKSTARTS))
def test_every_quickstart_lands_with_no_dead_letter(quickstart: str, tmp_path: Path) -> None:
    source = config_source(quickstart_config(quickstart, seed=11))
    messages = generate_messages(source, 300, now=FIXED_NOW, seed=11, start_index=0)
    records = [
        KafkaRecord(source.name, 0, offset, m.key, m.value.encode(), FIXED_NOW_MS) for offset, m in enumerate(messages)
    ]
    outcome = handle_batch(context_for(source, LocalLake(tmp_path), now_ms=FIXED_NOW_MS), records)
    assert (outcome.landed, outcome.dead_letters) == (300, 0)
    assert list(tmp_path.glob(f"raw/{source.name}/date=*/hour=*/*.parquet"))
    assert not list(tmp_path.glob("deadletter/**/*"))


@pytest.mark.parametrize(
    ("config", "per_tick", "iterations", "seed"),
    [
        ({}, 40, 0, None),  # Datagen's defaults: max.interval 500 ms, iterations -1
        ({"max.interval": "100", "tasks.max": "2"}, 400, 0, None),
        ({"max.interval": 0, "iterations": 50, "tasks.max": "3", "random.seed": "42"}, 100_000, 150, 42),
        ({"max.interval": "1000000"}, 1, 0, None),
    ],
)
def test_rate_total_and_seed_follow_the_config(
    config: dict[str, Any], per_tick: int, iterations: int, seed: int | None
) -> None:
    source = schema_source([field("v", "int")], **config)
    defaults = source.setting_defaults
    assert int(defaults["generator_events_per_tick"]) == per_tick
    assert int(defaults["generator_iterations"]) == iterations
    assert defaults.get("generator_seed") == (None if seed is None else str(seed))


def test_a_config_may_not_take_a_hand_written_sources_name_or_topic(tmp_path: Path) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    hand_written = [SOURCES["clickstream"], SOURCES["users"]]
    write_config(folder, "users.json", config_document())
    with pytest.raises(DatagenConfigError, match=r"sources/users.json: file name: source 'users' is already"):
        load_config_sources(folder, hand_written)
    (folder / "users.json").unlink()
    write_config(folder, "clicks.json", config_document(**{"kafka.topic": "clickstream"}))
    with pytest.raises(DatagenConfigError, match=r"config.kafka.topic: 'clickstream' is already the topic"):
        load_config_sources(folder, hand_written)


def _record_source(schema: dict[str, Any]) -> Any:
    import json

    from shared.datagen.config import parse_config
    from tests.unit.shared.datagen.conftest import DATAGEN_CLASS

    options = {"connector.class": DATAGEN_CLASS, "kafka.topic": "test", "schema.string": json.dumps(schema)}
    return config_source(parse_config({"name": "t", "config": options}, source="test", file="t.json", folder=Path(".")))


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (  # written as 0 (1 byte), sent as 0.0: 480,000 of them made 1.9 MB records
            {
                "type": "record",
                "name": "r",
                "fields": [
                    {
                        "name": "xs",
                        "type": {
                            "type": "array",
                            "items": {"type": "double", "arg.properties": {"options": [0]}},
                            "arg.properties": {"length": 480_000},
                        },
                    }
                ],
            },
            "xs[] arg.properties: options",
        ),
        (  # a record option sent with its fields' defaults: 1.1 MB of "pad" in every record
            {
                "type": "record",
                "name": "r",
                "fields": [
                    {"name": "id", "type": "string", "arg.properties": {"regex": "[a-z]{5}"}},
                    {"name": "pad", "type": "string", "default": "x" * 1_100_000},
                ],
                "arg.properties": {"options": [{"id": "a"}, {"id": "b"}]},
            },
            "arg.properties: options",
        ),
    ],
    ids=["int options on a double", "a record option's defaults"],
)
def test_options_larger_as_sent_than_as_written_are_sized_as_sent(schema: dict[str, Any], where: str) -> None:
    """Sized as written, such a config was taken at indexing and each record was too large to send: every tick
    failed with RecordTooLarge, retried for ever (a review's reproduction against a real broker)."""
    with pytest.raises(DatagenConfigError, match="lets a record reach") as refused:
        _record_source(schema)
    assert f"schema: {where} lets a record reach" in str(refused.value)


AVRO = {
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": "http://127.0.0.1:8081",
}


def _zeros(length: int) -> list[dict[str, Any]]:
    """An array of doubles sent as ``0.0``: 3 bytes of JSON (and a comma), 8 of Avro each."""
    items = {"type": "double", "arg.properties": {"options": [0.0]}}
    return [field("v", {"type": "array", "items": items, "arg.properties": {"length": length}})]


def test_options_larger_in_avro_than_as_json_are_sized_as_avro() -> None:
    """A review's reproduction: 240,000 doubles of ``0.0`` are 960,007 bytes of JSON, under the bound, and 1,920,009
    on the Avro wire: taken at indexing, every tick failed with RecordTooLarge at the broker, retried for ever."""
    assert schema_source(_zeros(240_000)).name == "test"  # as JSON it is sent whole
    refused = r"v\[\] arg.properties: options lets a record reach 2,160,0\d\d bytes as JSON or Avro"
    with pytest.raises(DatagenConfigError, match=refused):
        schema_source(_zeros(240_000), **AVRO)
    assert schema_source(_zeros(100_000), **AVRO).name == "test"


@pytest.mark.parametrize(
    "avro_type",
    [
        ["null", "int"],
        ["null", {"type": "enum", "name": "e", "symbols": ["A", "B"]}],
        {"type": "array", "items": ["null", "boolean"]},
        {"type": "map", "values": "float"},
        {"type": "record", "name": "r", "fields": [{"name": "d", "type": "double"}, {"name": "s", "type": "string"}]},
    ],
)
def test_an_options_avro_bound_is_at_least_its_avro_body(avro_type: Any) -> None:
    from shared.datagen.avro import avro_bytes, parse_schema
    from shared.schema_registry.avro_binary import encode, parse_writer_schema

    options = {
        "int": [None, 0, -(2**31)],
        "enum": [None, "A"],
        "array": [[None, True, None]],
        "map": [{"k": 0.0, "": 1.5}],
        "record": [{"d": 0.0, "s": "é"}],
    }
    kind = next(key for key in options if key in json.dumps(avro_type))
    schema = {"type": "record", "name": "t", "fields": [{"name": "f", "type": avro_type}]}
    parsed = parse_writer_schema(json.dumps(schema))
    node = parse_schema(schema).fields[0].type
    for option in options[kind]:
        assert avro_bytes(node, option) >= len(encode(parsed, {"f": option}))
