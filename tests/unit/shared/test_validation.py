"""Validation: every kind of bad record is a dead letter with its reason, alone or in a batch, and never
stops the rest of the batch."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import BaseModel, ValidationError

from shared.batch import process_batch
from shared.formats import format_named
from shared.landing.files import plan_batch
from shared.records import KafkaRecord
from shared.source_model import Column, record_validator
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.conftest import clickstream_record

CLICKSTREAM = get_source("clickstream")
SENSORS = get_source("sensors")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        ('{"ip": "1.2.3.4"}'.encode("utf-16-le"), "not_utf8"),  # no byte-order mark: ASCII and NUL bytes
        ('{"ip": "1.2.3.4"}'.encode("utf-16-be"), "not_utf8"),
        ('{"ip": "1.2.3.4"}'.encode("utf-32-le"), "not_utf8"),
        ('{"ip": "1.2.3.4"}'.encode("utf-32-be"), "not_utf8"),
        (b"{not json", "not_json"),
        (b'{"ip": "1.2.3.4"}', "schema"),
        (b"[1, 2]", "schema"),
        (None, "null_value"),
        (b'{"pad": "' + b"x" * 2000 + b'"}', "oversized"),
    ],
)
def test_each_kind_of_bad_record_is_dead_lettered_with_its_reason(value: bytes | None, reason: str) -> None:
    batch = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=1000)
    assert batch.rows() == []
    assert [letter.reason for letter in batch.dead_letters] == [reason]
    assert batch.dead_letters[0].record.offset == 100
    assert batch.dead_letters[0].detail


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_json_in_utf16_or_utf32_without_a_byte_order_mark_is_named(encoding: str) -> None:
    """ASCII JSON in UTF-16/32 is valid UTF-8 byte for byte (ASCII and NUL), so it was `not_json` "key must be a
    string", where the reasons table promises `not_utf8` for UTF-16."""
    value = json.dumps({"ip": "1.2.3.4", "note": "h\u00e9"}).encode(encoding)
    (letter,) = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=10_000).dead_letters
    assert letter.reason == "not_utf8" and letter.detail.startswith(f"{encoding.upper()} without a byte-order mark")


def test_a_number_longer_than_the_parser_reads_is_a_schema_dead_letter_that_says_so() -> None:
    """Valid JSON (Python's json reads it) that the parser refuses: it was `not_json`, which says the text is not
    JSON; the value is the problem, as an integer past int64 is."""
    for number in (b"9" * 4301, b"1" + b"0" * 4400 + b"e-4400"):  # an int, and 1.0 written long
        value = json.dumps({"ip": "1.2.3.4"}).encode()[:-1] + b', "big": ' + number + b"}"
        (letter,) = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=10_000).dead_letters
        assert letter.reason == "schema" and "more than 4,300 digits" in letter.detail


def test_bad_records_do_not_stop_the_rest_of_the_batch() -> None:
    good = records_for(CLICKSTREAM, 10)
    mixed = [*good[:5], clickstream_record(b"garbage", offset=5), *good[5:]]
    batch = process_batch(CLICKSTREAM, mixed, max_record_bytes=10_000)
    assert len(batch.rows()) == 10 and len(batch.dead_letters) == 1 and batch.record_count == 11


def _hostile(records: list[KafkaRecord]) -> list[KafkaRecord]:
    """Every third record replaced by a hostile value: broken bytes, JSON or schema, or an int beyond int64."""
    mixed = []
    for index, record in enumerate(records):
        value = record.value or b"{}"
        fields = json.loads(value)
        too_big = next((name for name, v in fields.items() if isinstance(v, int) and not isinstance(v, bool)), None)
        variants = [b"\xff\xfe{}", value[:-1], b"[1, 2]", b"{}", value[:-1] + b', "x": NaN}', b"null", b'"text"']
        if too_big:
            variants.append(json.dumps(fields | {too_big: 2**63}).encode())
        if index % 3 == 1:
            record = dataclasses.replace(record, value=variants[(index // 3) % len(variants)])
        mixed.append(record)
    return mixed


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_validating_a_batch_in_one_call_agrees_with_validating_each_record_alone(name: str) -> None:
    source = get_source(name)
    mixed = _hostile(records_for(source, 48))
    batch = process_batch(source, mixed, max_record_bytes=10_000)

    valid_alone = []
    for record in mixed:
        try:
            record_validator(source.model).validate_json(record.value or b"")
            valid_alone.append(record.offset)
        except ValidationError:
            pass
    alone = [process_batch(source, [record], max_record_bytes=10_000) for record in mixed]
    assert [row["_offset"] for row in batch.rows()] == valid_alone
    assert batch.rows() == [row for single in alone for row in single.rows()]
    letters = [(letter.record.offset, letter.reason, letter.detail) for letter in batch.dead_letters]
    assert letters == [(lt.record.offset, lt.reason, lt.detail) for single in alone for lt in single.dead_letters]
    assert len(batch.rows()) + len(batch.dead_letters) == batch.record_count == len(mixed)
    assert {letter.reason for letter in batch.dead_letters} >= {"not_utf8", "not_json", "schema"}


class _Picky(BaseModel):
    n: int

    @staticmethod
    def check_record(record: dict[str, int]) -> dict[str, int]:
        if record["n"] == 13:
            raise LookupError("unlucky")  # not a ValueError: pydantic does not wrap it, the batch call fails
        return record


def test_a_check_that_raises_outside_pydantic_costs_only_its_own_record() -> None:
    source = dataclasses.replace(
        SENSORS,
        name="picky",
        model=_Picky,
        columns=(Column("n", "long"),),
        transform=lambda event: {"n": event["n"]},
        event_time_ms=lambda event: None,
    )
    records = [KafkaRecord("picky", 0, n, None, json.dumps({"n": n}).encode(), FIXED_NOW_MS) for n in range(20)]
    batch = process_batch(source, records, max_record_bytes=10_000)
    assert [row["n"] for row in batch.rows()] == [n for n in range(20) if n != 13]
    assert [(letter.record.offset, letter.reason, letter.detail) for letter in batch.dead_letters] == [
        (13, "schema", "LookupError: unlucky")
    ]


@pytest.mark.parametrize(("source_name", "field"), [("sensors", "value"), ("orders", "orderunits")])
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_bare_non_finite_number_in_a_modelled_float_is_a_schema_dead_letter(
    source_name: str, field: str, literal: bytes
) -> None:
    """JSON's parser here accepts NaN and Infinity as bare literals; the model must refuse them, alone or in a batch."""
    source = get_source(source_name)
    good = records_for(source, 3)
    value = json.loads(good[1].value or b"")
    assert isinstance(value[field], float | int), f"{field} is not a number in a generated {source_name} record"
    value[field] = "__LITERAL__"
    poisoned = json.dumps(value).replace('"__LITERAL__"', literal.decode()).encode()
    assert literal in poisoned and b'"' + literal not in poisoned  # the bare literal, not a string
    records = [good[0], dataclasses.replace(good[1], value=poisoned), good[2]]
    batch = process_batch(source, records, max_record_bytes=1 << 20)
    assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(1, "schema")]
    assert field in batch.dead_letters[0].detail
    assert sorted(row["_offset"] for row in batch.rows()) == [0, 2]
    alone = process_batch(source, [records[1]], max_record_bytes=1 << 20)
    assert [letter.reason for letter in alone.dead_letters] == ["schema"]


def test_absurd_kafka_timestamps_are_treated_as_absent() -> None:
    source = SOURCES["users"]
    record = records_for(source, 1)[0]
    hostile = KafkaRecord(record.topic, 0, 0, None, record.value, 2**62)
    batch = process_batch(source, [hostile], max_record_bytes=1 << 20)
    row = batch.rows()[0]
    assert row["_kafka_timestamp"] is None and (row["_event_time"], row["_event_time_source"]) == (0, "none")
    assert plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)


def _framed(record: KafkaRecord, text: bytes, schema_id: int = 7) -> KafkaRecord:
    """``text`` in Confluent's wire format, as KafkaJsonSchemaSerializer (or Datagen's JsonSchemaConverter) sends."""
    return dataclasses.replace(record, value=b"\x00" + schema_id.to_bytes(4, "big") + text)


@pytest.mark.parametrize(("columnar", "keyed"), [(True, False), (False, False), (False, True)])
def test_json_in_the_confluent_wire_format_is_validated_by_its_text(columnar: bool, keyed: bool) -> None:
    """A JSON source fed by a JSON Schema serializer: the 5-byte header (magic byte 0, schema id) is not
    part of the record. Framed records land with their JSON text as received, beside plain ones; a framed
    record that is not valid is a dead letter for what its text lacks, not for the header."""
    good = records_for(CLICKSTREAM, 6)
    batch_records = [
        _framed(good[0], good[0].value or b""),
        good[1],
        _framed(good[2], b'{"ip": 1}'),
        _framed(good[3], b"{not json"),
        dataclasses.replace(good[4], value=b"\x00\x00\x00"),  # shorter than the header
        _framed(good[5], b"{not json", schema_id=1000),  # a header byte past 0x7f: the text is still judged
    ]
    batch = process_batch(CLICKSTREAM, batch_records, max_record_bytes=1 << 20, columnar=columnar, keyed=keyed)
    rows = batch.rows()
    assert [(row["_offset"], row["_received"].encode()) for row in rows] == [
        (0, good[0].value),
        (1, good[1].value),
    ]
    assert [(letter.record.offset, letter.reason.value) for letter in batch.dead_letters] == [
        (2, "schema"),
        (3, "not_json"),
        (4, "not_json"),
        (5, "not_json"),
    ]
    assert "ip" in batch.dead_letters[0].detail and batch.dead_letters[0].record.value == batch_records[2].value


@pytest.mark.parametrize("schema_id", [5, 300, 65_535, 100_001])
@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"7", b"1e400"])
def test_a_framed_json_body_that_is_not_an_object_is_a_schema_dead_letter_whatever_its_id(
    schema_id: int, body: bytes
) -> None:
    """Review 2026-12-07: only bodies opening an object were unframed, so the rest were judged with their header:
    ``not_json`` for a small id, "UTF-32-BE without a byte-order mark" for ids 256..65535, ``not_utf8`` past."""
    [record] = records_for(CLICKSTREAM, 1)
    (letter,) = process_batch(CLICKSTREAM, [_framed(record, body, schema_id)], max_record_bytes=10_000).dead_letters
    assert letter.reason == "schema" and "object" in letter.detail, letter


@pytest.mark.parametrize("schema_id", [5, 300, 1000, 0x01000100, 100_001])
def test_a_framed_value_takes_its_texts_reason_whatever_its_schema_id(schema_id: int) -> None:
    """The second diff review: a body with a C string's NUL terminator, a NaN literal or a BOM took a reason from its
    schema id's bytes (not_json, "UTF-32-BE", "UTF-16-BE" or not_utf8 by the id)."""
    [record] = records_for(CLICKSTREAM, 1)
    good = record.value or b""
    for body, reason in ((good + b"\x00", "not_json"), (b"NaN", "schema"), (b"\xef\xbb\xbf" + good, "not_json")):
        plain = process_batch(CLICKSTREAM, [dataclasses.replace(record, value=body)], max_record_bytes=10_000)
        framed = process_batch(CLICKSTREAM, [_framed(record, body, schema_id)], max_record_bytes=10_000)
        (alone,), (behind,) = plain.dead_letters, framed.dead_letters
        assert (behind.reason, behind.detail) == (alone.reason, alone.detail) and alone.reason == reason, body[:12]


def test_json_nested_deeper_than_the_parser_reads_is_a_schema_dead_letter_that_says_so() -> None:
    """Valid JSON the parser refuses for its depth (an unknown field nested 250 levels): it was ``not_json``."""
    value = json.dumps({"ip": "1.2.3.4"}).encode()[:-1] + b', "deep": ' + b"[" * 250 + b"]" * 250 + b"}"
    (letter,) = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=10_000).dead_letters
    assert letter.reason == "schema" and "nested deeper than the parser reads" in letter.detail
    for extra in (b', "big": 1e400', b', "n": NaN'):  # JSON orjson refuses: the standard library reads it
        value = json.dumps({"ip": "1.2.3.4"}).encode()[:-1] + extra + b', "deep": ' + b"[" * 250 + b"]" * 250 + b"}"
        (letter,) = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=10_000).dead_letters
        assert letter.reason == "schema" and "nested deeper than the parser reads" in letter.detail, extra
    for text in (b"[" * 300, b"[" * 300 + b"oops"):  # not JSON, however deep (the diff review: taken for schema)
        (letter,) = process_batch(CLICKSTREAM, [clickstream_record(text)], max_record_bytes=10_000).dead_letters
        assert letter.reason == "not_json", letter


def test_utf16_json_behind_a_zero_byte_keeps_its_own_reason_not_a_framed_bodys() -> None:
    """UTF-16-BE JSON starts with a zero byte and its sixth byte may open a JSON value (``[[1]]``): it holds NUL bytes,
    which framed UTF-8 JSON never does, so it is not read as framed."""
    (letter,) = process_batch(
        CLICKSTREAM, [clickstream_record("[[1]]".encode("utf-16-be"))], max_record_bytes=10_000
    ).dead_letters
    assert letter.reason == "not_utf8" and letter.detail.startswith("UTF-16-BE without a byte-order mark"), letter


def _number_fields(source_name: str) -> list[str]:
    value = json.loads(records_for(get_source(source_name), 1)[0].value or b"{}")
    return [name for name, item in value.items() if isinstance(item, int | float) and not isinstance(item, bool)]


@pytest.mark.parametrize("source_name", ["clickstream", "sensors", "users"])
def test_a_boolean_is_not_a_number_while_numeric_text_still_is(source_name: str) -> None:
    """Lax validation reads ``true`` as 1: ``"userid": true`` would count as user 1 in its state. Every number field
    of the hand-written models refuses booleans, naming what it takes; numeric text is read as before."""
    source = get_source(source_name)
    [good] = records_for(source, 1)
    value = json.loads(good.value or b"{}")
    assert _number_fields(source_name)
    for name in _number_fields(source_name):
        for flag in (True, False):
            odd = dataclasses.replace(good, value=json.dumps(value | {name: flag}).encode())
            [letter] = process_batch(source, [odd], max_record_bytes=1 << 20).dead_letters
            assert letter.reason.value == "schema" and "not true or false" in letter.detail, (name, letter.detail)
        as_text = dataclasses.replace(good, value=json.dumps(value | {name: str(value[name])}).encode())
        assert not process_batch(source, [as_text], max_record_bytes=1 << 20).dead_letters


@pytest.mark.parametrize("beside_a_tombstone", [False, True])
def test_a_record_of_exactly_max_record_bytes_lands_and_one_byte_more_is_oversized(beside_a_tombstone: bool) -> None:
    """The limit is the largest record that lands. A batch holding a tombstone screens each record on its own,
    and that screen took a record of exactly the limit for oversized: it landed only in batches without one."""
    good, other, last = records_for(CLICKSTREAM, 3)
    limit = len(good.value or b"")
    longer = dataclasses.replace(other, value=(good.value or b"")[:-1] + b', "pad": 0}')
    tombstone = [dataclasses.replace(last, value=None)] if beside_a_tombstone else []
    batch = process_batch(CLICKSTREAM, [good, *tombstone], max_record_bytes=limit)
    assert [row["_offset"] for row in batch.rows()] == [0]
    assert [(letter.record.offset, letter.reason.value) for letter in batch.dead_letters] == (
        [(2, "null_value")] if beside_a_tombstone else []
    )
    over = process_batch(CLICKSTREAM, [longer, *tombstone], max_record_bytes=limit)
    assert over.rows() == []
    assert [(letter.record.offset, letter.reason.value) for letter in over.dead_letters] == [(1, "oversized")] + (
        [(2, "null_value")] if beside_a_tombstone else []
    )
