"""Writer schemas whose records cost work in proportion to their schema *times* their body (a wide union) or
exponential in their depth (unions of records nested in each other), and junk values naming
many real schema ids. Work is counted, not timed: Python calls into the codec, and into fastavro run as its
pure-Python twin (its compiled writer does the same work, out of a profiler's sight); each test fails fast."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fastavro
import fastavro._read_py
import fastavro._validation_py
import fastavro._write_py
import pytest

from shared.schema_registry import decoder as decoder_module
from shared.schema_registry.avro_binary import MAX_REPEATED_VALUES, decode, parse_writer_schema, repeated_values
from shared.schema_registry.client import RegistrySchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import NotAvro, confluent_frame
from tests.unit.shared.schema_registry.conftest import records_of
from tests.unit.shared.schema_registry.test_avro_binary import zigzag
from tests.unit.shared.schema_registry.test_decoder import _Holding
from tests.unit.shared.schema_registry.test_schema_bombs import CALLS, calls_into_the_codec_at_most

BRANCHES = 300  # a 24 KB schema
BOOLEAN_AND_NULLS = [{"name": "b", "type": "boolean"}, *({"name": f"n{i}", "type": "null"} for i in range(9))]
ITEMS = 1_000  # a 3 KB body, far below MAX_REPEATED_VALUES


def wide_union(branches: int) -> dict[str, Any]:
    """Top{xs: array<union{R0, R1, ... R<branches-1>}>}, each R<i> = {i: int}."""
    union = [{"type": "record", "name": f"R{i}", "fields": [{"name": "i", "type": "int"}]} for i in range(branches)]
    return {"type": "record", "name": "Top", "fields": [{"name": "xs", "type": {"type": "array", "items": union}}]}


def body_of(items: int, branch: int = 0, value: int = 7) -> bytes:
    return zigzag(items) + (zigzag(branch) + zigzag(value)) * items + zigzag(0)


def nested_unions(levels: int) -> dict[str, Any]:
    """Top{t: U<levels>}, U<i> = [A<i>{x: U<i-1>, a: int}, B<i>{x: U<i-1>}], U0 = null: unions of two records
    only, but a B value validates as an A all the way down before failing there, so fastavro's writer, trying
    A then B at each level, validates 2**levels times (a 4 KB schema of 20 levels: 12 s for a 20-byte body)."""
    inner: Any = "null"
    named: Any = "null"
    for level in range(1, levels + 1):
        a = {
            "type": "record",
            "name": f"A{level}",
            "fields": [{"name": "x", "type": inner}, {"name": "a", "type": "int"}],
        }
        b = {"type": "record", "name": f"B{level}", "fields": [{"name": "x", "type": named}]}
        inner, named = [a, b], [f"A{level}", f"B{level}"]
    return {"type": "record", "name": "Top", "fields": [{"name": "t", "type": inner}]}


@contextmanager
def calls_into_the_codec_and_fastavro_at_most(limit: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Raise :class:`TooMuchWork` once the block made ``limit`` Python calls into ``avro_binary`` and fastavro,
    whose reader, writer and validation run as their pure-Python twins (the same work, visible to a profiler),
    and again after the block: the codec takes any error of fastavro's writer for a value it cannot encode."""
    monkeypatch.setattr(fastavro, "schemaless_reader", fastavro._read_py.schemaless_reader)
    monkeypatch.setattr(fastavro, "schemaless_writer", fastavro._write_py.schemaless_writer)
    monkeypatch.setattr(fastavro._write_py, "_validate", fastavro._validation_py._validate)
    with calls_into_the_codec_at_most(limit, also=str(Path(fastavro.__file__).parent)):
        yield


def test_a_record_of_a_wide_union_costs_work_linear_in_its_schema_and_body() -> None:
    """The int check ran every branch's check on every item: branches x items calls."""
    assert ITEMS * 2 < MAX_REPEATED_VALUES
    schema = json.dumps(wide_union(BRANCHES))
    with calls_into_the_codec_at_most(CALLS):
        parsed = parse_writer_schema(schema)
        assert decode(parsed, body_of(ITEMS)) == {"xs": [{"i": 7}] * ITEMS}


def test_one_small_record_of_a_wide_union_costs_work_linear_in_its_schema_and_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the decoder, as processing and tools.redrive run it: a 78 KB schema (1,000 branches) and one 15 KB
    record (5,000 items, a tenth of MAX_REPEATED_VALUES) took ~7 s of CPU, in fastavro's writer re-encoding the
    value to compare it with its body (it validates every item against every branch) and in the int check. Both
    grow as branches x items: a 1 MB schema and a 150 KB record, within every bound, cost about 15 minutes."""
    values: list[bytes | None] = [confluent_frame("7", body_of(5_000, branch=999))]
    with calls_into_the_codec_and_fastavro_at_most(40 * (1_000 + 5_000), monkeypatch):
        batch = AvroDecoder(_Holding(wide_union(1_000))).decode(records_of(values), values)
    assert batch.values == [{"xs": [{"i": 7}] * 5_000}], batch.letters


def test_a_record_of_unions_of_two_records_nested_costs_work_linear_in_their_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not only wide unions: two branches nested 20 deep made fastavro's writer validate 2**20 times."""
    parsed = parse_writer_schema(json.dumps(nested_unions(20)))
    expected: Any = None
    for _ in range(20):  # B20{x: B19{x: ... B1{x: null}}}
        expected = {"x": expected}
    with calls_into_the_codec_and_fastavro_at_most(CALLS, monkeypatch):
        assert decode(parsed, zigzag(1) * 20) == {"t": expected}


def union_of_arrays(branches: int) -> dict[str, Any]:
    """Top{xs: array<union{R0, R1, ... R<branches-1>}>}, each R<i> = {ys: array<int>}."""
    array = {"type": "array", "items": "int"}
    union = [{"type": "record", "name": f"R{i}", "fields": [{"name": "ys", "type": array}]} for i in range(branches)]
    return {"type": "record", "name": "Top", "fields": [{"name": "xs", "type": {"type": "array", "items": union}}]}


def test_counting_a_record_of_a_wide_union_of_arrays_costs_work_linear_in_its_schema_and_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch's bound (MAX_BATCH_REPEATED_VALUES) counted what a record decoded to by running every branch's
    counter on each union value: 500 branches of records holding an array and a 15 KB record of 3,000 items made
    7.5 million calls, branches x items. Counted as the branch each item was written with (its body walked), the
    same number: each item 2 (its record and array) and its int. Decoding it takes ~45 calls an item."""
    counted: list[int] = []
    monkeypatch.setattr(decoder_module, "amplified", lambda repeats, _: counted.append(repeats) or 0)
    items = 3_000
    body = zigzag(items) + (zigzag(499) + zigzag(1) + zigzag(7) + zigzag(0)) * items + zigzag(0)
    values: list[bytes | None] = [confluent_frame("7", body)]
    with calls_into_the_codec_and_fastavro_at_most(80 * (500 + items), monkeypatch):
        batch = AvroDecoder(_Holding(union_of_arrays(500))).decode(records_of(values), values)
    assert batch.values == [{"xs": [{"ys": [7]}] * items}], batch.letters
    assert counted == [3 * items]


def test_a_union_value_counts_as_the_branch_it_was_written_with() -> None:
    """A{ys: array<int>} or B{ys: array<N>}, N a boolean and 9 nulls (11 values): three ints count 3, three Ns 33.
    Every branch's counter run on the value counted A's ints as Ns too (30): never less than what it holds."""
    heavy = {"type": "record", "name": "N", "fields": BOOLEAN_AND_NULLS}
    a = {"type": "record", "name": "A", "fields": [{"name": "ys", "type": {"type": "array", "items": "int"}}]}
    b = {"type": "record", "name": "B", "fields": [{"name": "ys", "type": {"type": "array", "items": heavy}}]}
    top = {"type": "record", "name": "Top", "fields": [{"name": "u", "type": [a, b]}]}
    parsed = parse_writer_schema(json.dumps(top))
    ints, ns = zigzag(0) + zigzag(3) + zigzag(1) * 3 + zigzag(0), zigzag(1) + zigzag(3) + b"\x01" * 3 + zigzag(0)
    assert repeated_values(parsed, decode(parsed, ints), ints) == 3
    assert repeated_values(parsed, decode(parsed, ns), ns) == 33


def test_what_the_re_encoding_refuses_the_walk_still_refuses_for_a_wide_union() -> None:
    """Bodies fastavro reads as made-up values are refused as they are for narrow unions: an int past 32 bits, a
    negative union index (fastavro picks from the end), a padded but legal varint is accepted."""
    parsed = parse_writer_schema(json.dumps(wide_union(BRANCHES)))
    with pytest.raises(NotAvro, match="outside 32 bits"):
        decode(parsed, body_of(1, value=2**31))
    with pytest.raises(NotAvro, match="union index -1"):
        decode(parsed, body_of(1, branch=-1))
    with pytest.raises(NotAvro, match="bytes left"):
        decode(parsed, body_of(1) + b"\x00")
    padded = zigzag(1) + zigzag(3) + b"\x8e\x00" + zigzag(0)  # 7 in two bytes: legal, not what fastavro writes
    assert decode(parsed, padded) == {"xs": [{"i": 7}]}


class _SharedRegistry:
    """A registry many teams share (Confluent Cloud): every id names a schema, someone else's, of a record this
    source does not read. Ids are small integers, so junk values (any 4 bytes after a 0) name real schemas."""

    kind = "confluent"
    max_call_seconds = 10.0

    def __init__(self) -> None:
        self.asked: list[str] = []

    def schema(self, schema_id: str) -> RegistrySchema:
        self.asked.append(schema_id)
        symbols = [f"S{schema_id}_{i}" for i in range(50)]
        enum = {"type": "enum", "name": f"E{schema_id}", "symbols": symbols}
        return RegistrySchema(
            "AVRO", json.dumps({"type": "record", "name": f"R{schema_id}", "fields": [{"name": "e", "type": enum}]})
        )

    def register(self, subject: str, schema: str) -> str:
        raise NotImplementedError


def _junk(decoder: AvroDecoder, ids: list[int]) -> None:
    values: list[bytes | None] = [confluent_frame(str(i), b"\x00") for i in ids]
    batch = decoder.decode(records_of(values), values)
    assert len(batch.values) == len(ids), batch.letters


def test_junk_values_naming_many_real_schema_ids_leave_a_bounded_memory_of_schemas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only unknown ids were bounded (MAX_UNKNOWN_IDS); every schema a registry served stayed parsed for the
    worker's life (a 1 MB schema: ~10 MB), up to the registry's whole content. Now the most recently used
    MAX_SCHEMAS stay, and a batch's own, however many; a forgotten one is fetched again."""
    monkeypatch.setattr(decoder_module, "MAX_SCHEMAS", 20)
    registry = _SharedRegistry()
    decoder = AvroDecoder(registry, clock=lambda: 0.0)
    for start in range(1, 200, 10):
        _junk(decoder, [1, *range(start + 1, start + 11)])  # the source's own schema 1 among each batch's junk
        assert len(decoder._schemas) <= 20
    assert registry.asked.count("1") == 1  # used by every batch: never forgotten
    _junk(decoder, list(range(1_000, 1_030)))  # more than MAX_SCHEMAS in one batch: all kept for it
    assert set(decoder._schemas) == {str(i) for i in range(1_000, 1_030)}
    _junk(decoder, [2])  # forgotten long ago: fetched again
    assert registry.asked.count("2") == 2 and len(decoder._schemas) == 20


def test_schemas_kept_are_bounded_by_the_size_of_their_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _SharedRegistry()
    size = len(registry.schema("100").text)
    monkeypatch.setattr(decoder_module, "MAX_SCHEMA_TEXT_BYTES", 5 * size)
    decoder = AvroDecoder(registry, clock=lambda: 0.0)
    for schema_id in range(100, 120):
        _junk(decoder, [100, schema_id])
    assert set(decoder._schemas) == {"100", *map(str, range(116, 120))}
