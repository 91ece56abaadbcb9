"""Fields a model does not know are kept: in ``_extra`` on the row path and the Arrow path alike,
and the record as received in ``_received``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest

from shared.batch import process_batch
from shared.dead_letters import Reason
from shared.extra_fields import extra_text, extra_texts, field_key
from shared.records import KafkaRecord
from shared.source_model import SHADOW_MARK, record_type, shadow_fields, wire_names
from shared.sources import SOURCES
from tests.conftest import datagen_source, records_for


def _with_unknown_fields(record: KafkaRecord, **fields: object) -> KafkaRecord:
    value = orjson.loads(record.value or b"{}") | fields
    return KafkaRecord(
        record.topic, record.partition, record.offset, record.key, orjson.dumps(value), record.timestamp_ms
    )


@pytest.mark.parametrize(("columnar", "keyed"), [(True, False), (False, False), (False, True)])
def test_unknown_fields_land_in_extra_and_clean_rows_have_none(columnar: bool, keyed: bool) -> None:
    source = SOURCES["clickstream"]
    records = records_for(source, 4)
    records[1] = _with_unknown_fields(records[1], campaign="spring", device={"os": "ios", "tags": [1, "x"]})
    batch = process_batch(source, records, max_record_bytes=1 << 20, columnar=columnar, keyed=keyed)
    assert all((part.table is not None) == columnar for part in batch), "clean or not, the Arrow path is kept"
    rows = batch.rows()
    assert [row["_extra"] for row in rows if row["_offset"] != 1] == [None, None, None]
    assert json.loads(rows[1]["_extra"]) == {"campaign": "spring", "device": {"os": "ios", "tags": [1, "x"]}}
    assert [row["_received"].encode() for row in rows] == [record.value for record in records]


def test_a_clean_batch_reports_no_extras_without_a_per_record_walk() -> None:
    source = SOURCES["clickstream"]
    events = [{"ip": "1", "userid": 1}] * 3
    assert extra_texts(source.model, events) is None
    assert extra_texts(source.model, [*events, {"ip": "1", "new": 1}]) == [None, None, None, '{"new":1}']


def test_an_aliased_field_is_not_an_unknown_one() -> None:
    """clickstream's ``_time`` validates into ``time_ms``; neither name is an unknown field."""
    source = SOURCES["clickstream"]
    batch = process_batch(source, records_for(source, 2), max_record_bytes=1 << 20)
    assert all(row["_extra"] is None for row in batch.rows())


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize("huge", [b"123456789012345678901234567890", b"-99999999999999999999999"])
def test_an_integer_beyond_64_bits_in_an_unknown_field_lands_whole_in_extra(columnar: bool, huge: bytes) -> None:
    """orjson cannot write it: the batch must not fail (its partition would retry it for ever)."""
    source = SOURCES["clickstream"]
    good = records_for(source, 3)
    odd = dataclasses.replace(good[1], value=good[1].value[:-1] + b',"note":' + huge + b"}")
    batch = process_batch(
        source, [good[0], odd, good[2]], max_record_bytes=1 << 20, columnar=columnar, keyed=not columnar
    )
    rows = batch.rows()
    assert len(rows) == 3 and not batch.dead_letters
    assert json.loads(rows[1]["_extra"]) == {"note": int(huge)}


def test_an_unknown_value_too_deep_for_any_encoder_is_named_and_kept_in_received() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert json.loads(extra_text({"deep": deep, "n": 2**70})) == {
        "deep": "<not encodable: see _received>",
        "n": "<not encodable: see _received>",
    }


@pytest.mark.parametrize(("columnar", "keyed"), [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("spelled", ['"time_ms"', '"time\\u005fms"'])
def test_a_producers_field_named_like_a_python_field_name_lands_in_extra(
    columnar: bool, keyed: bool, spelled: str
) -> None:
    """clickstream reads ``_time`` into ``time_ms``: a producer's own ``time_ms`` (however its JSON spells the
    name) is a field the model does not know, kept in ``_extra``, not hidden by the known field."""
    source = SOURCES["clickstream"]
    records = records_for(source, 3)
    value = (records[1].value or b"")[:-1] + f',{spelled}:"own","n":7}}'.encode()
    records[1] = dataclasses.replace(records[1], value=value)
    batch = process_batch(source, records, max_record_bytes=1 << 20, columnar=columnar, keyed=keyed)
    rows = batch.rows()
    assert not batch.dead_letters
    assert [row["_extra"] for row in rows if row["_offset"] != 1] == [None, None]
    assert json.loads(rows[1]["_extra"]) == {"time_ms": "own", "n": 7}


def _datagen_source(fields: list[dict[str, Any]]) -> Any:
    return datagen_source("fx", {"type": "record", "name": "R", "fields": fields})


def test_a_datagen_field_named_like_another_fields_python_name_lands_in_extra() -> None:
    """A Datagen field ``_x`` is the Python field ``f_x``; a producer's own ``f_x`` is unknown to the model."""
    source = _datagen_source([{"name": "_x", "type": "int"}])
    record = KafkaRecord("fx", 0, 0, "k", b'{"_x": 1, "f_x": "kept"}', 1_764_000_000_000)
    [row] = process_batch(source, [record], max_record_bytes=1 << 20).rows()
    assert json.loads(row["_extra"]) == {"f_x": "kept"}


@pytest.mark.parametrize("other", [{"name": "f_x", "type": "int"}, {"name": "y", "type": "int", "aliases": ["f_x"]}])
def test_a_python_name_that_another_field_is_sent_under_is_that_fields(other: dict[str, Any]) -> None:
    """Beside ``_x`` (Python ``f_x``), a field sent as ``f_x`` (its name, or an earlier name) is known: no shadow
    reads it, so it is not in ``_extra`` (a review found it there on every record)."""
    source = _datagen_source([{"name": "_x", "type": "int"}, other])
    record = KafkaRecord("fx", 0, 0, "k", b'{"_x": 1, "f_x": 2}', 1_764_000_000_000)
    batch = process_batch(source, [record], max_record_bytes=1 << 20)
    [row] = batch.rows()
    assert not batch.dead_letters and (row["_x"], row[other["name"]], row["_extra"]) == (1, 2, None)


def test_a_record_sending_a_shadow_fields_own_key_is_refused_and_other_marked_names_are_kept() -> None:
    """The key a shadow field reads under (``SHADOW_MARK`` + a Python name) cannot be sent: a record that
    does is a ``schema`` dead letter naming why, not a field silently taken for another. Any other name
    with the mark is an unknown field like any other."""
    source = SOURCES["clickstream"]
    [shadow] = shadow_fields(source.model)
    good = records_for(source, 2)
    forged, other = (
        _with_unknown_fields(good[0], **{shadow: 1}),
        _with_unknown_fields(good[1], **{SHADOW_MARK + "x": 2}),
    )
    batch = process_batch(source, [forged, other], max_record_bytes=1 << 20)
    [letter] = batch.dead_letters
    assert letter.record.offset == 0 and letter.reason is Reason.SCHEMA and "reserved" in letter.detail
    [row] = batch.rows()
    assert json.loads(row["_extra"]) == {SHADOW_MARK + "x": 2}


DATAGEN_FIELDS: dict[str, list[dict[str, Any]]] = {
    "datagen _x": [{"name": "_x", "type": "int"}],
    "datagen _x aliased": [{"name": "_x", "type": "int", "aliases": ["_a"]}],
    # the second diff review's: an earlier name equal to the Python name _x once took, beside its field, and the
    # Python name another field's first key took
    "datagen _x aliased f_x": [{"name": "_x", "type": "int", "aliases": ["f_x"]}],
    "datagen _x, y aliased f_x": [{"name": "_x", "type": "int"}, {"name": "y", "type": "int", "aliases": ["f_x"]}],
    "datagen _x, f_x": [{"name": "_x", "type": "int"}, {"name": "f_x", "type": "int"}],
}


@pytest.mark.parametrize("source_name", [*sorted(SOURCES), *DATAGEN_FIELDS])
def test_no_key_a_record_sends_is_dropped_unseen_by_validation(source_name: str) -> None:
    """Validation drops a sent key equal to a Python name of the record type that is read under another key.
    Review 2026-12-07: the guard refusing a shadow's own key was named ``SHADOW_MARK * 2 + name``, so a record
    sending that name landed without it (not in a column, not in ``_extra``). Every Python name of the record
    type, and each mark more in front of a shadow's, is now read by a field, refused, or kept in ``_extra``."""
    fields = DATAGEN_FIELDS.get(source_name)
    source = _datagen_source(fields) if fields else SOURCES[source_name]
    model = source.model
    if fields:
        sent = {field["name"]: number for number, field in enumerate(fields)}
        record = KafkaRecord("fx", 0, 0, "k", orjson.dumps(sent), 1_764_000_000_000)
    else:
        record = records_for(source, 1)[0]
    typed = record_type(model)
    names = set(getattr(typed, "__origin__", typed).__annotations__)
    wire = {key for name, info in model.model_fields.items() for key in wire_names(info, name)}
    shadows = shadow_fields(model)
    sent_keys = (names - wire) | {SHADOW_MARK * 2 + name for name in shadows.values()} | {SHADOW_MARK + "x"}
    # a field's earlier name sent beside its current one is not read: an unknown field, kept (the review's case)
    sent_keys |= {key for name, info in model.model_fields.items() for key in wire_names(info, name)} - {
        info.alias or name for name, info in model.model_fields.items()
    }
    for key in sorted(sent_keys):
        batch = process_batch(source, [_with_unknown_fields(record, **{key: "sent"})], max_record_bytes=1 << 20)
        if key in shadows:  # a shadow's own key: refused, naming why
            [letter] = batch.dead_letters
            assert letter.reason is Reason.SCHEMA and "reserved" in letter.detail, (key, letter)
            continue
        assert not batch.dead_letters, (key, batch.dead_letters)
        [row] = batch.rows()
        assert json.loads(row["_extra"] or "{}").get(shadows.get(key, key)) == "sent", (key, row["_extra"])


def _orders_record(address: dict[str, Any] | None = None, **top: object) -> KafkaRecord:
    """An orders record with ``address``'s fields added to its address and ``top`` to the record."""
    known = {"city": "City_26", "state": "State_19", "zipcode": 38140}
    value = {"ordertime": 1519171397721, "orderid": 0, "itemid": "Item_30", "orderunits": 0.5}
    value |= {"address": known | (address or {})} | top
    return KafkaRecord("orders", 0, 0, None, orjson.dumps(value), 1_764_000_000_000)


def test_extra_keeps_a_dotted_top_level_field_and_a_nested_unknown_field_apart() -> None:
    """orders: ``_extra`` names a nested unknown field ``address.zip``; a top-level field sent under that very
    name must not overwrite it (nor it the top-level one): the top-level name's dot is escaped."""
    record = _orders_record({"zip": "nested"}, **{"address.zip": "top"})
    (row,) = process_batch(SOURCES["orders"], [record], max_record_bytes=1 << 20).rows()
    extra = json.loads(row["_extra"])
    assert sorted(extra.values()) == ["nested", "top"]
    assert extra == {"address.zip": "nested", "address\\.zip": "top"}


@pytest.mark.parametrize(
    ("address", "top", "expected"),
    [
        ({}, {"a.b": 1, "a\\.b": 2, "a\\": 3}, {"a\\.b": 1, "a\\\\\\.b": 2, "a\\\\": 3}),
        ({"z.ip": 1, "z": 2}, {}, {"address.z\\.ip": 1, "address.z": 2}),
        ({"z\\": 1}, {"address.z\\": 2}, {"address.z\\\\": 1, "address\\.z\\\\": 2}),
    ],
)
def test_no_two_unknown_fields_share_a_key_in_extra(
    address: dict[str, Any], top: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Names holding ``.`` or ``\\`` have those escaped by a ``\\``: every field keeps its own key."""
    record = _orders_record(address, **top)
    (row,) = process_batch(SOURCES["orders"], [record], max_record_bytes=1 << 20).rows()
    assert json.loads(row["_extra"]) == expected


def test_an_unknown_fields_key_is_its_names_escaped_and_joined_by_dots() -> None:
    assert field_key("coupon") == "coupon" and field_key("address", "zip") == "address.zip"
    assert field_key("address.zip") == "address\\.zip" and field_key("a\\", "b") == "a\\\\.b"


def test_a_nested_records_unknown_fields_are_named_under_its_name_as_sent() -> None:
    """A Datagen record field ``_addr`` is the Python field ``f_addr``; its unknown fields are ``_addr.<name>``."""
    nested = {"type": "record", "name": "A", "fields": [{"name": "c", "type": "int"}]}
    source = _datagen_source([{"name": "_addr", "type": nested}])
    record = KafkaRecord("fx", 0, 0, "k", b'{"_addr": {"c": 1, "z": 2}}', 1_764_000_000_000)
    [row] = process_batch(source, [record], max_record_bytes=1 << 20).rows()
    assert json.loads(row["_extra"]) == {"_addr.z": 2}
