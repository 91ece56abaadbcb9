"""How producer unions, renamed types and logical types resolve to the source's schema: a record that does not
resolve is a dead letter ``schema``, always (validated as sent, values landed with another meaning); a union
value is compared with the branch fastavro resolves it to; a writer union's branches pair in linear steps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.shared.schema_registry.test_decoder import _produced, _read_as, _thing_source, _with


def _letters(batch: Any) -> list[tuple[str, str]]:
    return [(str(letter.reason), letter.detail) for letter in batch.dead_letters]


PRIORITY = {"type": "enum", "name": "Priority", "symbols": ["LOW", "HIGH"]}
ACME_PRIORITY = PRIORITY | {"namespace": "com.acme"}
ACME_SEVERITY = {"type": "enum", "name": "Severity", "namespace": "com.acme", "symbols": ["LOW", "HIGH"]}


def test_a_second_enum_of_a_writer_union_sharing_symbols_does_not_land_as_the_sources_enum(registry: str) -> None:
    """[null, Priority, Severity] read as [null, Priority]: Severity resolves to nothing, so the record is
    validated as sent, and the Severity HIGH passes the Priority model as the priority HIGH."""
    reader = _with({"name": "tag", "type": ["null", PRIORITY], "default": None})
    writer = _with({"name": "tag", "type": ["null", ACME_PRIORITY, ACME_SEVERITY]})
    records = [{"id": 1, "name": "a", "tag": ("com.acme.Severity", "HIGH")}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert batch.rows() == [], batch.rows()
    assert [reason for reason, _ in _letters(batch)] == ["schema"]


CAT = {"type": "record", "name": "Cat", "fields": [{"name": "name", "type": "string"}]}
ACME_CAT = CAT | {"namespace": "com.acme"}
ACME_DOG = {"type": "record", "name": "Dog", "namespace": "com.acme", "fields": [{"name": "name", "type": "string"}]}


def test_a_second_record_of_a_writer_union_of_the_same_fields_does_not_land_as_the_sources_record(
    registry: str,
) -> None:
    """The Dog rex of [null, Cat, Dog] read as [null, Cat] lands as the cat rex (validated as sent)."""
    reader = _with({"name": "pet", "type": ["null", CAT], "default": None})
    writer = _with({"name": "pet", "type": ["null", ACME_CAT, ACME_DOG]})
    records = [{"id": 1, "name": "a", "pet": ("com.acme.Dog", {"name": "rex"})}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert batch.rows() == [], batch.rows()
    assert [reason for reason, _ in _letters(batch)] == ["schema"]


MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}


def test_a_map_of_millis_read_as_a_record_of_micros_is_a_schema_dead_letter(registry: str) -> None:
    """A map does not resolve to a record; validated as sent, its timestamp-millis value lands in the record's
    timestamp-micros field: 2026 lands as January 1970. changed_meaning does not compare maps with records."""
    reader = _with({"name": "at", "type": {"type": "record", "name": "At", "fields": [{"name": "t", "type": MICROS}]}})
    writer = _with({"name": "at", "type": {"type": "map", "values": MILLIS}})
    ms = 1_780_000_000_000  # 2026 in milliseconds
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": {"t": ms}}])
    )
    assert batch.rows() == [], batch.rows()
    assert [reason for reason, _ in _letters(batch)] == ["schema"]


A = {"type": "record", "name": "A", "fields": [{"name": "t", "type": MILLIS}]}
B_MICROS = {"type": "record", "name": "B", "fields": [{"name": "t", "type": MICROS}]}
B_MILLIS = {"type": "record", "name": "B", "fields": [{"name": "t", "type": MILLIS}]}


def test_a_writer_record_resolved_by_name_to_a_later_union_branch_is_compared_with_that_branch(
    registry: str,
) -> None:
    """fastavro resolves the writer's B to the reader's B (by name); changed_meaning compares it with the
    union's first record, A: B's milliseconds are read as B's microseconds, no dead letter."""
    reader = _with({"name": "at", "type": ["null", A, B_MICROS], "default": None})
    writer = _with({"name": "at", "type": ["null", B_MILLIS]})
    ms = 1_780_000_000_000
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": {"t": ms}}])
    )
    assert batch.rows() == [], batch.rows()
    assert [reason for reason, _ in _letters(batch)] == ["schema"]


def test_a_writer_record_of_the_same_unit_as_its_named_branch_still_lands(registry: str) -> None:
    """The reverse: B (millis) read as [null, A (micros), B (millis)] resolves correctly, yet every record is a
    dead letter, compared with A."""
    a_micros = {"type": "record", "name": "A", "fields": [{"name": "t", "type": MICROS}]}
    reader = _with({"name": "at", "type": ["null", a_micros, B_MILLIS], "default": None})
    writer = _with({"name": "at", "type": ["null", B_MILLIS]})
    ms = 1_780_000_000_000
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": {"t": ms}}])
    )
    assert _letters(batch) == []
    assert len(batch.rows()) == 1


def test_a_nested_field_renamed_with_an_alias_does_not_land_null_when_the_record_does_not_resolve(
    registry: str,
) -> None:
    """A long read as an int does not resolve, so the record was validated as sent; the nested model does not
    read a field's aliases, so at.title (alias name) landed null where the producer sent 'hello'. Now a dead
    letter ``schema``."""
    inner = {
        "type": "record",
        "name": "Inner",
        "fields": [{"name": "title", "type": ["null", "string"], "default": None, "aliases": ["name"]}],
    }
    reader = _with({"name": "at", "type": inner})
    reader["fields"].append({"name": "size", "type": "int"})
    writer_inner = {"type": "record", "name": "Inner", "fields": [{"name": "name", "type": "string"}]}
    writer = _with({"name": "at", "type": writer_inner})
    writer["fields"].append({"name": "size", "type": "long"})
    records = [{"id": 1, "name": "a", "at": {"name": "hello"}, "size": 5}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    rows = batch.rows()
    assert rows == [] or rows[0]["at_title"] == "hello", (rows, _letters(batch))
    assert [reason for reason, _ in _letters(batch)] == ["schema"]


PAINT_COLOR = {"type": "enum", "name": "Color", "namespace": "paint", "symbols": ["MATTE", "RED"]}
ACME_COLOR = {"type": "enum", "name": "Color", "namespace": "com.acme", "symbols": ["RED", "GREEN"]}
COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "OTHER"], "default": "OTHER"}


@pytest.mark.parametrize(("symbol", "landed"), [("MATTE", "OTHER"), ("RED", "RED")])
def test_two_writer_enums_of_one_unqualified_name_both_read_as_the_sources_as_avro_says(
    registry: str, symbol: str, landed: str
) -> None:
    """[null, com.acme.Color, paint.Color] read as [null, Color]: Avro resolves a named type by its unqualified
    name, so both producer enums read as the source's Color (docs/datagen.md says so): the paint MATTE lands as
    the Color default OTHER, the paint RED as RED. The decoder does not second-guess fastavro's resolution."""
    reader = _with({"name": "tag", "type": ["null", COLOR], "default": None})
    writer = _with({"name": "tag", "type": ["null", ACME_COLOR, PAINT_COLOR]})
    records = [{"id": 1, "name": "a", "tag": ("paint.Color", symbol)}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert _letters(batch) == []
    assert [row["tag"] for row in batch.rows()] == [landed]


def test_a_writer_union_of_many_enums_is_paired_in_linear_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """with_writer_names once looked, for each unpaired writer branch, at every other one of its family: quadratic
    (8,000 one-symbol enums, 570 KB of schema, took 46 s of one batch, before any record was decoded). The steps
    it takes, counted as the branches it classifies, grow with the branches, not their square."""
    import json

    from shared.schema_registry import avro_binary
    from shared.schema_registry.avro_binary import parse_reader_schema, parse_writer_schema, with_writer_names

    enum = {"type": "enum", "name": "E", "symbols": ["A"]}
    reader = parse_reader_schema(_with({"name": "at", "type": ["null", enum], "default": None}))
    steps = [0]
    family = avro_binary._family

    def counted(schema: object) -> object:
        steps[0] += 1
        return family(schema)

    monkeypatch.setattr(avro_binary, "_family", counted)

    def steps_for(count: int) -> int:
        branches = [
            "null",
            *({"type": "enum", "name": f"W{i}", "namespace": "w", "symbols": ["A"]} for i in range(count)),
        ]
        writer = parse_writer_schema(json.dumps(_with({"name": "at", "type": branches})))
        steps[0] = 0
        with_writer_names(writer, reader)
        return steps[0]

    small, large = steps_for(500), steps_for(2000)
    assert large <= 4.5 * small, (small, large)


# The fixes' own cases: changed_meaning compares a writer type with the source's type fastavro resolves it to.

JAVA_NAME = {"name": "Order", "namespace": "com.acme"}


def test_a_renamed_producer_record_whose_timestamp_changes_unit_is_a_schema_dead_letter(registry: str) -> None:
    """com.acme.Order read as x.Thing resolves through the alias with_writer_names adds: its millis must be
    compared with the source's micros (with the source's schema as written, the names do not match)."""
    reader = _with({"name": "at", "type": MICROS})
    writer = _with({"name": "at", "type": MILLIS}) | JAVA_NAME
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": 5}]))
    assert batch.rows() == [], batch.rows()
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and "at: written as timestamp-millis, read as timestamp-micros" in detail, detail


def test_a_renamed_producer_record_in_a_union_whose_timestamp_changes_unit_is_a_schema_dead_letter(
    registry: str,
) -> None:
    """[null, com.acme.At] read as [null, Thing_at]: paired by kind (the only record on each side), aliased, so
    fastavro resolves it to Thing_at, whose micros its millis would land as."""
    thing_at = {"type": "record", "name": "Thing_at", "fields": [{"name": "t", "type": MICROS}]}
    acme_at = {"type": "record", "name": "At", "namespace": "com.acme", "fields": [{"name": "t", "type": MILLIS}]}
    reader = _with({"name": "at", "type": ["null", thing_at], "default": None})
    writer = _with({"name": "at", "type": ["null", acme_at]})
    ms = 1_780_000_000_000
    batch = _read_as(
        registry, _thing_source(reader), _produced(registry, writer, [{"id": 1, "name": "a", "at": {"t": ms}}])
    )
    assert batch.rows() == [], batch.rows()
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and "at.t: written as timestamp-millis" in detail, detail


def test_a_writer_union_branch_that_resolves_to_nothing_does_not_dead_letter_the_other_branches(
    registry: str,
) -> None:
    """A named type resolves by name only: com.acme.Z (millis) matches neither A nor B (micros) of the source's
    union, so it is not compared with A (which dead-lettered every record of the schema, its strings too); each
    Z record is a dead letter of its own (it does not resolve), the strings land."""
    z = {"type": "record", "name": "Z", "namespace": "com.acme", "fields": [{"name": "t", "type": MILLIS}]}
    a_micros = {"type": "record", "name": "A", "fields": [{"name": "t", "type": MICROS}]}
    reader = _with({"name": "at", "type": ["null", "string", a_micros, B_MICROS], "default": None})
    writer = _with({"name": "at", "type": ["null", "string", z]})
    records = [{"id": 1, "name": "a", "at": "text"}, {"id": 2, "name": "b", "at": ("com.acme.Z", {"t": 5})}]
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, records))
    assert [row["id"] for row in batch.rows()] == [1], _letters(batch)
    ((reason, detail),) = _letters(batch)
    assert reason == "schema" and detail.startswith("schema 1: does not resolve to the source's schema"), detail
