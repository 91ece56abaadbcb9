"""The Avro codec: records round-trip in the JSON converter's form; broken bodies are not Avro."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from shared.datagen.config import QUICKSTARTS, quickstart_config
from shared.datagen.source import config_source
from shared.schema_registry.avro_binary import (
    MAX_REPEATED_VALUES,
    BadSchema,
    Oversized,
    avro_problem,
    decode,
    encode,
    parse_writer_schema,
    recursive_type,
    repeated_values,
)
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
        assert decode(parsed, encode(parsed, record)) == record


def test_truncated_and_overlong_bodies_are_not_avro() -> None:
    schema = quickstart_config("orders").schema_json
    parsed = parse_writer_schema(json.dumps(schema))
    (_, text), *_ = generated(config_source(quickstart_config("orders")), 1)
    body = encode(parsed, orjson.loads(text))
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


def zigzag(number: int) -> bytes:
    """``number`` as an Avro varint (zigzag), however long."""
    number = (number << 1) ^ (number >> 63)
    out = bytearray()
    while number & ~0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _record(*types: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]}


EMPTY = {"type": "record", "name": "Empty", "fields": []}


@pytest.mark.parametrize(
    "items",
    [
        "null",
        {"type": "null"},
        EMPTY,
        {"type": "fixed", "name": "F", "size": 0},
        {"type": "record", "name": "Nulls", "fields": [{"name": "a", "type": "null"}, {"name": "b", "type": EMPTY}]},
    ],
    ids=["null", "null as a dict", "empty record", "fixed size 0", "record of zero-width fields"],
)
def test_an_array_of_items_that_encode_in_zero_bytes_is_refused(items: Any) -> None:
    """Its count alone, one varint, would build a list of up to 2**63 items from a record of a few bytes."""
    nested = _record({"type": "map", "values": {"type": "array", "items": items}})
    for schema in (_record({"type": "array", "items": items}), nested):
        with pytest.raises(BadSchema, match="zero bytes"):
            parse_writer_schema(json.dumps(schema))


def test_arrays_and_maps_whose_items_take_a_byte_are_accepted_and_bounded_by_the_body() -> None:
    """A union's index, a map entry's key take a byte each: a huge count only runs out of body."""
    for schema in (
        _record({"type": "array", "items": ["null"]}),
        _record({"type": "array", "items": ["null", EMPTY]}),
        _record({"type": "map", "values": "null"}),
        _record({"type": "array", "items": {"type": "enum", "name": "One", "symbols": ["A"]}}),
    ):
        parsed = parse_writer_schema(json.dumps(schema))
        with pytest.raises(NotAvro, match="does not decode"):
            decode(parsed, zigzag(2**62) + b"\x00" * 64)


def test_a_referenced_zero_width_type_is_refused_too() -> None:
    """A named type from a schema reference counts: its definition is found among the references."""
    main = _record({"type": "array", "items": "x.Empty"})
    with pytest.raises(BadSchema, match="zero bytes"):
        parse_writer_schema(json.dumps(main), [json.dumps(EMPTY | {"namespace": "x"})])


ENUMS = _record(
    "long",
    {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]},
    ["null", "string", "long"],
    "boolean",
    "int",
)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (zigzag(7) + zigzag(-1) + zigzag(0) + b"\x00" + zigzag(1), "enum Color index -1"),
        (zigzag(7) + zigzag(0) + zigzag(-1) + zigzag(12345) + b"\x00" + zigzag(1), "union index -1"),
        (zigzag(7) + zigzag(0) + zigzag(0) + b"\x05" + zigzag(1), "boolean at byte 3: 5"),
        (zigzag(7) + zigzag(0) + zigzag(0) + b"\x01" + zigzag(2**33), "outside 32 bits"),
        (b"\xff" * 10 + b"\x7f" + zigzag(0) + zigzag(0) + b"\x00" + zigzag(1), "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f" + zigzag(0) + zigzag(0) + b"\x00" + zigzag(1), "outside 64 bits"),
    ],
    ids=["negative enum index", "negative union index", "boolean 5", "int past 32 bits", "11-byte long", "70-bit long"],
)
def test_a_body_fastavro_reads_as_made_up_values_is_not_avro(body: bytes, problem: str) -> None:
    """fastavro reads these as values nobody sent (the last symbol or branch, True, a wrapped number)."""
    with pytest.raises(NotAvro, match=problem):
        decode(parse_writer_schema(json.dumps(ENUMS)), body)


def test_legal_encodings_fastavro_does_not_write_still_decode() -> None:
    """Several blocks, a negative block count with its byte size, zero-padded varints: valid Avro (Java's
    encoders write some), decoded as the same value."""
    schema = _record({"type": "array", "items": "int"}, "int", ["int", "long"])
    parsed = parse_writer_schema(json.dumps(schema))
    padded_one = b"\x82\x80\x00"  # 1, zigzag 2, padded to three bytes
    blocks = zigzag(-1) + zigzag(1) + zigzag(5) + zigzag(2) + zigzag(6) + zigzag(7) + zigzag(0)
    body = blocks + padded_one + zigzag(1) + zigzag(3)  # the union's long branch for a value an int holds
    assert decode(parsed, body) == {"f0": [5, 6, 7], "f1": 1, "f2": 3}
    assert avro_problem(parsed, body) is None


RECURSIVE_R = {"type": "record", "name": "R", "fields": [{"name": "next", "type": ["null", "R"]}]}
# Valid Avro (the Java parser and fastavro both take it): Top{a: R{x: int}, b: R}. Its extra properties are custom
# attributes a registry keeps; fastavro took a schema with __fastavro_parsed as parsed already, and
# __named_schemas as the definition of R: recursive, past every check (one record then crashed the worker).
FASTAVRO_MARKERS = {
    "type": "record",
    "name": "Top",
    "__fastavro_parsed": True,
    "__named_schemas": {"R": RECURSIVE_R},
    "fields": [
        {"name": "a", "type": {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}},
        {"name": "b", "type": "R"},
    ],
}


@pytest.mark.parametrize(
    "schema",
    [
        FASTAVRO_MARKERS,
        {k: v for k, v in FASTAVRO_MARKERS.items() if k != "__named_schemas"},
        ["null", FASTAVRO_MARKERS],  # a top-level union: fastavro takes each branch as it takes a schema
        _record({"type": "record", "name": "Inner", "__named_schemas": {}, "fields": []}, "int"),
        _record({"type": "array", "items": "int", "__fastavro_parsed": True}),
    ],
    ids=["both markers", "__fastavro_parsed alone", "in a union", "in a nested record", "in an array"],
)
def test_a_schema_carrying_fastavros_own_markers_is_refused(schema: Any) -> None:
    with pytest.raises(BadSchema, match="fastavro's own marker"):
        parse_writer_schema(json.dumps(schema))
    with pytest.raises(BadSchema, match="fastavro's own marker"):  # in a referenced schema as well
        parse_writer_schema(json.dumps(_record("int")), [json.dumps(schema)])


def test_a_producers_own_attributes_starting_with_two_underscores_are_kept() -> None:
    """Debezium sets ``__debezium.source.column.type`` among the AvroConverter's ``connect.parameters`` (PostGIS
    columns, or every column with ``column.propagate.source.type``): such a schema is a usable one."""
    column = {
        "type": "string",
        "connect.parameters": {"__debezium.source.column.type": "VARCHAR", "__debezium.source.column.length": "255"},
    }
    parsed = parse_writer_schema(json.dumps(_record(column)))
    assert decode(parsed, zigzag(2) + b"hi") == {"f0": "hi"}


def test_a_recursive_error_type_is_refused_as_a_record_is() -> None:
    """fastavro reads an ``error`` as a record: one inside itself nests as deep as the body says."""
    schema = {"type": "error", "name": "E", "fields": [{"name": "next", "type": ["null", "E"]}]}
    with pytest.raises(BadSchema, match="recursive"):
        parse_writer_schema(json.dumps(_record(schema)))


def test_a_named_type_of_a_reference_defined_again_is_refused() -> None:
    """Referenced S refers to R by name; the main schema defines R again, around S: fastavro's reader resolves
    S's R to the new one, so S would contain itself although each schema alone is not recursive."""
    r_first = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}
    s_of_r = {"type": "record", "name": "S", "fields": [{"name": "r", "type": "R"}]}
    main = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "r", "type": r_first | {"fields": [{"name": "s", "type": "S"}]}}],
    }
    with pytest.raises(BadSchema, match=r"defined again|recursive"):
        parse_writer_schema(json.dumps(main), [json.dumps(r_first), json.dumps(s_of_r)])
    uses_s = {"type": "record", "name": "Top", "fields": [{"name": "s", "type": "S"}]}  # not defined again: fine
    assert parse_writer_schema(json.dumps(uses_s), [json.dumps(r_first), json.dumps(s_of_r)])


ONE_BOOLEAN = {"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}]}


@pytest.mark.parametrize(
    ("items", "item", "weight"),
    [
        (ONE_BOOLEAN, b"\x00", 2),  # a fixed width: skipped a block at a time
        ("string", zigzag(0), 1),  # walked item by item
        (
            {"type": "record", "name": "N", "fields": [{"name": f"n{i}", "type": "null"} for i in range(99)]}
            | {"fields": [{"name": "s", "type": "string"}] + [{"name": f"n{i}", "type": "null"} for i in range(99)]},
            zigzag(0),
            101,
        ),
    ],
    ids=["records of a boolean", "empty strings", "records of 99 nulls and a string"],
)
def test_a_body_decoding_to_too_many_items_is_oversized_before_it_is_decoded(
    items: Any, item: bytes, weight: int
) -> None:
    """One byte an item, hundreds of bytes each decoded: a record within the size limit would decode to
    gigabytes. Items are counted (weighted by their values) without decoding, up to MAX_REPEATED_VALUES."""
    parsed = parse_writer_schema(json.dumps(_record({"type": "array", "items": items})))
    within = MAX_REPEATED_VALUES // weight
    body = zigzag(within) + item * within + b"\x00"
    assert len(decode(parsed, body)["f0"]) == within
    assert repeated_values(parsed, decode(parsed, body), body) == within * weight
    many = within + 1
    with pytest.raises(Oversized, match="more than 100,000") as raised:
        decode(parsed, zigzag(many) + item * many + b"\x00")
    assert raised.value.counted > MAX_REPEATED_VALUES
    with pytest.raises(NotAvro) as raised:  # a count the body cannot hold is no more than truncated
        decode(parsed, zigzag(many) + item * (within // 2) + b"\x00")
    assert not isinstance(raised.value, Oversized)


def test_map_entries_and_nested_arrays_count_too() -> None:
    schema = _record({"type": "map", "values": {"type": "array", "items": "int"}})
    parsed = parse_writer_schema(json.dumps(schema))

    def entry(key: bytes) -> bytes:  # key: [-1, -1, -1]
        return zigzag(len(key)) + key + zigzag(3) + zigzag(-1) * 3 + b"\x00"

    body = zigzag(2) + entry(b"a") + entry(b"b") + b"\x00"
    assert repeated_values(parsed, decode(parsed, body), body) == 2 * 2 + 2 * 3
    count = MAX_REPEATED_VALUES // 5 + 1  # each entry: 2 (key and list) and 3 items
    with pytest.raises(Oversized):
        decode(parsed, zigzag(count) + b"".join(entry(b"%d" % i) for i in range(count)) + b"\x00")


def _int_record(name: str, *fields: str, default: bool = False) -> dict[str, Any]:
    extra = {"default": 0} if default else {}
    return {"type": "record", "name": name, "fields": [{"name": f, "type": "int", **extra} for f in fields]}


UNIONS_OF_RECORDS = {
    "a later branch with more fields": [_int_record("A", "x"), _int_record("B", "x", "y")],
    "an earlier branch with a default for a key the value lacks": [
        _int_record("B", "x", "y", default=True),
        _int_record("A", "x"),
    ],
    "a later branch sharing no field": [*(_int_record(f"R{n}", "x") for n in range(15)), _int_record("Z", "z")],
}


@pytest.mark.parametrize("branches", UNIONS_OF_RECORDS.values(), ids=UNIONS_OF_RECORDS.keys())
def test_an_object_of_a_union_of_records_is_written_as_the_branch_with_its_keys(branches: list[Any]) -> None:
    """The generator sends each record as JSON; the encoder wrote an object by the first record branch that
    converted it (dropping the keys it lacks, or refusing an object of a branch sharing no field)."""
    schema = {"type": "record", "name": "U", "namespace": "n", "fields": [{"name": "u", "type": branches}]}
    parsed = parse_writer_schema(json.dumps(schema))
    for branch in branches:
        if isinstance(branch, dict):
            record = {"u": {item["name"]: 7 for item in branch["fields"]}}
            assert decode(parsed, encode(parsed, record)) == record


def _fields(name: str, **types: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": k, "type": t} for k, t in types.items()]}


SAME_KEYS_OTHER_TYPES = {  # the second review's: chosen by keys alone, each was corrupted or refused
    "long or double": ([_fields("A", x="long"), _fields("B", x="double")], [{"x": 1.5}, {"x": 2}]),
    "boolean or int": ([_fields("A", x="boolean"), _fields("B", x="int")], [{"x": 3}, {"x": True}]),
    "int or string": ([_fields("A", x="int"), _fields("B", x="string")], [{"x": "s"}, {"x": 1}]),
    "bytes or string": ([_fields("A", x="bytes"), _fields("B", x="string")], [{"x": "hello!"}, {"x": "aGk="}]),
    "enum or string": (
        [_fields("A", x={"type": "enum", "name": "E", "symbols": ["P"]}), _fields("B", x="string")],
        [{"x": "zz"}, {"x": "P"}],
    ),
    "a map beside a record": ([{"type": "map", "values": "string"}, _fields("R", a="int")], [{"a": "s"}, {"a": 1}]),
    "a map whose keys no record has": ([_fields("R", x="int"), {"type": "map", "values": "string"}], [{"foo": "b"}]),
    "a record or a map of longs": (["null", _fields("R", x="int"), {"type": "map", "values": "long"}], [{"y": 1}]),
    "a record or a map of text": (
        [_fields("R", x="bytes"), {"type": "map", "values": "string"}],
        [{"x": "hello!"}, {"x": "aGk="}],
    ),
    "maps of bytes or text": (
        ["null", {"type": "map", "values": "bytes"}, {"type": "map", "values": "string"}],
        [{"k": "hello!"}],
    ),
    "arrays of bytes or text": (
        ["null", {"type": "array", "items": "bytes"}, {"type": "array", "items": "string"}],
        [["hello!"], ["aGk="]],
    ),
    "records of records": (
        [_fields("A", x=_fields("X", p="int")), _fields("B", x=_fields("Y", p="string"))],
        [{"x": {"p": "s"}}, {"x": {"p": 1}}],
    ),
}


@pytest.mark.parametrize(("branches", "values"), SAME_KEYS_OTHER_TYPES.values(), ids=SAME_KEYS_OTHER_TYPES.keys())
def test_an_object_of_a_union_of_records_with_the_same_keys_is_written_as_the_branch_its_values_fit(
    branches: list[Any], values: list[Any]
) -> None:
    schema = {"type": "record", "name": "U", "namespace": "n", "fields": [{"name": "u", "type": branches}]}
    parsed = parse_writer_schema(json.dumps(schema))
    for value in values:
        assert decode(parsed, encode(parsed, {"u": value})) == {"u": value}


def test_a_schema_whose_top_level_is_not_a_record_still_encodes() -> None:
    union = parse_writer_schema(json.dumps([_fields("A", x="int"), _fields("B", y="string")]))
    assert decode(union, encode(union, {"y": "s"})) == {"y": "s"}
    text = parse_writer_schema('"string"')
    assert decode(text, encode(text, "s")) == "s"


def test_an_object_of_a_union_branch_named_by_reference_is_written_as_that_branch() -> None:
    schema = {
        "type": "record",
        "name": "U",
        "namespace": "n",
        "fields": [
            {"name": "first", "type": _int_record("A", "x")},
            {"name": "u", "type": [_int_record("B", "x", "y", default=True), "A"]},
        ],
    }
    parsed = parse_writer_schema(json.dumps(schema))
    record = {"first": {"x": 1}, "u": {"x": 2}}
    assert decode(parsed, encode(parsed, record)) == record
