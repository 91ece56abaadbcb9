"""Configs whose generator could make no record, or only records its own model refuses, fail when indexed,
naming the file and the option: the generator's timer retries a failing tick forever, so such a config
accepted at indexing is a crash loop. Behind the checks of each annotation, indexing generates a few trial
records with the configured generator and validates them as the processor would."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.datagen import avro
from shared.datagen.avro import MAX_DATE_DAYS, MIN_DATE_DAYS, MIN_TIMESTAMP_MS
from shared.datagen.config import DatagenConfigError, parse_config
from shared.datagen.source import config_source, load_config_sources
from shared.generator_ticks import generate_messages
from shared.source_model import MAX_TIMESTAMP_MS, record_validator
from tests.conftest import FIXED_NOW
from tests.unit.shared.datagen.conftest import DATAGEN_CLASS, write_config

NAN, INFINITY = float("nan"), float("inf")
SCHEMA = "config.schema.string"


def _record(field_type: Any, **field: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "a", "type": field_type, **field}]}


def _typed(kind: str, logical: str | None = None, **props: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": kind, "arg.properties": props}
    if logical:
        node["logicalType"] = logical
    return node


def _decimal(precision: int, scale: int, **props: Any) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale, "arg.properties": props}


def _nested_records(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "int"}
    for level in range(depth):
        node = {"type": "record", "name": f"Level{level}", "fields": [{"name": "inner", "type": node}]}
    return node


def _document(schema: Any, **options: Any) -> dict[str, Any]:
    config = {"connector.class": DATAGEN_CLASS, "kafka.topic": "hostile", "schema.string": json.dumps(schema)}
    return {"name": "datagen-hostile", "config": config | options}


# name: (schema, the option named, what the message says after it)
HOSTILE: dict[str, tuple[Any, str, str]] = {
    # an int range whose ends are not whole numbers: int() collapsed it to randrange(0, 0)
    "int range of fractions": (
        _record(_typed("int", range={"min": 0.5, "max": 0.9})),
        SCHEMA,
        "a arg.properties: range min and max of an int must be whole numbers",
    ),
    # min at the type's max + 1 (which only max may be): nothing left to draw
    "int range min past the type": (
        _record(_typed("int", range={"min": 2**31})),
        SCHEMA,
        "a arg.properties: range leaves nothing to draw: min 2,147,483,648 is not below max 2,147,483,648",
    ),
    "long range max past the type": (
        _record(_typed("long", range={"max": 2**63 + 1})),
        SCHEMA,
        "range draws from -9,223,372,036,854,775,808 to 9,223,372,036,854,775,809",
    ),
    "decimal range outside its precision": (
        _record(_decimal(2, 0, range={"min": 500, "max": 600})),
        SCHEMA,
        'range {"min": 500, "max": 600} leaves nothing to draw: a decimal of precision 2 and scale 0 holds -99 to 99',
    ),
    "decimal range of NaN": (_record(_decimal(4, 2, range={"min": NAN})), SCHEMA, "must be finite numbers"),
    "date range past year 9999": (
        _record(_typed("int", "date", range={"min": 3_000_000, "max": 3_000_010})),
        SCHEMA,
        "an int (date) holds -719,162 to 2,932,896 (years 1 to 9999)",
    ),
    # a missing max is the long's: most of what it draws is past year 9999
    "timestamp range without a max": (
        _record(_typed("long", "timestamp-millis", range={"min": 0})),
        SCHEMA,
        "a long (timestamp-millis) holds -62,135,596,800,000 to 253,402,300,799,999 (years 1 to 9999)",
    ),
    "timestamp-micros range past year 9999": (
        _record(_typed("long", "timestamp-micros", range={"min": 0, "max": 2**62})),
        SCHEMA,
        "a long (timestamp-micros) holds",
    ),
    "timestamp iteration starting past year 9999": (
        _record(_typed("long", "local-timestamp-millis", iteration={"start": 2**62})),
        SCHEMA,
        "iteration start 4,611,686,018,427,387,904 is outside what a long (local-timestamp-millis) holds",
    ),
    "int iteration of fractions": (
        _record(_typed("int", iteration={"start": 0.5})),
        SCHEMA,
        "iteration values of an int must be whole numbers",
    ),
    # Python's json (which reads sources/*.json) takes NaN and Infinity
    "double range of NaN": (_record(_typed("double", range={"min": NAN})), SCHEMA, "range min and max must be finite"),
    "double range to Infinity": (_record(_typed("double", range={"max": INFINITY})), SCHEMA, "must be finite"),
    "float range past a float": (
        _record(_typed("float", range={"min": 1e39, "max": 2e39})),
        SCHEMA,
        "a float holds -3.4028235e+38 to 3.4028235e+38",
    ),
    "double iteration overflowing after one step": (
        _record(_typed("double", iteration={"start": 1e308, "step": 1e308})),
        SCHEMA,
        "iteration can pass 1.7976931e+308, the largest double",
    ),
    "double iteration overflowing in time": (
        _record(_typed("double", iteration={"start": 0, "step": 1e290})),
        SCHEMA,
        "iteration can pass",
    ),
    "double iteration of NaN": (_record(_typed("double", iteration={"start": NAN})), SCHEMA, "must be finite"),
    "string iteration of a number no double holds": (
        _record(_typed("string", iteration={"start": 10**400})),
        SCHEMA,
        "iteration can pass",
    ),
    "uuid iteration": (
        _record(_typed("string", "uuid", iteration={"start": 1})),
        SCHEMA,
        "iteration makes numbers, not the UUIDs a uuid string holds",
    ),
    # a lone surrogate: json.loads takes "\ud800", but no record holding it can be sent
    "lone surrogate in options": (
        _record(_typed("string", options=["ok", "\ud800"])),
        SCHEMA,
        "a arg.properties: options[1] holds a lone surrogate '\\ud800', which is not text",
    ),
    "lone surrogate deep in a record option": (
        _record(
            {
                "type": "record",
                "name": "N",
                "fields": [{"name": "x", "type": "string"}],
                "arg.properties": {"options": [{"x": "\ud800"}]},
            }
        ),
        SCHEMA,
        "a arg.properties: options[0] holds a lone surrogate",
    ),
    "lone surrogate in prefix": (_record(_typed("string", prefix="\udfff")), SCHEMA, "prefix holds a lone surrogate"),
    "lone surrogate in regex": (_record(_typed("string", regex="a\ud800")), SCHEMA, "regex holds a lone surrogate"),
    "regex class spanning the surrogates": (
        _record(_typed("string", regex="[a-\U0001f600]{3}")),
        SCHEMA,
        "can make a lone surrogate",
    ),
    "regex code point of a surrogate": (
        _record(_typed("string", regex=r"\x{D800}")),
        SCHEMA,
        "can make a lone surrogate",
    ),
    "regex class ending in the surrogates": (
        _record(_typed("string", regex=r"[\x{0}-\x{7F}\x{D7FF}-\x{DC00}]")),
        SCHEMA,
        "can make a lone surrogate",
    ),
    "lone surrogate in map keys": (
        _record({"type": "map", "values": "int", "arg.properties": {"keys": {"options": ["\udc00"]}}}),
        SCHEMA,
        "a keys arg.properties: options[0] holds a lone surrogate",
    ),
    "lone surrogate in a default": (
        _record("string", default="\ud800"),
        SCHEMA,
        "fields[0].default holds a lone surrogate",
    ),
    "lone surrogate in a doc": ({**_record("int"), "doc": "\ud800"}, SCHEMA, "doc holds a lone surrogate"),
    # a decimal lands as a double: past 308 digits its values would land as infinity
    "decimal of precision 309": (
        _record(_decimal(309, 0)),
        SCHEMA,
        "a: decimal precision 309 is over 308: it lands as a double",
    ),
    # refused before 10**precision is ever computed, which would hang indexing
    "fixed decimal of precision 10**7": (
        _record({"type": "fixed", "name": "F", "size": 4, "logicalType": "decimal", "precision": 10**7}),
        SCHEMA,
        "decimal precision 10000000 is over 308",
    ),
    # Avro's time-millis is milliseconds after midnight
    "time-millis range past one day": (
        _record(_typed("int", "time-millis", range={"min": 0, "max": 2_000_000_000})),
        SCHEMA,
        "an int (time-millis) holds 0 to 86,399,999 (a time of day)",
    ),
    "time-micros iteration starting past one day": (
        _record(_typed("long", "time-micros", iteration={"start": 86_400_000_000})),
        SCHEMA,
        "iteration start 86,400,000,000 is outside what a long (time-micros) holds 0 to 86,399,999,999",
    ),
    # pydantic's model building recurses per level: ~150 levels of records overflowed the stack
    "records nested 200 deep": (
        _record(_nested_records(200)),
        SCHEMA,
        "the schema nests 604 levels of JSON deep, over 100",
    ),
    # a record sent without the field lands with its default: it must be one the model takes
    "timestamp default past year 9999": (
        _record({"type": "long", "logicalType": "timestamp-millis"}, default=2**62),
        "schema",
        "a default 4611686018427387904 is refused: Input should be less than or equal to 253402300799999",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_config_whose_generator_cannot_work_fails_at_indexing_naming_the_file_and_option(
    tmp_path: Path, name: str
) -> None:
    schema, option, message = HOSTILE[name]
    folder = tmp_path / "sources"
    folder.mkdir()
    write_config(folder, "hostile.json", _document(schema))
    with pytest.raises(DatagenConfigError, match=rf"^sources/hostile\.json: {re.escape(option)}: ") as failure:
        load_config_sources(folder, [])
    assert message in str(failure.value)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"schema.keyfield": "a\ud800"}, "config.schema.keyfield"),
        ({"kafka.topic": "t\udc00"}, "config.kafka.topic"),
        ({"max.interval": "\ud800"}, "config.max.interval"),
    ],
)
def test_a_lone_surrogate_in_an_option_is_refused_naming_it(options: dict[str, Any], option: str) -> None:
    """json.loads takes "\\ud800" anywhere in a config: refused by name, never a bare UnicodeEncodeError."""
    document = _document(_record("int"), **options)
    with pytest.raises(DatagenConfigError, match=rf"^sources/hostile\.json: {re.escape(option)}: holds a lone"):
        parse_config(document, source="hostile", file="sources/hostile.json", folder=Path("."))


def test_a_lone_surrogate_in_the_connector_name_is_refused_naming_it() -> None:
    document = _document(_record("int")) | {"name": "datagen-\ud800"}
    with pytest.raises(DatagenConfigError, match=r"^sources/hostile\.json: name: holds a lone surrogate"):
        parse_config(document, source="hostile", file="sources/hostile.json", folder=Path("."))


@pytest.mark.parametrize(("depth", "message"), [(900, "levels of JSON deep, over 100"), (5000, "not a JSON Avro")])
def test_options_nested_deep_are_refused_naming_the_option_not_with_a_recursion_error(depth: int, message: str) -> None:
    deep = "[" * depth + '"\\ud800"' + "]" * depth
    document = _document(_record(_typed("string", options=["placeholder"])))
    document["config"]["schema.string"] = document["config"]["schema.string"].replace('"placeholder"', deep)
    with pytest.raises(DatagenConfigError, match=r"^sources/hostile\.json: config\.schema\.string: ") as failure:
        parse_config(document, source="hostile", file="sources/hostile.json", folder=Path("."))
    assert message in str(failure.value)


# configs at the edges of what their types hold: accepted, and every record they make is valid
AT_THE_EDGES = {
    "int range of one value, the int's largest": _typed("int", range={"min": 2**31 - 1}),
    "long range of the whole long": _typed("long", range={"min": -(2**63), "max": 2**63}),
    "timestamp range over years 1 to 9999": _typed(
        "long", "timestamp-millis", range={"min": MIN_TIMESTAMP_MS, "max": MAX_TIMESTAMP_MS + 1}
    ),
    "timestamp-micros range up to year 9999": _typed(
        "long", "timestamp-micros", range={"min": 0, "max": MAX_TIMESTAMP_MS * 1000 + 1000}
    ),
    "date range over years 1 to 9999": _typed("int", "date", range={"min": MIN_DATE_DAYS, "max": MAX_DATE_DAYS + 1}),
    "timestamp iteration running past year 9999": _typed(
        "long", "timestamp-millis", iteration={"start": MAX_TIMESTAMP_MS - 3, "step": 86_400_000}
    ),
    "decimal range partly outside its precision": _decimal(2, 0, range={"min": 50, "max": 600}),
    "double range over most of a double": _typed("double", range={"min": -1e308, "max": 1.7e308}),
    "float range up to the largest float": _typed("float", range={"min": 0, "max": 3.4028234663852886e38}),
    "double iteration with a big step": _typed("double", iteration={"start": 0, "step": 1e289}),
    "string iteration": _typed("string", iteration={"start": 1, "step": 0.5}),
    "int iteration wrapping around": _typed("int", iteration={"start": 2**31 - 2, "step": 2**40}),
    "regex class of text only": _typed("string", regex="[a-\ud7ff]{3}"),
    "decimal of precision 308": _decimal(308, 0),
    "decimal of precision 308, all of it scale": _decimal(308, 308),
    "time-millis range over the whole day": _typed("int", "time-millis", range={"min": 0, "max": 86_400_000}),
    "time-micros iteration wrapping at midnight": _typed("long", "time-micros", iteration={"start": 86_399_999_999}),
    "records nested 30 deep": _nested_records(30),
}


@pytest.mark.parametrize("name", sorted(AT_THE_EDGES))
def test_a_config_at_the_edges_of_its_types_is_accepted_and_generates_valid_records(name: str) -> None:
    document = _document(_record(AT_THE_EDGES[name]))
    source = config_source(parse_config(document, source="edges", file="sources/edges.json", folder=Path(".")))
    validate = record_validator(source.model).validate_json
    for start in (0, 2**45):
        messages = generate_messages(source, 50, now=FIXED_NOW, seed=1, start_index=start)
        assert len(messages) == 50
        for message in messages:
            source.transform(validate(message.value))


def test_a_timestamp_iteration_past_year_9999_wraps_to_year_1() -> None:
    """As an int or long wraps around its type (Java's overflow), a timestamp wraps within the dates it holds."""
    document = _document(_record(_typed("long", "timestamp-millis", iteration={"start": MAX_TIMESTAMP_MS - 1})))
    source = config_source(parse_config(document, source="edges", file="sources/edges.json", folder=Path(".")))
    messages = generate_messages(source, 4, now=FIXED_NOW, seed=1, start_index=0)
    assert [json.loads(m.value)["a"] for m in messages] == [
        MAX_TIMESTAMP_MS - 1,
        MAX_TIMESTAMP_MS,
        MIN_TIMESTAMP_MS,
        MIN_TIMESTAMP_MS + 1,
    ]


def test_a_double_range_wider_than_a_double_spans_still_draws_across_it() -> None:
    """max - min overflows to infinity: the draw must neither be infinite nor always min."""
    document = _document(_record(_typed("double", range={"min": -1e308, "max": 1.7e308})))
    source = config_source(parse_config(document, source="wide", file="sources/wide.json", folder=Path(".")))
    drawn = [json.loads(m.value)["a"] for m in generate_messages(source, 200, now=FIXED_NOW, seed=1, start_index=0)]
    assert all(-1e308 <= value < 1.7e308 for value in drawn)
    assert min(drawn) < 0 < max(drawn) and len(set(drawn)) == 200


# what the checks of arg.properties refuse; with them switched off, the trial records still catch each
UNCHECKED = {
    name: HOSTILE[name][0]
    for name in (
        "int range min past the type",
        "decimal range outside its precision",
        "date range past year 9999",
        "timestamp range without a max",
        "uuid iteration",
    )
}


@pytest.mark.parametrize("name", sorted(UNCHECKED))
def test_trial_records_at_indexing_catch_what_the_checks_of_arg_properties_miss(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(avro, "_check_generated_values", lambda node: None)
    config = parse_config(_document(UNCHECKED[name]), source="hostile", file="sources/hostile.json", folder=Path("."))
    with pytest.raises(
        DatagenConfigError, match=r"^sources/hostile\.json: schema: a trial record of its generator \(number 0 or"
    ):
        config_source(config)
