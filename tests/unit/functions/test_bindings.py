"""Binding conversions: Kafka events to core records, timestamps, and trace context in and out."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import azure.functions as func
import orjson
import pytest
from azure.functions import meta
from azure.functions.kafka import KafkaTriggerConverter

from functions import bindings
from functions.bindings import trace_carriers
from shared.records import KafkaRecord
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
        ("9" * 19, 9_999_999_999_999_999_999),  # past any date: the screening drops it, with its own reason
        ("0" * 4301, None),  # raised ValueError (Python's 4,300-digit limit for int(text)), failing the batch
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


def test_a_key_too_long_to_write_as_text_still_gives_a_record() -> None:
    """An integer key past Python's 4,300-digit limit for text raised ValueError out of the batch's conversion."""
    event = func.KafkaEvent(body=b"{}", key=10**4301, partition=0, offset=1, topic="mobile")  # type: ignore[arg-type]
    key = bindings.to_record(event).key
    assert key is not None and key.startswith("<int key not written as text: Exceeds the limit (4300 digits)")


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


def _amqp_encoded(value: str | bytes, *, symbol: bool = False) -> bytes:
    """``value`` as azure-eventhub's AMQP encoder writes an application property's value (the bytes a Kafka consumer
    of Event Hubs is handed for that property): text, binary, or with ``symbol`` an AMQP symbol."""
    from azure.eventhub._pyamqp._encode import encode_unknown, encode_value
    from azure.eventhub._pyamqp.types import TYPE, VALUE, AMQPTypes

    encoded = bytearray()
    if symbol:
        encode_value(encoded, {TYPE: AMQPTypes.symbol, VALUE: value if isinstance(value, bytes) else value.encode()})
    else:
        encode_unknown(encoded, value)
    return bytes(encoded)


def _header(name: str, raw: bytes) -> dict[str, str]:
    return {"Key": name, "Value": base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    ("value", "symbol"),
    [
        ("avro/binary+" + "a" * 32, False),  # str8-utf8
        ("t" * 300, False),  # str32-utf8
        (b"avro/binary+" + b"b" * 32, False),  # vbin8
        (b"u" * 300, False),  # vbin32
        ("avro/binary+" + "c" * 32, True),  # sym8
        ("v" * 300, True),  # sym32
    ],
)
def test_a_header_an_amqp_producer_set_reads_as_its_text(value: str | bytes, symbol: bool) -> None:
    """An Event Hubs AMQP producer's properties reach Kafka consumers AMQP-encoded (a type code and a length before
    the bytes): read as they are, an Event Hubs Avro record redriven or produced over AMQP had no schema id."""
    from functions.bindings import header_text

    text = value if isinstance(value, str) else value.decode()
    raw = _amqp_encoded(value, symbol=symbol)
    assert len(raw) > len(text.encode()) and raw.endswith(text.encode())  # a type code and a length, then the text
    assert header_text([_header("content-type", raw)], "content-type") == text
    assert header_text([_header("content-type", text.encode())], "content-type") == text  # sent as text: as it is


def test_an_amqp_encoding_whose_length_disagrees_is_not_text() -> None:
    from functions.bindings import header_text

    raw = _amqp_encoded("avro/binary+" + "a" * 32)
    assert header_text([_header("content-type", raw[:-1])], "content-type") is None
    assert header_text([_header("content-type", raw + b"x")], "content-type") is None
    assert header_text([_header("content-type", b"\xb1\x00")], "content-type") is None


def test_a_traceparent_an_amqp_producer_set_links_the_trace() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = func.KafkaEvent(body=b"{}", headers=[_header("traceparent", _amqp_encoded(traceparent))])
    assert trace_carriers([event]) == [{"traceparent": traceparent}]


def _host_batch(values: list[bytes], offsets: list[int]) -> tuple[meta.Datum, dict[str, meta.Datum]]:
    """A MANY batch as the Functions host sends it to the worker: ``values`` and one metadata entry per offset."""

    def as_json(value: object) -> meta.Datum:
        return meta.Datum(type="json", value=orjson.dumps(value).decode())

    metadata = {
        "KeyArray": as_json([f"k{offset}" for offset in offsets]),
        "PartitionArray": as_json([3] * len(offsets)),
        "OffsetArray": meta.Datum(type="collection_sint64", value=SimpleNamespace(sint64=offsets)),
        "TopicArray": meta.Datum(type="collection_string", value=SimpleNamespace(string=["users"] * len(offsets))),
        "TimestampArray": as_json(["2026-11-24T10:30:00Z"] * len(offsets)),
        "HeadersArray": as_json([[] for _ in offsets]),
    }
    return meta.Datum(type="collection_bytes", value=SimpleNamespace(bytes=values)), metadata


def test_a_batch_the_host_left_a_null_value_out_of_decodes_to_events_whose_values_are_read_again() -> None:
    """The host skips a tombstone's null value but keeps its metadata (azure-functions-host ``ToRpcByteArray``):
    the worker's converter raised AssertionError before the function ran, and the batch was retried for ever."""
    payload, metadata = _host_batch([b"{}", b"{}"], [10, 11, 12])
    events = KafkaTriggerConverter.decode(payload, trigger_metadata=metadata)
    assert bindings.values_not_handed_over(events) == [b"{}", b"{}"]
    assert [(e.topic, e.partition, e.offset, e.key, e.get_body()) for e in events] == [
        ("users", 3, offset, f"k{offset}", None) for offset in (10, 11, 12)
    ]
    assert [bindings.to_record(e).timestamp_ms for e in events] == [1795516200000] * 3


def test_a_batch_whose_values_match_its_metadata_decodes_as_before() -> None:
    payload, metadata = _host_batch([b"{}", b"[]"], [10, 11])
    events = KafkaTriggerConverter.decode(payload, trigger_metadata=metadata)
    assert not bindings.values_not_handed_over(events) and [e.get_body() for e in events] == [b"{}", b"[]"]


def test_more_values_than_metadata_is_not_taken_for_dropped_values() -> None:
    payload, metadata = _host_batch([b"{}", b"{}", b"{}"], [10, 11])
    with pytest.raises(AssertionError, match="mismatched"):
        KafkaTriggerConverter.decode(payload, trigger_metadata=metadata)


def test_tolerating_dropped_values_twice_wraps_the_converter_once() -> None:
    before = KafkaTriggerConverter.decode_multiple_events.__func__  # type: ignore[attr-defined]
    bindings.tolerate_dropped_values()
    assert KafkaTriggerConverter.decode_multiple_events.__func__ is before  # type: ignore[attr-defined]


def _reread_answering(
    monkeypatch: pytest.MonkeyPatch, answer: dict[tuple[int, int], bytes | None]
) -> list[dict[int, set[int]]]:
    """The broker's answer to a re-read, stubbed (Tansu cannot delete records); returns the re-reads asked for."""
    asked: list[dict[int, set[int]]] = []

    def read_values(_config: object, _topic: str, offsets: dict[int, set[int]]) -> dict[tuple[int, int], bytes | None]:
        asked.append({partition: set(members) for partition, members in offsets.items()})
        return dict(answer)

    monkeypatch.setattr(bindings, "read_values", read_values)
    monkeypatch.setattr(bindings, "_rereads", type(bindings._rereads)())
    return asked


def _records(offsets: list[int]) -> list[KafkaRecord]:
    return [KafkaRecord("users", 0, offset, "k", None, 1) for offset in offsets]


def test_the_hosts_values_go_to_the_records_the_broker_does_not_name_as_tombstones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A review's case: records 5 and 6 were gone from the topic (retention, compaction) by the re-read; they took no
    value and were dead-lettered although the host had handed their values over. The tombstone the broker names
    (7) accounts for the one value left out, so 5 and 6 are the host's two values, in order."""
    asked = _reread_answering(monkeypatch, {(0, 7): None})
    reread = bindings.with_values_from_broker("users", _records([5, 6, 7]), [b"v5", b"v6"])
    assert [(r.offset, r.value) for r in reread] == [(5, b"v5"), (6, b"v6"), (7, None)]
    again = bindings.with_values_from_broker("users", _records([5, 6, 7]), [b"v5", b"v6"])  # the batch retried
    assert [r.value for r in again] == [b"v5", b"v6", None] and asked == [{0: {5, 6, 7}}]


def test_records_gone_from_the_topic_are_tombstones_when_the_count_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _reread_answering(monkeypatch, {(0, 6): b"v6"})
    reread = bindings.with_values_from_broker("users", _records([5, 6, 7]), [b"v6"])
    assert [r.value for r in reread] == [None, b"v6", None]


def test_records_gone_whose_count_leaves_doubt_keep_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gone, one of them the tombstone: which one is unknown, so neither is given a value (null_value, logged)."""
    _reread_answering(monkeypatch, {(0, 7): b"v7"})
    reread = bindings.with_values_from_broker("users", _records([5, 6, 7]), [b"vx", b"v7"])
    assert [r.value for r in reread] == [None, None, b"v7"]


def test_a_broker_whose_values_disagree_with_the_hosts_is_taken_at_its_word(monkeypatch: pytest.MonkeyPatch) -> None:
    _reread_answering(monkeypatch, {(0, 5): b"other", (0, 6): None})
    reread = bindings.with_values_from_broker("users", _records([5, 6]), [b"v5"])
    assert [r.value for r in reread] == [b"other", None]


def test_of_two_content_type_headers_the_last_is_read() -> None:
    """Kafka's ``Headers.lastHeader`` and azure-schemaregistry-kafka-avro's deserializer take the last; the first
    was read here, so a record with two was decoded with another schema than Microsoft's reader would use."""
    from functions.bindings import header_text

    first, last = "avro/binary+" + "a" * 32, "avro/binary+" + "b" * 32
    headers = [_header("content-type", first.encode()), _header("x", b"1"), _header("Content-Type", last.encode())]
    assert header_text(headers, "content-type") == last
    assert header_text([*headers, {"Key": "content-type", "Value": None}], "content-type") is None
