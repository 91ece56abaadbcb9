"""Consumed messages as the Kafka extension hands them to the Python worker."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest
from confluent_kafka import Message

from devhost.kafka.events import decode_batch, extension_timestamp
from functions.bindings import ValueNotHandedOver, header_text, to_record
from shared.sources import SOURCES
from shared.validation import validate_batch
from tests.conftest import FIXED_NOW_MS


def _message(offset: int, value: bytes | None, key: bytes | None = b"user-1") -> Message:
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    return Message(
        topic="clickstream", partition=2, offset=offset, key=key, value=value, headers=headers,
        timestamp=(1, FIXED_NOW_MS + offset),
    )  # fmt: skip


def test_many_cardinality_batch_decodes_to_the_workers_kafka_events() -> None:
    events = decode_batch([_message(7, b'{"a": 1}'), _message(8, b"\xff", key=None)], "MANY")
    assert [type(e) for e in events] == [func.KafkaEvent, func.KafkaEvent]
    first, second = events
    assert (first.topic, first.partition, first.offset, first.key) == ("clickstream", 2, 7, "user-1")
    assert first.get_body() == b'{"a": 1}' and second.get_body() == b"\xff" and second.key is None
    assert base64.b64decode(first.headers[0]["Value"]).startswith(b"00-0af7")
    records = [to_record(e) for e in events]
    assert [r.timestamp_ms for r in records] == [FIXED_NOW_MS + 7, FIXED_NOW_MS + 8]
    assert (records[0].partition, records[0].offset, records[0].value) == (2, 7, b'{"a": 1}')


def test_a_tombstone_is_left_out_of_the_values_as_the_host_does_and_its_batch_still_decodes() -> None:
    """The Functions host drops a null value from a batch's values and keeps its metadata; the local host handed it
    over as b"" instead, so the worker's converter never raised here as it does in Azure (retried for ever: a
    stalled partition). Now the batch decodes to events whose values are read again from the broker."""
    events = decode_batch([_message(7, b'{"a": 1}'), _message(8, None), _message(9, b"")], "MANY")
    assert [type(e) for e in events] == [ValueNotHandedOver] * 3
    assert [(e.partition, e.offset, e.key, e.get_body()) for e in events] == [
        (2, 7, "user-1", None),
        (2, 8, "user-1", None),
        (2, 9, "user-1", None),
    ]
    assert [to_record(e).timestamp_ms for e in events] == [FIXED_NOW_MS + 7, FIXED_NOW_MS + 8, FIXED_NOW_MS + 9]


def test_a_header_with_no_value_arrives_as_null_as_the_extension_hands_it_over() -> None:
    """The extension's header Value is a byte[] that stays null; the local host sent "" (base64 of nothing), so the
    app's null branch never ran here and a content-type header with no value read as "" rather than None."""
    message = Message(
        topic="orders", partition=0, offset=1, key=None, value=b"{}", headers=[("content-type", None)],
        timestamp=(1, FIXED_NOW_MS),
    )  # fmt: skip
    (event,) = decode_batch([message], "MANY")
    assert event.headers == [{"Key": "content-type", "Value": None}]
    assert header_text(event.headers, "content-type") is None


@pytest.mark.parametrize("timestamp_ms", [253_402_300_800_000, 2**62, -62_135_596_801_000])
def test_a_kafka_timestamp_no_datetime_holds_is_handed_over_as_none_not_a_dead_consumer(timestamp_ms: int) -> None:
    """A producer's year-10000 (or year-0) timestamp raised in the host's decoding, outside the invocation, and
    stopped the topic's consumer for good (a review, against Tansu). It arrives as DateTime.MinValue, which the
    app takes for no timestamp: the record lands by its event time, or is dead-lettered, like one with none."""
    message = Message(
        topic="orders", partition=0, offset=3, key=None, value=b"{}", headers=None, timestamp=(1, timestamp_ms)
    )
    (event,) = decode_batch([message], "MANY")
    assert event.timestamp == "0001-01-01T00:00:00.000Z"
    assert (
        validate_batch(SOURCES["orders"], [to_record(event)], max_record_bytes=1000).dead_letters[0].record.timestamp_ms
        is None
    )


def test_years_before_1000_are_written_with_four_digits_as_dotnet_does() -> None:
    assert extension_timestamp(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    assert extension_timestamp(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"


def test_one_cardinality_gives_a_single_event() -> None:
    event = decode_batch([_message(3, b"x")], "ONE")
    assert isinstance(event, func.KafkaEvent) and event.offset == 3 and event.get_body() == b"x"
