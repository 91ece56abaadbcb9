"""Generated records: Datagen's wire format and keys, and each ``arg.properties`` annotation."""

from __future__ import annotations

import io
import json
import re

import fastavro
import pytest

from shared.datagen.config import load_quickstart, quickstart_config
from shared.datagen.source import config_source
from shared.generator_ticks import generate_messages, needs_progress
from shared.settings import load_source_settings
from tests.conftest import FIXED_NOW
from tests.unit.shared.datagen.conftest import field, schema_source, values


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


def test_an_iteration_in_a_union_branch_counts_by_the_record_and_in_an_array_within_it() -> None:
    """A union's branch counted from 0 in each record: ``["null", long iteration start 100]`` was always 100 (a
    review's finding). It counts by the record, as the union's value does (a record taking the other branch
    skips its value); an array's items count that record's values (docs/datagen.md)."""
    counted = {"type": "long", "arg.properties": {"iteration": {"start": 100}}}
    source = schema_source(
        [
            {"name": "b", "type": ["null", counted]},
            {"name": "xs", "type": {"type": "array", "items": counted, "arg.properties": {"length": 3}}},
        ]
    )
    records = values(source, 6, start_index=10)
    assert all(r["b"] in (None, 110 + n) for n, r in enumerate(records)) and {r["b"] for r in records} - {None}
    assert all(r["xs"] == [100, 101, 102] for r in records)


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


@pytest.mark.parametrize("regex", [r"\x41", r"\u0041", r"[\x41-\x43]{3}", r"x\x2d[^\u0041-\u005a]"])
def test_a_hex_or_unicode_escape_generates_the_character_it_names(regex: str) -> None:
    """Not the letter and digits after the backslash (``x41``): the value fully matches, as the docs promise."""
    for record in values(schema_source([field("code", "string", regex=regex)]), 50):
        assert re.fullmatch(regex, record["code"]), record["code"]


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


def test_unkeyed_config_sends_null_keys_and_same_seed_same_sequence() -> None:
    source = schema_source([field("v", "int", range={"min": 0, "max": 1000})])
    first = generate_messages(source, 50, now=FIXED_NOW, seed=9, start_index=0)
    assert all(m.key is None for m in first)
    assert first == generate_messages(source, 50, now=FIXED_NOW, seed=9, start_index=0)
    assert first != generate_messages(source, 50, now=FIXED_NOW, seed=10, start_index=0)
