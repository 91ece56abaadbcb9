"""The source's schema fills a field an older producer lacks with its default, or reads it under an old name (an
alias): the Avro record lands what the same record sent as JSON lands."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from shared.batch import process_batch
from shared.source_model import Row
from tests.unit.shared.schema_registry.conftest import records_of
from tests.unit.shared.schema_registry.test_decoder import THING, _produced, _read_as, _thing_source, _with

TAG = {"type": "fixed", "name": "Tag", "size": 2}
BYTES_DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
FIXED_DECIMAL = {"type": "fixed", "name": "Price", "size": 2, "logicalType": "decimal", "precision": 4, "scale": 2}
HOLDER = {"type": "record", "name": "Holder", "fields": [{"name": "b", "type": "bytes"}]}


def _rows(registry: str, reader: dict[str, Any], writer: dict[str, Any], sent: Any, as_json: Any) -> tuple[Row, Row]:
    """The row of ``sent`` produced as Avro with ``writer`` and read as ``reader``, and of ``as_json`` sent as JSON."""
    source = _thing_source(reader)
    batch = _read_as(registry, source, _produced(registry, writer, [sent]))
    assert [letter.detail for letter in batch.dead_letters] == []
    (avro_row,) = batch.rows()
    json_source = dataclasses.replace(source, value_format="json")
    json_batch = process_batch(
        json_source, records_of([orjson.dumps(as_json)], topic="things"), max_record_bytes=1 << 20
    )
    assert [letter.detail for letter in json_batch.dead_letters] == []
    (json_row,) = json_batch.rows()
    return avro_row, json_row


@pytest.mark.parametrize(
    ("field", "landed"),
    [
        ({"name": "blob", "type": "bytes", "default": "abcd"}, "YWJjZA=="),
        ({"name": "tag", "type": TAG, "default": "\u00ff\u0001"}, "/wE="),
        ({"name": "price", "type": BYTES_DECIMAL, "default": "\u0004\u00d2"}, 12.34),
        ({"name": "price", "type": FIXED_DECIMAL, "default": "\u0004\u00d2"}, 12.34),
        ({"name": "blob", "type": ["bytes", "null"], "default": "ab"}, "YWI="),
        ({"name": "holder", "type": HOLDER, "default": {"b": "YWJjZA=="}}, None),
    ],
    ids=["bytes", "fixed", "decimal", "fixed decimal", "[bytes, null]", "bytes inside a record default"],
)
def test_a_bytes_default_the_producer_lacks_lands_as_from_json(
    registry: str, field: dict[str, Any], landed: Any
) -> None:
    """A bytes default is text of code points 0-255 (Avro's JSON form), base64 text on the JSON path. fastavro
    filled it as that text: 'abcd' landed as the base64 text 'abcd' (other bytes), and text that is not base64
    was a dead letter ``schema``. Values inside a record default are the JSON converter's form (base64 text) on
    both paths."""
    value = {"id": 1, "name": "a"}
    avro_row, json_row = _rows(registry, _with(field), THING, value, value)
    if landed is not None:
        assert json_row[field["name"]] == landed
    assert avro_row == json_row


def test_a_bytes_default_by_its_type_name_lands_as_from_json(registry: str) -> None:
    reader = THING | {
        "fields": [*THING["fields"], {"name": "tag", "type": TAG}, {"name": "old", "type": "Tag", "default": "ab"}]
    }
    writer = _with({"name": "tag", "type": TAG})
    value = {"id": 1, "name": "a", "tag": b"\xff\x01"}
    avro_row, json_row = _rows(registry, reader, writer, value, value | {"tag": "/wE="})
    assert (json_row["old"], avro_row["old"]) == ("YWI=", "YWI=")
    assert avro_row | {"_received": None} == json_row | {"_received": None}


def test_a_bytes_default_inside_a_nested_record_lands_as_the_record_holding_it_from_json(registry: str) -> None:
    """The same record sent as JSON, lacking the nested field too, takes its default alike (the JSON path filled
    top-level fields only, and the record was a dead letter ``schema``)."""
    inner = {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "long"}]}
    added = inner | {"fields": [*inner["fields"], {"name": "b", "type": "bytes", "default": "abcd"}]}
    value = {"id": 1, "name": "a", "inner": {"x": 2}}
    avro_row, json_row = _rows(
        registry, _with({"name": "inner", "type": added}), _with({"name": "inner", "type": inner}), value, value
    )
    assert avro_row["inner_b"] == "YWJjZA=="
    assert avro_row | {"_received": None} == json_row | {"_received": None}


def test_a_field_read_under_its_old_name_is_not_also_in_extra(registry: str) -> None:
    """Read under its alias, the old name was also kept as a field only the producer has: in _extra (which
    compaction's drift report counts as a new field), where JSON gives none."""
    reader = _with({"name": "title", "type": "string", "aliases": ["name"]}, replacing="name")
    value = {"id": 1, "name": "a"}
    avro_row, json_row = _rows(registry, reader, THING, value, value)
    assert (json_row["title"], json_row["_extra"]) == ("a", None)
    assert avro_row == json_row


def _inner(fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": "Inner", "fields": fields}


OLD_INNER = _inner([{"name": "name", "type": "string"}, {"name": "more", "type": "long"}])
NEW_INNER = _inner([{"name": "title", "type": "string", "aliases": ["name"]}])


@pytest.mark.parametrize(
    ("wrap", "sent"),
    [
        (lambda inner: inner, {"name": "a", "more": 5}),
        (lambda inner: ["null", inner], {"name": "a", "more": 5}),
        (lambda inner: {"type": "array", "items": inner}, [{"name": "a", "more": 5}]),
    ],
    ids=["record", "record in a union", "array items"],
)
def test_a_nested_field_read_under_its_old_name_is_not_also_kept(registry: str, wrap: Any, sent: Any) -> None:
    """The same record sent as JSON, under the old name too, is read alike (the JSON path read nested fields by
    their names only: a dead letter ``schema``); the field only the producer has (``more``) is kept on both."""
    value = {"id": 1, "name": "a", "inner": sent}
    avro_row, json_row = _rows(
        registry,
        _with({"name": "inner", "type": wrap(NEW_INNER)}),
        _with({"name": "inner", "type": wrap(OLD_INNER)}),
        value,
        value,
    )
    assert avro_row | {"_received": None} == json_row | {"_received": None}


def test_a_nested_record_with_both_names_keeps_the_field_and_the_old_name_apart() -> None:
    """Sent under both names, the field is its own name's value, and the old name a field only the producer has."""
    source = dataclasses.replace(_thing_source(_with({"name": "inner", "type": NEW_INNER})), value_format="json")
    sent = {"id": 1, "name": "a", "inner": {"name": "old", "title": "new"}}
    batch = process_batch(source, records_of([orjson.dumps(sent)], topic="things"), max_record_bytes=1 << 20)
    (row,) = batch.rows()
    assert (row["inner_title"], orjson.loads(row["_extra"])) == ("new", {"inner.name": "old"})
