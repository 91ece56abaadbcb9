"""Datagen connector configs as sources: quickstarts land, arg.properties, wire format, config errors."""

from __future__ import annotations

import base64
import io
import json
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from shared.datagen.config import QUICKSTARTS, DatagenConfigError, load_quickstart, parse_config, quickstart_config
from shared.datagen.regex_gen import RegexError, parse_regex
from shared.datagen.regex_gen import generate as regex_generate
from shared.datagen.source import config_source, load_config_sources
from shared.generator_ticks import generate_messages, needs_progress
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.settings import load_source_settings
from shared.source_model import Source, record_validator
from shared.sources import CONFIG_SOURCES, SOURCES
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, OutputBinding, context_for

DATAGEN_CLASS = "io.confluent.kafka.connect.datagen.DatagenConnector"


def schema_source(fields: list[dict[str, Any]], *, keyfield: str = "", **config: Any) -> Source:
    """A config source from an inline schema.string (the way users bring their own schemas)."""
    schema = {"type": "record", "name": "test", "fields": fields}
    options = {"connector.class": DATAGEN_CLASS, "kafka.topic": "test", "schema.string": json.dumps(schema)}
    if keyfield:
        options["schema.keyfield"] = keyfield
    options.update(config)
    return config_source(parse_config({"name": "t", "config": options}, source="test", file="t.json", folder=Path(".")))


def values(source: Source, count: int, *, start_index: int = 0, seed: int = 1) -> list[dict[str, Any]]:
    messages = generate_messages(source, count, now=FIXED_NOW, seed=seed, start_index=start_index)
    return [json.loads(m.value) for m in messages]


def field(name: str, avro_type: Any, **props: Any) -> dict[str, Any]:
    if props:
        avro_type = {"type": avro_type, "arg.properties": props} if isinstance(avro_type, str) else avro_type
    return {"name": name, "type": avro_type}


# --- every quickstart lands through its own processing path without a dead letter -------------------


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


@pytest.mark.parametrize("quickstart", ["clickstream", "users"])
def test_generated_records_validate_against_datagens_avro_schema(quickstart: str) -> None:
    parsed = fastavro.parse_schema(load_quickstart(quickstart))
    source = config_source(quickstart_config(quickstart, seed=2))
    records = values(source, 200)
    for record in records:
        assert fastavro.validate(record, parsed)
    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed, records)  # and they encode as Avro
    assert len(list(fastavro.reader(io.BytesIO(buffer.getvalue())))) == 200


def test_quickstart_wire_format_field_order_and_keys() -> None:
    clickstream = config_source(quickstart_config("clickstream", seed=1))
    message = generate_messages(clickstream, 1, now=FIXED_NOW, seed=1, start_index=0)[0]
    record = json.loads(message.value)
    assert list(record) == [
        "ip",
        "userid",
        "remote_user",
        "time",
        "_time",
        "request",
        "status",
        "bytes",
        "referrer",
        "agent",
    ]
    assert message.key == record["ip"]  # Datagen's clickstream keyfield
    assert (record["time"], record["_time"]) == ("1", 1)  # iteration on a string and a long
    assert isinstance(record["userid"], int) and isinstance(record["status"], str)
    orders = config_source(quickstart_config("orders"))
    order = json.loads(generate_messages(orders, 1, now=FIXED_NOW, seed=1, start_index=0)[0].value)
    assert list(order["address"]) == ["city", "state", "zipcode"]  # nested records stay objects on the wire


def test_shipped_orders_config_is_a_registered_source_with_its_defaults() -> None:
    assert "orders" in SOURCES and SOURCES["orders"] in CONFIG_SOURCES
    orders = load_source_settings("orders", {})
    assert (orders.topic, orders.consumer_group, orders.state_enabled) == ("orders", "orders-processor", False)
    assert orders.generator_events_per_tick == 20  # max.interval 1000 ms: 2 records/s, 20 per 10 s tick
    assert orders.generator_iterations == 10_000_000
    columns = SOURCES["orders"].column_names
    assert columns == [
        "ordertime",
        "orderid",
        "itemid",
        "orderunits",
        "address_city",
        "address_state",
        "address_zipcode",
    ]


# --- arg.properties, one annotation at a time --------------------------------------------------------


def test_options_pick_only_listed_values_for_any_type() -> None:
    source = schema_source(
        [
            field("s", "string", options=["a", "b"]),
            field("i", "int", options=[1, 2, 3]),
            {"name": "arr", "type": {"type": "array", "items": "string", "arg.properties": {"options": [["x"], []]}}},
        ]
    )
    seen = values(source, 200)
    assert {r["s"] for r in seen} == {"a", "b"}
    assert {r["i"] for r in seen} == {1, 2, 3}
    assert {tuple(r["arr"]) for r in seen} == {("x",), ()}


def test_range_is_min_inclusive_max_exclusive() -> None:
    source = schema_source(
        [
            field("i", "int", range={"min": 3, "max": 6}),
            field("l", "long", range={"min": -2, "max": 0}),
            field("d", "double", range={"min": 0.5, "max": 0.75}),
            field("f", "float", range={"min": 1, "max": 2}),
        ]
    )
    seen = values(source, 400)
    assert {r["i"] for r in seen} == {3, 4, 5}
    assert {r["l"] for r in seen} == {-2, -1}
    assert all(0.5 <= r["d"] < 0.75 and 1 <= r["f"] < 2 for r in seen)


def test_iteration_start_step_restart_initial_and_continuation() -> None:
    source = schema_source(
        [
            field("plain", "long", iteration={"start": 5}),
            field("stepped", "int", iteration={"start": 0, "step": 10}),
            field("wrapped", "int", iteration={"start": 1, "restart": 4}),
            field("down", "int", iteration={"start": 10, "restart": 7}),
            field("initial", "int", iteration={"start": 0, "restart": 3, "initial": 2}),
            field("real", "double", iteration={"start": 0.5, "step": 0.25}),
            field("text", "string", iteration={"start": 1, "step": 10}),
            field("flag", "boolean", iteration={"start": True}),
        ]
    )
    first = values(source, 4)
    assert [r["plain"] for r in first] == [5, 6, 7, 8]
    assert [r["stepped"] for r in first] == [0, 10, 20, 30]
    assert [r["wrapped"] for r in first] == [1, 2, 3, 1]
    assert [r["down"] for r in first] == [10, 9, 8, 10]
    assert [r["initial"] for r in first] == [2, 0, 1, 2]
    assert [r["real"] for r in first] == [0.5, 0.75, 1.0, 1.25]
    assert [r["text"] for r in first] == ["1", "11", "21", "31"]
    assert [r["flag"] for r in first] == [True, False, True, False]
    near_the_top = schema_source([field("n", "int", iteration={"start": 2**31 - 2})])
    assert [r["n"] for r in values(near_the_top, 3)] == [2**31 - 2, 2**31 - 1, -(2**31)]  # wraps like Java's int
    # The next tick continues where the last one stopped (the generator passes the absolute index).
    assert [r["plain"] for r in values(source, 2, start_index=4)] == [9, 10]
    assert needs_progress(load_source_settings("test", {}), source)


def test_regex_strings_match_their_pattern() -> None:
    source = schema_source(
        [
            field("item", "string", regex="Item_[1-9][0-9]{0,2}"),
            field("user", "string", regex="User_[1-9]{0,1}"),
            field("code", "string", regex=r"(?:AB|CD)-\d{3}[^a-z]?x*"),
        ]
    )
    for record in values(source, 300):
        assert re.fullmatch("Item_[1-9][0-9]{0,2}", record["item"])
        assert re.fullmatch("User_[1-9]{0,1}", record["user"])
        assert re.fullmatch(r"(?:AB|CD)-\d{3}[^a-z]?x*", record["code"])


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-zA-Z]{5,15}",
        r"\w+@\w+\.com",
        r"(a|b|c)+",
        r"[0-9a-f]{8}-[0-9a-f]{4}",
        r"^x.y$",
        r"[-+]?\d*\.?\d+",
        r"a{2,}",
    ],
)
def test_regex_generator_covers_the_subset(pattern: str) -> None:
    rnd = random.Random(4)
    tree = parse_regex(pattern)
    for _ in range(200):
        assert re.fullmatch(pattern, regex_generate(tree, rnd))


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"(a)\1", "(ab", "[z-a]", "*a"])
def test_unsupported_regex_is_refused(pattern: str) -> None:
    with pytest.raises(RegexError):
        parse_regex(pattern)


def test_length_of_strings_arrays_and_maps_and_map_keys() -> None:
    source = schema_source(
        [
            field("fixed_len", "string", length=4),
            field("ranged", "string", length={"min": 2, "max": 4}),
            {"name": "items", "type": {"type": "array", "items": "int", "arg.properties": {"length": 3}}},
            {
                "name": "tags",
                "type": {
                    "type": "map",
                    "values": {"type": "long", "arg.properties": {"range": {"min": 0, "max": 2}}},
                    "arg.properties": {"length": {"min": 1, "max": 3}, "keys": {"options": ["k1", "k2", "k3"]}},
                },
            },
            field("prefixed", "string", regex="[0-9]{2}", prefix="id-", suffix="!"),
        ]
    )
    for record in values(source, 200):
        assert len(record["fixed_len"]) == 4 and 2 <= len(record["ranged"]) < 4
        assert len(record["items"]) == 3 and all(isinstance(v, int) for v in record["items"])
        assert 1 <= len(record["tags"]) < 3 and set(record["tags"]) <= {"k1", "k2", "k3"}
        assert set(record["tags"].values()) <= {0, 1}
        assert re.fullmatch(r"id-[0-9]{2}!", record["prefixed"])


def test_odds_set_the_share_of_true() -> None:
    source = schema_source(
        [field("never", "boolean", odds=0.0), field("always", "boolean", odds=1.0), field("some", "boolean", odds=0.2)]
    )
    seen = values(source, 2000)
    assert not any(r["never"] for r in seen) and all(r["always"] for r in seen)
    assert 0.15 < sum(r["some"] for r in seen) / len(seen) < 0.25


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


# --- the wire model ------------------------------------------------------------------------------------


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
        ]
    )
    good = {"i": 1, "l": 2, "d": 1.5, "b": True, "e": "RED", "n": {"x": "y"}, "m": {"k": "v"}, "s": "t", "o": None}
    assert record_validator(source.model).validate_python(good)["o"] is None
    with pytest.raises(ValidationError) as failure:
        record_validator(source.model).validate_json(json.dumps(good | change))
    assert problem in str(failure.value)


def test_unkeyed_config_sends_null_keys_and_same_seed_same_sequence() -> None:
    source = schema_source([field("v", "int", range={"min": 0, "max": 1000})])
    first = generate_messages(source, 50, now=FIXED_NOW, seed=9, start_index=0)
    assert all(m.key is None for m in first)
    assert first == generate_messages(source, 50, now=FIXED_NOW, seed=9, start_index=0)
    assert first != generate_messages(source, 50, now=FIXED_NOW, seed=10, start_index=0)


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


# --- configs with errors fail with the file and the option --------------------------------------------


def _write(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def _config(**options: Any) -> dict[str, Any]:
    base = {"connector.class": DATAGEN_CLASS, "kafka.topic": "things", "quickstart": "orders"}
    return {"name": "datagen-things", "config": {k: v for k, v in (base | options).items() if v is not None}}


@pytest.mark.parametrize(
    ("file", "document", "option", "message"),
    [
        ("things.json", _config(**{"max.intervall": "10"}), "config.max.intervall", "unknown option"),
        ("things.json", _config(**{"schema.string": '{"type":"record"}'}), "config.schema.string", "conflicts with"),
        ("things.json", _config(quickstart=None), "config.quickstart", "is required"),
        ("things.json", _config(quickstart="order"), "config.quickstart", "unknown quickstart 'order'"),
        ("things.json", _config(**{"schema.keyfield": "nope"}), "config.schema.keyfield", "not a field"),
        ("things.json", _config(**{"schema.keyfield": "address"}), "config.schema.keyfield", "primitive"),
        ("things.json", _config(**{"connector.class": "FileStreamSource"}), "config.connector.class", "must be"),
        (
            "things.json",
            _config(**{"value.converter": "io.confluent.connect.avro.AvroConverter"}),
            "config.value.converter.schema.registry.url",
            "needs the schema registry",
        ),
        (
            "things.json",
            _config(**{"value.converter": "io.confluent.connect.protobuf.ProtobufConverter"}),
            "config.value.converter",
            "AvroConverter",
        ),
        (
            "things.json",
            _config(
                **{
                    "value.converter": "io.confluent.connect.avro.AvroConverter",
                    "value.converter.schema.registry.url": "https://psrc.example.confluent.cloud",
                    "value.converter.schema.registry.basic.auth.user.info": "KEY:SECRET",
                }
            ),
            "config.value.converter.schema.registry.basic.auth.user.info",
            "SCHEMA_REGISTRY_PASSWORD",
        ),
        (
            "things.json",
            _config(**{"value.converter.schema.registry.url": "http://localhost:8081"}),
            "config.value.converter.schema.registry.url",
            "value converter is JSON",
        ),
        ("things.json", _config(**{"value.converter.schemas.enable": "true"}), "config.value.converter.schemas", ""),
        ("things.json", _config(**{"tasks.max": "0"}), "config.tasks.max", "at least 1"),
        ("things.json", _config(iterations="many"), "config.iterations", "whole number"),
        ("things.json", _config(**{"kafka.topic": "bad topic"}), "config.kafka.topic", "not a usable topic"),
        ("things.json", _config(name="other"), "config.name", "conflicts"),
        ("things.json", {"config": {}}, "name", "missing"),
        ("things.json", {"name": "x", "config": {}, "tasks": []}, "tasks", "unknown top-level key"),
        ("things.json", "{not json", "<document>", "not JSON"),
        ("Things.json", _config(), "file name", "lowercase"),
        (
            "things.json",
            _config(quickstart=None, **{"schema.filename": "../secret.avsc"}),
            "config.schema.filename",
            "inside",
        ),
        (
            "things.json",
            _config(quickstart=None, **{"schema.filename": "gone.avsc"}),
            "config.schema.filename",
            "exist",
        ),
        (
            "things.json",
            _config(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", regex="[0-9]")]}
                    )
                },
            ),
            "config.schema.string",
            "n: arg.properties.regex is not supported on int",
        ),
        (
            "things.json",
            _config(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", range={"min": 5, "max": 5})]}
                    )
                },
            ),
            "config.schema.string",
            "min must be below max",
        ),
        (
            "things.json",
            _config(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", options=["one"])]}
                    )
                },
            ),
            "schema",
            "n arg.properties.options[0]",
        ),
        (
            "things.json",
            _config(
                quickstart=None,
                **{"schema.string": json.dumps({"type": "record", "name": "r", "fields": [field("_key", "int")]})},
            ),
            "schema",
            "lineage column",
        ),
    ],
)
def test_bad_configs_fail_naming_the_file_and_the_option(
    tmp_path: Path, file: str, document: Any, option: str, message: str
) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    _write(folder, file, document)
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith(f"sources/{file}: {option}"), text
    assert message in text, text


def test_a_config_may_not_take_a_hand_written_sources_name_or_topic(tmp_path: Path) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    hand_written = [SOURCES["clickstream"], SOURCES["users"]]
    _write(folder, "users.json", _config())
    with pytest.raises(DatagenConfigError, match=r"sources/users.json: file name: source 'users' is already"):
        load_config_sources(folder, hand_written)
    (folder / "users.json").unlink()
    _write(folder, "clicks.json", _config(**{"kafka.topic": "clickstream"}))
    with pytest.raises(DatagenConfigError, match=r"config.kafka.topic: 'clickstream' is already the topic"):
        load_config_sources(folder, hand_written)


def test_schema_filename_is_read_from_the_configs_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    _write(folder, "mine.avsc", {"type": "record", "name": "mine", "fields": [field("n", "int", range={"max": 3})]})
    _write(folder, "mine.json", _config(quickstart=None, **{"schema.filename": "mine.avsc", "kafka.topic": "mine"}))
    (source,) = load_config_sources(folder, [])
    assert source.name == "mine" and source.setting_defaults["topic"] == "mine"
    assert all(r["n"] < 3 for r in values(source, 50))


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


def test_datagen_cli_prints_keyed_records(capsys: pytest.CaptureFixture[str]) -> None:
    from tools import datagen

    assert datagen.main(["--config", "sources/orders.json", "--count", "3", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for number, line in enumerate(lines):
        key, value = line.split("\t")
        assert json.loads(value)["orderid"] == number and key == str(number)
    assert datagen.main(["--quickstart", "clickstream_codes", "--count", "2"]) == 0
    assert all(
        json.loads(line.split("\t")[1])["code"] in (200, 302, 404, 405, 406, 407)
        for line in capsys.readouterr().out.splitlines()
    )


def test_datagen_cli_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools import datagen

    bad = _write(tmp_path, "bad.json", _config(**{"random.seeds": 1}))
    assert datagen.main(["--config", str(bad)]) == 2
    assert "config.random.seeds: unknown option" in capsys.readouterr().err


def test_generator_function_of_a_config_source_continues_iteration_and_stops_at_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate_orders through the function glue: orderid counts on across ticks; the total holds."""

    from functions import bindings
    from shared import settings as settings_module
    from tests.conftest import app_functions

    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("ORDERS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("ORDERS_GENERATOR_ITERATIONS", "10")
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    try:
        generate = app_functions()["generate_orders"].get_user_function()
        ticks = []
        for _ in range(3):
            out = OutputBinding()
            generate(timer=None, out=out, context=SimpleNamespace(retry_context=None))
            ticks.append(json.loads(out.value) if out.value else [])
    finally:
        for cached in caches:
            cached.cache_clear()
    order_ids = [[json.loads(item["Value"])["orderid"] for item in tick] for tick in ticks]
    assert order_ids == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9], []]
    assert [item["Key"] for item in ticks[1]] == ["7", "8", "9"]
