"""Consumed messages as the Kafka extension hands them to the Python worker, decoded by its own converter."""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import orjson
from azure.functions import meta
from azure.functions.kafka import KafkaTriggerConverter
from confluent_kafka import Message

log = logging.getLogger("devhost.kafka")
# Records whose headers confluent-kafka could not read (_headers): asking again would crash the process.
_UNREADABLE_HEADERS: OrderedDict[tuple[str | None, int | None, int | None], None] = OrderedDict()
_UNREADABLE_HEADERS_KEPT = 100_000  # more than the records of every batch in flight

DATETIME_MIN = "0001-01-01T00:00:00.000Z"  # .NET DateTime.MinValue: what a default (absent) DateTime serialises as
_DATETIME_RANGE_MS = (-62_135_596_800_000, 253_402_300_799_999)  # 0001-01-01 to 9999-12-31T23:59:59.999, UTC


@lru_cache(maxsize=4096)  # records produced together share their millisecond
def extension_timestamp(epoch_ms: int) -> str:
    """The record timestamp as the extension serialises a .NET DateTime (UTC, ISO 8601). One no DateTime can hold
    (a producer's year 10000) is handed over as DateTime.MinValue, which the app takes for no timestamp; it stopped
    the local host's consumer of the topic for good. The extension itself would throw reading it, by its code
    (docs/reliability.md, "Not dead letters"): this keeps the local host running, it is not what Azure does."""
    low, high = _DATETIME_RANGE_MS
    if not low <= epoch_ms <= high:
        return DATETIME_MIN
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=256)
def _utc_second(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).replace(tzinfo=None).isoformat()  # year 1 as 0001


def _key(message: Message) -> str | None:
    key = message.key()
    if key is None:
        return None
    return key.decode("utf-8", errors="replace") if isinstance(key, bytes) else str(key)


def _headers(message: Message) -> list[dict[str, str | None]]:
    """Headers as the extension serialises them: ``Value`` is the bytes in base64.

    A header key that is not UTF-8 (any client but librdkafka's may send one) makes confluent-kafka's
    ``headers()`` raise ``SystemError`` and keep a broken list in the message, which the next call crashes the
    process on (a segfault). Such a record is handed over without headers, and its headers are never asked for
    again: the extension would hand it over too (it decodes a key with replacement characters)."""
    position = (message.topic(), message.partition(), message.offset())
    if position in _UNREADABLE_HEADERS:
        return []
    try:
        raw = message.headers()
    except (SystemError, UnicodeDecodeError) as error:
        _UNREADABLE_HEADERS[position] = None
        if len(_UNREADABLE_HEADERS) > _UNREADABLE_HEADERS_KEPT:  # the oldest: long past any retry of its batch
            _UNREADABLE_HEADERS.popitem(last=False)
        log.warning("%s/%s@%s: headers not readable, handed over without them: %s", *position, error.__cause__ or error)
        return []
    if not raw:
        return []
    return _serialised_headers(tuple(raw.items()) if isinstance(raw, dict) else tuple(raw))


@lru_cache(maxsize=1024)  # a generator tick stamps the same headers on all its records
def _serialised_headers(headers: tuple[tuple[str, str | bytes | None], ...]) -> list[dict[str, str | None]]:
    """As the extension serialises them: a header with no value has ``"Value": null`` (its ``byte[]`` is null)."""
    return [
        {"Key": name, "Value": None if value is None else base64.b64encode(_bytes(value)).decode("ascii")}
        for name, value in headers
    ]


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def partition_of(message: Message) -> int:
    return int(message.partition() or 0)


def offset_of(message: Message) -> int:
    return int(message.offset() or 0)


def trigger_data(messages: Sequence[Message]) -> tuple[meta.Datum, dict[str, meta.Datum]]:
    """The ``collection_bytes`` payload and the ``*Array`` trigger metadata of a MANY-cardinality batch, as the
    Functions host builds them: a record with no value (a tombstone) has its metadata but no entry in the values,
    so the worker's converter cannot pair them (``functions.bindings.ValueNotHandedOver``)."""
    values, keys, partitions, offsets, topics, timestamps, headers = [], [], [], [], [], [], []
    for message in messages:  # one pass: this runs for every record the local host delivers
        value = message.value()
        if value is not None:  # as the host does (ToRpcByteArray): a null value is left out, its metadata kept
            values.append(value)
        keys.append(_key(message))
        partitions.append(message.partition() or 0)
        offsets.append(message.offset() or 0)
        topics.append(message.topic())
        timestamps.append(extension_timestamp(message.timestamp()[1]))
        headers.append(_headers(message))
    payload = meta.Datum(type="collection_bytes", value=SimpleNamespace(bytes=values))
    metadata = {
        "KeyArray": _json(keys),
        "PartitionArray": _json(partitions),
        "OffsetArray": meta.Datum(type="collection_sint64", value=SimpleNamespace(sint64=offsets)),
        "TopicArray": meta.Datum(type="collection_string", value=SimpleNamespace(string=topics)),
        "TimestampArray": _json(timestamps),
        "HeadersArray": _json(headers),
    }
    return payload, metadata


def _json(value: object) -> meta.Datum:
    return meta.Datum(type="json", value=orjson.dumps(value).decode())


def decode_batch(messages: Sequence[Message], cardinality: str) -> Any:
    """What the function parameter receives: ``list[KafkaEvent]`` (MANY) or one ``KafkaEvent`` (ONE)."""
    if cardinality.upper() == "MANY":
        payload, metadata = trigger_data(messages)
        return KafkaTriggerConverter.decode(payload, trigger_metadata=metadata)
    (message,) = messages
    single = {
        "Key": meta.Datum(type="string", value=_key(message) or ""),
        "Partition": meta.Datum(type="int", value=message.partition()),
        "Offset": meta.Datum(type="int", value=message.offset()),
        "Topic": meta.Datum(type="string", value=message.topic()),
        "Timestamp": meta.Datum(type="string", value=extension_timestamp(message.timestamp()[1])),
        "Headers": _json(_headers(message)),
    }
    event = KafkaTriggerConverter.decode(
        meta.Datum(type="bytes", value=message.value() or b""), trigger_metadata=single
    )
    return event
