"""Schemas as the generator reads them: a config whose records could never be sent fails when indexed."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.datagen import avro
from shared.datagen.avro import SchemaProblem, parse_schema
from shared.datagen.config import QUICKSTARTS, DatagenConfigError, load_quickstart, quickstart_config
from shared.datagen.source import config_source
from shared.generator_ticks import generate_messages
from tests.conftest import FIXED_NOW
from tests.unit.shared.datagen.conftest import schema_source


def _record(*fields: tuple[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "r", "fields": [{"name": name, "type": kind} for name, kind in fields]}


def _string(**props: Any) -> dict[str, Any]:
    return {"type": "string", "arg.properties": props}


def _array(items: Any, **props: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, "arg.properties": props}


TOO_LARGE = {
    "one long string": (_record(("payload", _string(length=2_000_000))), "payload arg.properties: length"),
    "a length range": (_record(("payload", _string(length={"min": 0, "max": 1_000_000}))), "payload arg.properties"),
    "bytes": (_record(("blob", {"type": "bytes", "arg.properties": {"length": 800_000}})), "blob arg.properties"),
    "a regex": (_record(("code", _string(regex="[a-z]{990000}"))), "code arg.properties: regex"),  # in the step limit
    "an array of numbers": (_record(("ids", _array("long", length=100_000))), "ids arg.properties: length"),
    # each small, multiplied by nesting: the innermost length that makes the bytes is named
    "nested": (_record(("rows", _array(_string(length=2_000), length=1_000))), "rows[] arg.properties: length"),
    "map keys": (
        _record(
            ("tags", {"type": "map", "values": "int", "arg.properties": {"length": 1_000, "keys": {"length": 2_000}}})
        ),
        "tags arg.properties.keys: length",
    ),
    "many fields": (
        _record(*((f"f{n}", _string(length=100_000)) for n in range(10))),
        "f9 arg.properties: length lets a record reach",  # ten equal parts, none sendable together
    ),
    "a fixed": (_record(("blob", {"type": "fixed", "name": "f", "size": 2_000_000})), "a record can reach"),
    # a class counts at its widest character: 6 bytes for an escaped control character, 4 past U+FFFF
    "a regex of control characters": (
        _record(("code", _string(regex=r"[\x{0}-\x{1F}]{170000}"))),
        "code arg.properties: regex",
    ),
    "a regex of wide characters": (
        _record(("code", _string(regex=r"[a\x{10000}-\x{10FFFF}]{250000}"))),
        "code arg.properties: regex",
    ),
    # a string iteration of whole numbers is written with every digit: 1e300 is 301 characters, not 26
    "string iterations of whole numbers": (
        _record(("tags", _array(_string(iteration={"start": 1e300}), length=3_500))),
        "tags arg.properties: length",
    ),
}


@pytest.mark.parametrize("name", TOO_LARGE)
def test_a_schema_whose_largest_record_is_over_the_bound_is_refused_naming_the_option(name: str) -> None:
    schema, message = TOO_LARGE[name]
    with pytest.raises(SchemaProblem, match=f"^{re.escape(message)}") as failure:
        parse_schema(schema)
    assert f"{avro.MAX_RECORD_JSON_BYTES:,}" in str(failure.value)


def test_a_config_whose_records_can_never_be_sent_fails_when_indexed_with_its_option() -> None:
    with pytest.raises(DatagenConfigError, match=r"config\.schema\.string: payload arg\.properties: length lets"):
        schema_source([{"name": "payload", "type": _string(length=2_000_000)}])


def test_a_record_up_to_the_bound_is_accepted_and_never_larger_than_estimated() -> None:
    """The bound is on the largest record, as the generator makes it: one at the bound is accepted and sent."""
    length = avro.MAX_RECORD_JSON_BYTES - len('{"id":,"payload":""}') - len(str(-(2**31)))  # the largest int
    source = schema_source(
        [
            {"name": "id", "type": {"type": "int", "arg.properties": {"iteration": {"start": 0}}}},
            {"name": "payload", "type": _string(length=length)},
        ]
    )
    (message,) = generate_messages(source, 1, now=FIXED_NOW, seed=1, start_index=0)
    assert len(message.value.encode()) <= avro.MAX_RECORD_JSON_BYTES < 1_000_000
    with pytest.raises(DatagenConfigError, match="length"):
        schema_source([{"name": "payload", "type": _string(length=avro.MAX_RECORD_JSON_BYTES)}])


def test_a_class_of_every_character_but_the_surrogates_is_accepted_and_never_larger_than_estimated() -> None:
    regex = r"[\x{0}-\x{D7FF}\x{E000}-\x{10FFFF}]{50}"
    largest = avro.largest_json(parse_schema(_record(("code", _string(regex=regex)))))
    assert largest == len('{"code":""}') + 50 * 6  # a control character escaped as \u0000
    source = schema_source([{"name": "code", "type": _string(regex=regex)}])
    messages = generate_messages(source, 100, now=FIXED_NOW, seed=3, start_index=0)
    codes = [json.loads(m.value)["code"] for m in messages]
    assert all(len(code) == 50 for code in codes)
    assert max(len(json.dumps(c, ensure_ascii=False).encode()) for c in codes) > 50 * 3  # mostly past U+FFFF
    assert max(len(m.value.encode()) for m in messages) <= largest


@pytest.mark.parametrize(
    "iteration", [{"start": 1e300}, {"start": -1e300, "step": 1e280}, {"start": 0}, {"start": 0.5}]
)
def test_a_string_iteration_is_never_larger_than_estimated(iteration: dict[str, float]) -> None:
    largest = avro.largest_json(parse_schema(_record(("n", _string(iteration=iteration)))))
    source = schema_source([{"name": "n", "type": _string(iteration=iteration)}])
    messages = generate_messages(source, 20, now=FIXED_NOW, seed=1, start_index=2**40)
    assert max(len(json.dumps(json.loads(m.value), separators=(",", ":")).encode()) for m in messages) <= largest


@pytest.mark.parametrize("quickstart", sorted(QUICKSTARTS))
def test_every_quickstart_is_well_under_the_bound_and_its_records_under_the_estimate(quickstart: str) -> None:
    largest = avro.largest_json(parse_schema(load_quickstart(quickstart)))
    assert largest < avro.MAX_RECORD_JSON_BYTES // 100
    source = config_source(quickstart_config(quickstart, seed=5))
    messages = generate_messages(source, 200, now=FIXED_NOW, seed=5, start_index=0)
    assert max(len(json.dumps(json.loads(m.value), separators=(",", ":")).encode()) for m in messages) <= largest
