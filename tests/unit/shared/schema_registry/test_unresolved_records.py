"""A producer's record that does not resolve to the source's schema as it stands: of another name (a Java
class, Datagen's ``ksql.orders``), which now resolves, or holding a value the source's type cannot take.

Found by a review: such a record was validated as sent, where bytes are base64 text; a string field of the
model took that text, so the base64 landed as the value (``aGVsbG8=`` for ``hello``), no dead letter; and a
string landed as the base64 a bytes column holds (``abcd`` for the bytes 69 b7 1d). A record that does not
resolve is now a dead letter ``schema`` naming the schema id and the resolution's error, always (a third review
found other values that the "validated as sent" fallback landed with another meaning:
test_union_and_logical_resolution)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import fastavro
import pytest

from shared.batch import process_batch
from shared.schema_registry import decoder as decoder_module
from shared.schema_registry.client import ConfluentRegistry
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import confluent_frame
from tests.unit.shared.schema_registry.conftest import records_of
from tests.unit.shared.schema_registry.test_decoder import THING, _produced, _read_as, _thing_source, _with

JAVA_NAME = {"name": "Order", "namespace": "com.acme"}  # what a Java producer's record is named


def _letters(batch: Any) -> list[tuple[str, str]]:
    return [(str(letter.reason), letter.detail) for letter in batch.dead_letters]


def test_a_writer_record_of_another_name_resolves_and_its_bytes_land_as_the_string_they_encode(
    registry: str,
) -> None:
    """Was: fastavro refuses records of another unqualified name, every record of that producer was validated
    as sent, and its bytes field (base64 text as sent) landed 'aGVsbG8=' in the string column."""
    writer = _with({"name": "name", "type": "bytes"}, replacing="name") | JAVA_NAME
    batch = _read_as(registry, _thing_source(THING), _produced(registry, writer, [{"id": 1, "name": b"hello"}]))
    assert _letters(batch) == []
    assert [row["name"] for row in batch.rows()] == ["hello"]


def test_a_writer_record_of_another_name_resolves_and_its_string_lands_as_bytes(registry: str) -> None:
    """The reverse: the text 'abcd' as sent is valid base64, so a bytes column took it as the bytes 69 b7 1d."""
    reader = _with({"name": "name", "type": "bytes"}, replacing="name")
    writer = THING | JAVA_NAME
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "abcd"}]))
    assert _letters(batch) == []
    assert [row["name"] for row in batch.rows()] == [base64.b64encode(b"abcd").decode()]


ADDRESS = {"type": "record", "name": "Address", "namespace": "com.acme", "fields": [{"name": "code", "type": "bytes"}]}
THING_ADDRESS = {"type": "record", "name": "Thing_address", "fields": [{"name": "code", "type": "string"}]}
STATUS = {"type": "enum", "name": "Status", "namespace": "com.acme", "symbols": ["NEW", "DONE"]}
THING_STATUS = {"type": "enum", "name": "Thing_status", "symbols": ["NEW", "DONE"]}


@pytest.mark.parametrize(
    ("written", "read", "value", "column", "landed"),
    [
        (ADDRESS, THING_ADDRESS, {"code": b"hello"}, "at_code", "hello"),
        (["null", ADDRESS], ["null", THING_ADDRESS], {"code": b"hello"}, "at_code", "hello"),
        (
            {"type": "array", "items": ADDRESS},
            {"type": "array", "items": THING_ADDRESS},
            [{"code": b"hello"}],
            "at",
            '[{"code":"hello"}]',
        ),
        (
            {"type": "map", "values": ["null", ADDRESS]},
            {"type": "map", "values": ["null", "string", THING_ADDRESS]},
            {"k": {"code": b"hello"}},
            "at",
            '{"k":{"code":"hello"}}',
        ),
    ],
    ids=["record", "in a union", "array items", "map values, in a union"],
)
def test_nested_named_types_of_other_names_resolve(
    registry: str, written: Any, read: Any, value: Any, column: str, landed: str
) -> None:
    """A producer's nested types are named by it too (com.acme.Address where the source says Thing_address):
    each is paired by position with the source's, at any depth, and resolves (nested records land as columns,
    arrays and maps as JSON text)."""
    reader = _with({"name": "at", "type": read})
    reader["fields"].append({"name": "status", "type": THING_STATUS})
    writer = _with({"name": "at", "type": written}) | JAVA_NAME
    writer["fields"].append({"name": "status", "type": STATUS})
    record = {"id": 1, "name": "a", "at": value, "status": "DONE"}
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, [record]))
    assert _letters(batch) == []
    (row,) = batch.rows()
    assert (row[column], row["status"]) == (landed, "DONE")


def test_bytes_that_are_not_utf8_read_as_a_string_are_a_schema_dead_letter_naming_the_schema_and_error(
    registry: str,
) -> None:
    """Resolution (bytes -> string) fails on bytes that are not UTF-8; the record as sent held them as base64
    text, and the string column took '//79'. Records of the same schema whose bytes are UTF-8 still land."""
    writer = _with({"name": "name", "type": "bytes"}, replacing="name")
    records = [{"id": 1, "name": b"\xff\xfe\xfd"}, {"id": 2, "name": b"ok"}]
    batch = _read_as(registry, _thing_source(THING), _produced(registry, writer, records))
    assert [row["name"] for row in batch.rows()] == ["ok"]
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve to the source's schema"), detail
    assert "utf-8" in detail, detail


def test_a_string_read_as_bytes_in_a_record_that_does_not_resolve_is_a_schema_dead_letter(registry: str) -> None:
    """A long read as an int does not resolve; validated as sent, 5 fit the int, and the string 'abcd' (valid
    base64 text) landed in the bytes column as the bytes 69 b7 1d. The dead letter names the resolution's error."""
    reader = _with({"name": "name", "type": "bytes"}, replacing="name")
    reader["fields"].append({"name": "size", "type": "int"})
    writer = _with({"name": "size", "type": "long"})
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "abcd", "size": 5}])
    )
    assert batch.rows() == []
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve"), detail
    assert "long is not int" in detail, detail


def test_a_record_that_does_not_resolve_is_a_schema_dead_letter_even_when_its_values_would_fit(
    registry: str,
) -> None:
    """A long read as an int: was validated as sent, the model deciding (5 landed, 2**40 was refused). Now every
    record of it is a dead letter ``schema`` naming the schema id and the resolution's error (docs/datagen.md):
    whether a record as sent means the same as read is not for the model to guess."""
    reader = _with({"name": "size", "type": "int"})
    writer = _with({"name": "size", "type": "long"}) | JAVA_NAME
    records = [{"id": 1, "name": "a", "size": 5}, {"id": 2, "name": "b", "size": 2**40}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert batch.rows() == [], batch.rows()
    letters = _letters(batch)
    assert [reason for reason, _ in letters] == ["schema", "schema"], letters
    for _, detail in letters:
        assert detail.startswith("schema 1: does not resolve to the source's schema (SchemaResolutionError:"), detail
        assert "long is not int" in detail, detail


def test_how_a_writer_schema_is_read_is_worked_out_once_not_per_batch(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names to pair and whether a field changes its logical type depend on the two schemas only."""
    calls: list[str] = []
    for name in ("with_writer_names", "changed_meaning"):
        real = getattr(decoder_module, name)
        monkeypatch.setattr(
            decoder_module, name, lambda *args, _real=real, _name=name: calls.append(_name) or _real(*args)
        )
    writer = _with({"name": "name", "type": "bytes"}, replacing="name") | JAVA_NAME
    values = _produced(registry, writer, [{"id": 1, "name": b"hello"}])
    source, decoder = _thing_source(THING), AvroDecoder(ConfluentRegistry(registry))
    for _ in range(3):
        batch = process_batch(source, records_of(values, topic="things"), max_record_bytes=1 << 20, decoder=decoder)
        assert [row["name"] for row in batch.rows()] == ["hello"]
    assert sorted(calls) == ["changed_meaning", "with_writer_names"]


# Found by a second review (of the pairing by position): values that still landed with another meaning.

COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "OTHER"], "default": "OTHER"}
ACME_COLOR = COLOR | {"namespace": "com.acme"}
ACME_SIZE = {"type": "enum", "name": "Size", "namespace": "com.acme", "symbols": ["S", "M", "L"]}


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (["null", ACME_COLOR, ACME_SIZE], ["null", COLOR]),
        ([ACME_COLOR, ACME_SIZE], COLOR),
        (["null", ACME_SIZE, ACME_COLOR], ["null", "long", COLOR]),
    ],
    ids=["unions", "a union read as its type", "a union read as a union of a long"],
)
def test_a_second_enum_of_a_writer_union_is_not_read_as_the_sources_only_enum(
    registry: str, written: Any, read: Any
) -> None:
    """Writer union [null, com.acme.Color, com.acme.Size], the source's [null, Color]: Color resolves by name;
    Size was paired with "the only one of its kind", aliased onto Color, and the size S landed as the color
    OTHER (an unknown symbol takes the enum's default). Size resolves to nothing: a dead letter ``schema`` naming
    the resolution's error. The colors of the same schema still land."""
    reader = _with({"name": "tag", "type": read})
    writer = _with({"name": "tag", "type": written})
    records = [
        {"id": 1, "name": "a", "tag": ("com.acme.Color", "GREEN")},
        {"id": 2, "name": "b", "tag": ("com.acme.Size", "S")},
    ]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert [(row["id"], row["tag"].strip('"')) for row in batch.rows()] == [(1, "GREEN")], _letters(batch)
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve"), detail
    assert "com.acme.Size" in detail, detail


def test_a_writer_unions_type_left_by_name_pairs_with_the_sources_only_one_left_of_its_kind(registry: str) -> None:
    """Pairing by kind comes after pairing by name: com.acme.Color took Color, so com.acme.Size is the writer's only
    enum left and Thing_size the source's: Size resolves to it (an unknown symbol takes its default), where it
    was read as nothing (two enums of its kind in the source's union) and its L refused as sent."""
    thing_size = {"type": "enum", "name": "Thing_size", "symbols": ["S", "M", "ANY"], "default": "ANY"}
    reader = _with({"name": "tag", "type": ["null", COLOR, thing_size], "default": None})
    writer = _with({"name": "tag", "type": ["null", ACME_COLOR, ACME_SIZE]})
    records = [
        {"id": 1, "name": "a", "tag": ("com.acme.Color", "GREEN")},
        {"id": 2, "name": "b", "tag": ("com.acme.Size", "L")},
        {"id": 3, "name": "c", "tag": ("com.acme.Size", "M")},
    ]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert _letters(batch) == []
    assert [row["tag"] for row in batch.rows()] == ['"GREEN"', '"ANY"', '"M"']


def test_a_writer_type_paired_elsewhere_with_the_sources_enum_is_not_read_as_it_in_a_union(registry: str) -> None:
    """The source's Color serves two fields; the producer sends a Size in one (paired by position) and a union of
    its Color and Size in the other. Aliases are the type's, not the field's: aliased for the first field, the
    Size of the second landed as the color OTHER. A source type is never read from two producer types."""
    reader = _with({"name": "hue", "type": ["null", COLOR], "default": None})
    reader["fields"].append({"name": "tag", "type": "Color"})
    writer = _with({"name": "hue", "type": ["null", ACME_COLOR, ACME_SIZE]})
    writer["fields"].append({"name": "tag", "type": "com.acme.Size"})
    batch = _read_as(
        registry,
        _thing_source(reader),
        _produced(registry, writer, [{"id": 1, "name": "a", "hue": ("com.acme.Size", "S"), "tag": "S"}]),
    )
    assert "OTHER" not in str(batch.rows()), (batch.rows(), _letters(batch))
    assert batch.rows() == [] and [reason for reason, _ in _letters(batch)] == ["schema"]


CAT = {
    "type": "record",
    "name": "Cat",
    "fields": [{"name": "name", "type": "string"}, {"name": "lives", "type": "int", "default": 9}],
}
ACME_CAT = {"type": "record", "name": "Cat", "namespace": "com.acme", "fields": [{"name": "name", "type": "string"}]}
ACME_DOG = {"type": "record", "name": "Dog", "namespace": "com.acme", "fields": [{"name": "name", "type": "string"}]}


def test_a_second_record_of_a_writer_union_is_not_read_as_the_sources_only_record(registry: str) -> None:
    """A Dog of the producer's [null, Cat, Dog] landed as the source's only Cat (its lives defaulted to 9)."""
    reader = _with({"name": "pet", "type": ["null", CAT], "default": None})
    writer = _with({"name": "pet", "type": ["null", ACME_CAT, ACME_DOG]})
    records = [
        {"id": 1, "name": "a", "pet": ("com.acme.Cat", {"name": "tom"})},
        {"id": 2, "name": "b", "pet": ("com.acme.Dog", {"name": "rex"})},
    ]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert [(row["id"], row["pet_name"], row["pet_lives"]) for row in batch.rows()] == [(1, "tom", 9)]
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve"), detail
    assert "com.acme.Dog" in detail, detail


INNER_BYTES = {"type": "record", "name": "Inner", "fields": [{"name": "code", "type": "bytes"}]}
INNER_STRING = {"type": "record", "name": "Inner", "fields": [{"name": "code", "type": "string"}]}


@pytest.mark.parametrize(
    ("written", "read", "said"),
    [
        (INNER_BYTES, {"type": "map", "values": "string"}, "is not {'type': 'map', 'values': 'string'}"),
        (
            {"type": "map", "values": "bytes"},
            INNER_STRING,
            "{'type': 'map', 'values': 'bytes'} is not {'type': 'record'",
        ),
        (INNER_STRING, {"type": "map", "values": "bytes"}, "is not {'type': 'map', 'values': 'bytes'}"),
        (
            {"type": "map", "values": INNER_BYTES},
            {"type": "map", "values": ["null", {"type": "map", "values": "string"}]},
            "is not ['null', {'type': 'map', 'values': 'string'}]",
        ),
    ],
    ids=["record read as a map", "map read as a record", "string read as bytes", "nested, in a union"],
)
def test_a_record_read_as_a_map_or_a_map_as_a_record_never_lands_base64(
    registry: str, written: Any, read: Any, said: str
) -> None:
    """Avro resolves no record to a map: validated as sent, the map's string took the base64 text of the record's
    bytes ('aGVsbG8=' for b'hello'), and the other ways round. A dead letter ``schema`` naming the resolution's
    error (the two types)."""
    value: Any = {"code": b"hello" if "bytes" in str(written) else "abcd"}
    if "values" in written and isinstance(written["values"], dict):
        value = {"k": value}
    reader, writer = _with({"name": "at", "type": read}), _with({"name": "at", "type": written})
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": value}])
    )
    assert batch.rows() == [], batch.rows()
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve"), detail
    assert said in detail, detail


@pytest.mark.parametrize(
    ("written", "read", "value", "said"),
    [
        (
            {"type": "fixed", "name": "H", "size": 4},
            {"type": "fixed", "name": "H", "size": 8},
            b"abcd",
            "size is different than",
        ),
        ("bytes", {"type": "fixed", "name": "H", "size": 4}, b"abcd", "bytes is not {'type': 'fixed'"),
        ({"type": "fixed", "name": "H", "size": 4}, "bytes", b"abcd", "'size': 4} is not bytes"),
    ],
    ids=["fixed of another size", "bytes read as a fixed", "fixed read as bytes"],
)
def test_a_fixed_of_another_size_or_bytes_is_a_schema_dead_letter(
    registry: str, written: Any, read: Any, value: bytes, said: str
) -> None:
    """Avro resolves neither (fastavro refuses); validated as sent, the model took any base64: 4 bytes landed in
    an 8-byte fixed column. Now a dead letter ``schema`` naming the resolution's error (the two types)."""
    reader, writer = _with({"name": "h", "type": read}), _with({"name": "h", "type": written})
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "h": value}]))
    assert batch.rows() == [], batch.rows()
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve"), detail
    assert said in detail, detail


def test_a_fixed_read_as_a_record_of_its_name_is_a_schema_dead_letter_not_base64_text(registry: str) -> None:
    """fastavro takes named types of one name for each other whatever their kinds: a producer's fixed Addr read as
    the source's record Addr came back as its bytes, and with a string branch beside the record they landed as
    base64 text ('Um9tZQ==' for b'Rome'), no dead letter. Avro resolves neither kind to the other."""
    address = {"type": "record", "name": "Addr", "fields": [{"name": "city", "type": "string"}]}
    fixed = {"type": "fixed", "name": "Addr", "size": 4}
    reader = _with({"name": "u", "type": ["null", "string", address], "default": None})
    writer = _with({"name": "u", "type": ["null", fixed]})
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "u": b"Rome"}])
    )
    assert batch.rows() == [], batch.rows()
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and "written as the fixed x.Addr, read as a record of that name" in detail, detail


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ({"name": "f", "type": {"type": "fixed", "name": "F", "size": "abc"}}, "a fixed of size 'abc'"),
        ({"name": {"x": 1}, "type": "long"}, "a field that is not a name and a type"),
        ({"name": "u", "type": ["null", {"type": "fixed", "name": "F", "size": []}]}, "a fixed of size []"),
        ({"name": "e", "type": {"type": "enum", "name": "E", "symbols": "AB"}}, "its symbols are not a list of names"),
        ({"name": "r", "type": {"type": "record", "name": 7, "fields": []}}, "a record whose name is 7"),
        ({"name": "a", "type": {"type": "array"}}, "an array without items"),
    ],
)
def test_a_malformed_schema_a_registry_stored_is_an_unknown_schema_dead_letter_not_a_stalled_partition(
    tmp_path: Any, field: dict[str, Any], said: str
) -> None:
    """fastavro parses these (Confluent's, Redpanda's and Event Hubs' registries refuse them), and the code's own
    walkers then raised (ValueError from int('abc'), TypeError from a dict as a name) out of the batch on every
    retry: the partition stopped, the good records of the batch with it. Such a schema is the record's problem."""
    from devhost.registry.server import serve_registry
    from devhost.registry.store import RegistryStore

    store_path = tmp_path / "lax.sqlite"
    writer = _with(field)
    bad_id = RegistryStore(store_path).register("things-value", json.dumps(writer)).id  # past the server's check
    with serve_registry(store_path) as url:
        good_id = int(ConfluentRegistry(url).register("other-value", json.dumps(THING)))
        values = [confluent_frame(bad_id, b"\x02\x00"), _produced_with_id(good_id, THING, {"id": 2, "name": "b"})]
        batch = _read_as(url, _thing_source(THING), values)
    assert [row["id"] for row in batch.rows()] == [2], "the good record of the batch lands"
    ((reason, detail),) = _letters(batch)
    assert reason == "unknown_schema" and said in detail, detail


def test_the_local_registry_refuses_a_malformed_schema_as_confluents_does(registry: str) -> None:
    writer = _with({"name": "f", "type": {"type": "fixed", "name": "F", "size": "abc"}})
    with pytest.raises(Exception, match="a fixed of size 'abc'"):
        ConfluentRegistry(registry).register("things-value", json.dumps(writer))


def _produced_with_id(schema_id: int, writer: dict[str, Any], record: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    fastavro.schemaless_writer(sink, fastavro.parse_schema(writer), record)
    return confluent_frame(schema_id, sink.getvalue())


def test_a_schema_the_resolution_fails_on_dead_letters_its_records_and_the_batch_lands(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the checks at parse let through and the resolution then raises on is that schema's records' problem:
    raised out of the batch, it failed the batch's good records too, on every retry."""
    writer = _with({"name": "qty", "type": "int", "default": 0})
    values = [*_produced(registry, writer, [{"id": 1, "name": "a", "qty": 3}]), *_produced(registry, THING, [])]
    values.append(
        _produced_with_id(
            int(ConfluentRegistry(registry).register("t-value", json.dumps(THING))), THING, {"id": 2, "name": "b"}
        )
    )
    real = decoder_module.repeat_counter

    def failing_for_qty(schema: Any) -> Any:
        if "qty" in json.dumps(schema, default=str):
            raise ValueError("a walker's assumption")
        return real(schema)

    monkeypatch.setattr(decoder_module, "repeat_counter", failing_for_qty)
    batch = _read_as(registry, _thing_source(THING), values)
    assert [row["id"] for row in batch.rows()] == [2]
    ((reason, detail),) = _letters(batch)
    assert reason == "unknown_schema" and "ValueError: a walker's assumption" in detail, detail


def test_running_out_of_memory_while_parsing_a_schema_fails_the_batch_and_is_not_remembered(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MemoryError was taken for a schema that does not parse: the record an unknown_schema dead letter (and the
    id remembered so for 60 s); for the source's own schema, its records read as written for the worker's life."""
    from shared.schema_registry import avro_binary

    source, records = _thing_source(THING), records_of(_produced(registry, THING, [{"id": 1, "name": "a"}]), "things")
    decoder = AvroDecoder(ConfluentRegistry(registry))
    real, failures = avro_binary.fastavro.parse_schema, ["reader", "writer"]

    def out_of_memory_first(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise MemoryError(failures.pop())
        return real(*args, **kwargs)

    monkeypatch.setattr(avro_binary.fastavro, "parse_schema", out_of_memory_first)
    while failures:  # the source's schema, then the writer's: each fails its batch, which the trigger retries
        with pytest.raises(MemoryError):
            process_batch(source, records, max_record_bytes=1 << 20, decoder=decoder)
    batch = process_batch(source, records, max_record_bytes=1 << 20, decoder=decoder)
    assert [row["id"] for row in batch.rows()] == [1] and batch.dead_letters == []
    assert all(reader.parsed is not None for reader in decoder._readers.values()), "read as the source's schema"
