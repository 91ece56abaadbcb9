"""Binding conversions: Kafka events to core records, timestamps, and trace context in and out."""

from __future__ import annotations

import azure.functions as func
import pytest

from functions import bindings
from functions.bindings import trace_carriers
from tests.unit.conftest import b64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T10:30:00.1234567Z", 1795516200123),
        ("2026-11-24T10:30:00+00:00", 1795516200000),
        ("", None),
        (None, None),
        ("garbage", None),
        ("1795516200000", 1795516200000),  # review 15: epoch milliseconds as text lost the Kafka time
        (1795516200000, 1795516200000),  # ... and as a number raised TypeError outside the batch's watch: a stall
        ([1, 2], None),
        (True, None),
    ],
)
def test_kafka_record_timestamps_from_the_extension_parse(text: object, expected: int | None) -> None:
    assert bindings.parse_timestamp_ms(text) == expected


def test_kafka_event_becomes_a_core_record() -> None:
    event = func.KafkaEvent(
        body=b'{"a":1}', key="k1", partition=2, offset=99, topic="mobile", timestamp="2026-11-24T10:30:00Z"
    )
    record = bindings.to_record(event)
    assert (record.topic, record.partition, record.offset, record.key, record.value) == (
        "mobile",
        2,
        99,
        "k1",
        b'{"a":1}',
    )
    assert record.timestamp_ms == 1795516200000


@pytest.mark.parametrize(("key", "text"), [(7, "7"), (b"k\xff", "k\\xff"), ({"id": 1}, '{"id": 1}'), (None, None)])
def test_a_key_the_worker_hands_over_as_other_than_text_becomes_text(key: object, text: str | None) -> None:
    """Review 15: an int, bytes or JSON key reached the dead-letter writer as itself and failed the batch with an
    AttributeError, for ever; the record's key is kept as text instead."""
    event = func.KafkaEvent(body=b"{}", key=key, partition=0, offset=1, topic="mobile")  # type: ignore[arg-type]
    assert bindings.to_record(event).key == text


def test_trace_context_of_the_current_span_becomes_a_header() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("generate") as span:
        headers = bindings.trace_headers()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert bindings.trace_headers() == {}


def test_trace_carriers_are_the_distinct_trace_headers_in_order_of_first_appearance() -> None:
    first, second = f"00-{1:032x}-{1:016x}-01", f"00-{2:032x}-{2:016x}-01"
    events = [
        func.KafkaEvent(body=b"{}", headers=[{"Key": "traceparent", "Value": b64(first)}, {"Key": "x", "Value": "!"}]),
        func.KafkaEvent(body=b"{}", headers=[{"Key": "TraceParent", "Value": b64(second)}]),
        func.KafkaEvent(body=b"{}", headers=[{"Key": "traceparent", "Value": b64(first)}]),
        func.KafkaEvent(body=b"{}", headers=[{"Key": "traceparent", "Value": b64(second)}]),
        func.KafkaEvent(body=b"{}", headers=[{"Key": "traceparent", "Value": "not base64!"}]),
        func.KafkaEvent(body=b"{}", headers=[{"Key": "tracestate", "Value": b64("a=b")}]),  # no traceparent
        func.KafkaEvent(body=b"{}", headers=None),
    ]
    assert trace_carriers(events) == [{"traceparent": first}, {"traceparent": second}]


def test_trace_carriers_keep_tracestate_and_decode_no_other_header() -> None:
    parent = f"00-{3:032x}-{3:016x}-01"
    headers = [
        {"Key": "traceparent", "Value": b64(parent)},
        {"Key": "tracestate", "Value": b64("vendor=1")},
        {"Key": "payload", "Value": b64("secret")},
    ]
    assert trace_carriers([func.KafkaEvent(body=b"{}", headers=headers)]) == [
        {"traceparent": parent, "tracestate": "vendor=1"}
    ]


def test_kafka_timestamps_after_2038_are_read_to_the_millisecond() -> None:
    """The extension's ISO timestamp as epoch ms via ``timestamp() * 1000`` (a float) truncates some instants one
    millisecond early; ``shared.source_model.epoch_ms`` is exact."""
    assert bindings.parse_timestamp_ms("2038-04-28T09:39:41.2980000Z") == 2_156_060_381_298


def test_a_header_with_no_value_is_none_not_the_text_of_a_null() -> None:
    """The extension hands a header with no value over as null: ``str(None)`` is "None", valid base64 whose bytes
    are not UTF-8, so it was None only by accident; a value that decodes ("bnVsbA==" is "null") must not mislead."""
    from functions.bindings import header_text

    assert header_text([{"Key": "content-type", "Value": None}], "content-type") is None
    assert header_text([{"Key": "content-type"}], "content-type") is None
    assert header_text([{"Key": "Content-Type", "Value": "bnVsbA=="}], "content-type") == "null"
