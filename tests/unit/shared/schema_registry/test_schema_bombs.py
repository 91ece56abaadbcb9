"""Small writer schemas whose checks or records cost exponentially more than their size: each costs work in
proportion to its size, or its records are dead letters. Work is counted (Python calls into the codec),
not timed: the old code made 2**40 of them for these schemas, so a test fails at once instead of hanging."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from shared.schema_registry import avro_binary
from shared.schema_registry.avro_binary import (
    MAX_REPEATED_VALUES,
    BadSchema,
    Oversized,
    decode,
    parse_writer_schema,
    repeat_counter,
)
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import NotAvro, confluent_frame
from tests.unit.shared.schema_registry.conftest import records_of
from tests.unit.shared.schema_registry.test_avro_binary import zigzag
from tests.unit.shared.schema_registry.test_decoder import _Holding

LEVELS = 40  # 2**40 uses of R0: hours of work for anything expanding every use of a named type
CALLS = 100_000  # what checking and decoding one of these schemas may cost: several times the ~15,000 it takes


class TooMuchWork(Exception):
    pass


@contextmanager
def calls_into_the_codec_at_most(limit: int, also: str | None = None) -> Iterator[None]:
    """Raise :class:`TooMuchWork` inside the block once it made ``limit`` Python calls into ``avro_binary`` (and
    into files under ``also``), and again after the block: the codec may catch it (it takes any error of
    fastavro's writer for a value it cannot encode), which also stops the count."""
    codec, what = avro_binary.__file__, "the codec" if also is None else f"the codec and {also}"
    calls = 0

    def count(frame: FrameType, event: str, _: Any) -> None:
        nonlocal calls
        name = frame.f_code.co_filename
        if event == "call" and (name == codec or (also is not None and name.startswith(also))):
            calls += 1
            if calls > limit:
                raise TooMuchWork(f"more than {limit:,} calls into {what}")

    before = sys.getprofile()
    sys.setprofile(count)
    try:
        yield
    finally:
        sys.setprofile(before)
    if calls > limit:
        raise TooMuchWork(f"more than {limit:,} calls into {what}")


def nested(depth: int) -> dict[str, Any]:
    """A record nested ``depth`` deep, each level defined once: no named type reused, none recursive."""
    schema: dict[str, Any] = {"type": "record", "name": "L0", "fields": [{"name": "x", "type": "long"}]}
    for level in range(1, depth + 1):
        schema = {"type": "record", "name": f"L{level}", "fields": [{"name": "a", "type": schema}]}
    return schema


def doubling(levels: int, leaf: list[dict[str, Any]], also: list[dict[str, Any]]) -> dict[str, Any]:
    """R<i> = {a: R<i-1>, b: R<i-1>, *also}, R0 = {*leaf}: each level defined once (inside the next), used twice,
    so a value of R<levels> holds 2**levels R0s."""
    schema: dict[str, Any] = {"type": "record", "name": "R0", "fields": leaf}
    for level in range(1, levels + 1):
        fields = [{"name": "a", "type": schema}, {"name": "b", "type": f"R{level - 1}"}, *also]
        schema = {"type": "record", "name": f"R{level}", "fields": fields}
    return schema


def laughs(levels: int, leaf: list[dict[str, Any]]) -> dict[str, Any]:
    """Top{f0: R0, f1: R1, ...}: R<i> = {a: R<i-1>, b: R<i-1>}, each defined in its own field of Top, so a record
    of Top holds 2**levels R0s whatever its bytes (R0 of nulls: a body of 0 bytes)."""
    fields = [{"name": "f0", "type": {"type": "record", "name": "R0", "fields": leaf}}]
    for level in range(1, levels + 1):
        uses = [{"name": "a", "type": f"R{level - 1}"}, {"name": "b", "type": f"R{level - 1}"}]
        fields.append({"name": f"f{level}", "type": {"type": "record", "name": f"R{level}", "fields": uses}})
    return {"type": "record", "name": "Top", "fields": fields}


def test_a_schema_nesting_records_deep_parses_in_work_linear_in_its_depth() -> None:
    """Logical types were removed by mapping a record's fields twice: 2**depth calls, a 2 KB schema nesting 32
    deep took hours to parse, on every retry of its batch."""
    with calls_into_the_codec_at_most(CALLS):
        parsed = parse_writer_schema(json.dumps(nested(LEVELS)))
        assert decode(parsed, zigzag(-7)) == nested_value(LEVELS, {"x": -7})


def nested_value(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


NULL = [{"name": "x", "type": "null"}]
BOOLEAN = [{"name": "c", "type": "boolean"}]


def array_of(items: Any) -> dict[str, Any]:
    return {"type": "record", "name": "Top", "fields": [{"name": "xs", "type": {"type": "array", "items": items}}]}


# An array of R40, R0 = {x: null}, each R<i> also holding a boolean (so not zero-width): all fields of a fixed
# width. Counted, sized and int-checked, each expanding R<i-1> at both uses: 2**40 calls. A record with an item
# decodes to 2**41 values: oversized.
ARRAY_OF_DOUBLING = array_of(doubling(LEVELS, NULL, also=BOOLEAN))


def test_an_array_of_zero_width_records_reusing_a_named_type_is_refused_in_work_linear_in_its_size() -> None:
    """R40 of nulls only: zero-width, found so by expanding R<i-1> at both uses, 2**40 calls, before refusing it."""
    with calls_into_the_codec_at_most(CALLS), pytest.raises(BadSchema, match="zero bytes"):
        parse_writer_schema(json.dumps(array_of(doubling(LEVELS, NULL, also=[]))))


def test_checking_a_schema_reusing_a_named_type_twice_per_level_costs_work_linear_in_its_size() -> None:
    with calls_into_the_codec_at_most(CALLS):
        parsed = parse_writer_schema(json.dumps(ARRAY_OF_DOUBLING))
        assert repeat_counter(parsed) is not None
        assert decode(parsed, zigzag(0)) == {"xs": []}  # no item: the value's ints are checked, none found
        with pytest.raises(Oversized):  # one item: 2**40 R0s, sized (fixed width) and counted before decoding
            decode(parsed, zigzag(1) + b"\x00" * (LEVELS + 1) + zigzag(0))


def test_a_batch_of_such_a_schema_costs_work_linear_in_its_size() -> None:
    """Through the decoder: its item counter is built for the batch before any body is read."""
    values: list[bytes | None] = [confluent_frame("7", zigzag(0)), confluent_frame("7", zigzag(1) + b"\x00")]
    with calls_into_the_codec_at_most(CALLS):
        batch = AvroDecoder(_Holding(ARRAY_OF_DOUBLING)).decode(records_of(values), values)
    assert (batch.values, [str(letter.reason) for letter in batch.letters]) == ([{"xs": []}], ["oversized"])


def test_a_schema_whose_every_record_decodes_to_too_many_values_is_refused() -> None:
    """No array, no map: the item bound never counted it, and a record of Top holds 2**40 R0s from a 0-byte body.
    Its fixed weight (the values every record holds) is past MAX_REPEATED_VALUES: the schema is refused."""
    with (
        calls_into_the_codec_at_most(CALLS),
        pytest.raises(BadSchema, match="values outside its arrays and maps") as raised,
    ):
        parse_writer_schema(json.dumps(laughs(LEVELS, NULL)))
    assert f"more than the {MAX_REPEATED_VALUES:,}" in str(raised.value)
    within = laughs(3, NULL)  # 42 values: fine
    assert decode(parse_writer_schema(json.dumps(within)), b"")["f3"]["b"]["a"]["b"] == {"x": None}


def test_records_of_such_a_schema_are_oversized_dead_letters_naming_the_schema() -> None:
    """16 levels: a 0-byte body decoded to 2**18 dicts (2**22, >1 GB, at 20 levels; a MemoryError, taken for
    ``not_avro``, or the worker killed past that), not a dead letter. Such a schema's records are all oversized."""
    values: list[bytes | None] = [confluent_frame("7", b"")] * 2
    batch = AvroDecoder(_Holding(laughs(16, NULL))).decode(records_of(values), values)
    assert batch.values == []
    assert [str(letter.reason) for letter in batch.letters] == ["oversized"] * 2
    assert batch.letters[0].detail.startswith("schema 7: ") and "393,197 values" in batch.letters[0].detail


def test_running_out_of_memory_is_never_taken_for_a_record_that_is_not_avro(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError is the worker's problem, not the record's: it fails the batch (retried), no dead letter."""
    parsed = parse_writer_schema(json.dumps({"type": "record", "name": "T", "fields": [{"name": "x", "type": "int"}]}))

    def out_of_memory(*_: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(avro_binary.fastavro, "schemaless_reader", out_of_memory)
    with pytest.raises(MemoryError):
        decode(parsed, zigzag(1))
    with pytest.raises(NotAvro):  # what any other failure to read is
        monkeypatch.setattr(avro_binary.fastavro, "schemaless_reader", lambda *_: [][0])
        decode(parsed, zigzag(1))
