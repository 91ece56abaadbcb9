"""Shared binding arguments and conversions for the Kafka trigger, and the worker's shared clients."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import cache, lru_cache
from types import SimpleNamespace
from typing import Any, Literal

import azure.functions as func
from azure.functions import meta
from azure.functions.decorators.core import StringifyEnum
from azure.functions.decorators.kafka import OAuthBearerMethod
from azure.functions.kafka import KafkaTriggerConverter
from opentelemetry import propagate

from shared.kafka_clients import consumer_config, read_values
from shared.lake import LakeStore, open_lake
from shared.records import KafkaRecord
from shared.schema_registry.wire import CONTENT_TYPE_HEADER
from shared.settings import SourceSettings, current_settings, load_source_settings, source_setting_name
from shared.source_model import epoch_ms
from shared.telemetry import configure as configure_telemetry

BROKER_LIST = "%KAFKA_BROKER_LIST%"
log = logging.getLogger("streamingpoc.bindings")  # exported: its warnings come from a thread the host drops
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
MAX_TRACE_CONTEXTS = 128  # distinct trace contexts decoded per batch; links are capped lower still

configure_telemetry(current_settings())  # once per worker: Python imports this module once, when the app is indexed


# Never written into a binding as a value, set or not: the host must resolve them (Key Vault references in Azure).
SECRET_SOURCE_FIELDS = frozenset({"kafka_sasl_password"})


def setting_ref(source: str, field: str) -> str:
    """A binding argument for a per-source app setting: ``%CLICKSTREAM_TOPIC%`` when the setting is set.

    When it is not set as the worker indexes the app, the setting's default (the model's, or what a
    Datagen config in ``sources/`` gives it) is written into the binding instead: ``func start``
    resolves ``%NAME%`` only from app settings, so a config dropped into ``sources/`` then runs with
    no settings added by hand. In Azure, Terraform sets every per-source setting, so deployed
    bindings always name settings. Secrets are always references.
    """
    name = source_setting_name(source, field)
    if name in os.environ or field in SECRET_SOURCE_FIELDS:
        return f"%{name}%"
    return str(getattr(load_source_settings(source, {}), field))


class _OAuthBearerMode(StringifyEnum):
    """The extension's ``BrokerAuthenticationMode.OAuthBearer`` (Kafka extension 4.0+), which the
    ``azure-functions`` 1.26 decorators do not list; the host parses the name case-insensitively."""

    OAUTHBEARER = 4


def kafka_auth(role: Literal["consumer"], source: str) -> dict[str, Any]:
    """Authentication arguments of ``source``'s Kafka trigger (the only Kafka binding: generators produce
    through ``shared.kafka_clients``).

    Called when the worker indexes the functions. The extension reads ``protocol``,
    ``authenticationMode`` and ``oAuthBearerMethod`` as enums, not ``%settings%``, so they are
    chosen here from KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_MECHANISM:

    - PLAINTEXT: nothing (local brokers).
    - SASL_SSL + PLAIN: user ``%KAFKA_SASL_USERNAME%`` (``$ConnectionString`` for Event Hubs) and a
      password setting per source, ``<SOURCE>_KAFKA_SASL_PASSWORD``, so that Azure can give each
      one the connection string of a rule on that one event hub with only Listen (the generators'
      producers use the app's identity instead: ``shared.kafka_clients``).
    - SASL_SSL + OAUTHBEARER: OIDC client credentials of a service principal (``KAFKA_OAUTH_*``);
      Entra ID roles on each event hub decide what it may do.
    """
    settings = current_settings()
    if settings.kafka_security_protocol != "SASL_SSL":
        return {}
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return {
            "protocol": "SaslSsl",
            "authentication_mode": _OAuthBearerMode.OAUTHBEARER,
            "o_auth_bearer_method": OAuthBearerMethod.OIDC,
            "o_auth_bearer_client_id": "%KAFKA_OAUTH_CLIENT_ID%",
            "o_auth_bearer_client_secret": "%KAFKA_OAUTH_CLIENT_SECRET%",
            "o_auth_bearer_token_endpoint_url": "%KAFKA_OAUTH_TOKEN_ENDPOINT_URL%",
            "o_auth_bearer_scope": "%KAFKA_OAUTH_SCOPE%",
        }
    return {
        "protocol": "SaslSsl",
        "authentication_mode": "Plain",
        "username": "%KAFKA_SASL_USERNAME%",
        "password": setting_ref(source, "kafka_sasl_password"),
    }


@lru_cache(maxsize=1)
def lake() -> LakeStore:
    """The worker's lake client, built on first use and reused by every invocation."""
    return open_lake(current_settings())


@cache
def source_settings(source: str) -> SourceSettings:
    return load_source_settings(source)


def to_record(event: func.KafkaEvent) -> KafkaRecord:
    """Adapt the worker's ``KafkaEvent`` (binary data type) to the core's record."""
    body = event.get_body()
    if body is not None and type(body) is not bytes:
        body = bytes(body)
    partition, offset, key = event.partition, event.offset, event.key
    return KafkaRecord(
        event.topic or str((event.metadata or {}).get("Topic", "")),  # metadata is rebuilt per access
        -1 if partition is None else int(partition),
        -1 if offset is None else int(offset),
        key if key is None or type(key) is str else _key_text(key),
        body,
        parse_timestamp_ms(event.timestamp),
    )


class ValueNotHandedOver(func.KafkaEvent):
    """A record of a batch whose values the host did not hand over one per record: which value is whose is found by
    reading the batch's records again from the broker (:func:`with_values_from_broker`).

    The Functions host leaves a null value (a tombstone's) out of a batch's values (``ToRpcByteArray`` skips null
    elements) but keeps every record's metadata, so no value can be matched to its record, and the worker's
    converter raises ``AssertionError`` before the function runs: retried for ever, the batch would stop its
    partitions. :func:`tolerate_dropped_values` makes the converter hand such a batch over as these events, each
    holding the values the host did hand over (``handed_over``, the batch's, in order).
    """

    def __init__(self, *, handed_over: list[bytes], **event: Any) -> None:
        super().__init__(**event)
        self.handed_over = handed_over

    def get_body(self) -> None:  # type: ignore[override]
        return None


_DecodeMany = Callable[[type, meta.Datum, Any], list[func.KafkaEvent]]


def _tolerating_dropped_values(decode: _DecodeMany) -> _DecodeMany:
    def decode_multiple_events(cls: type, data: meta.Datum, trigger_metadata: Any) -> list[func.KafkaEvent]:
        try:
            return decode(cls, data, trigger_metadata)
        except AssertionError:  # the bodies and the metadata disagree in number
            offsets = (trigger_metadata or {}).get("OffsetArray")
            values = getattr(data.value, "bytes", None) if data.type == "collection_bytes" else None
            if offsets is None or values is None or len(values) >= len(offsets.value.sint64):
                raise  # not what the host does to null values: nothing to re-read
            placeholders = SimpleNamespace(bytes=[b""] * len(offsets.value.sint64))
            events = decode(cls, meta.Datum(type="collection_bytes", value=placeholders), trigger_metadata)
            log.warning(
                "%d of %d values not handed over (null values): reading the batch's records from the broker",
                len(events) - len(values),
                len(events),
            )
            handed_over = [bytes(value) for value in values]
            return [
                ValueNotHandedOver(
                    handed_over=handed_over,
                    body=b"",
                    trigger_metadata=trigger_metadata,
                    key=event.key,
                    offset=event.offset,
                    partition=event.partition,
                    topic=event.topic,
                    timestamp=event.timestamp,
                    headers=event.headers,
                )
                for event in events
            ]

    decode_multiple_events.tolerates_dropped_values = True  # type: ignore[attr-defined]
    return decode_multiple_events


def tolerate_dropped_values(converter: Any = KafkaTriggerConverter) -> None:
    """Make the worker's Kafka trigger converter hand a batch with fewer values than records over as
    :class:`ValueNotHandedOver` events instead of raising. Idempotent."""
    current = converter.decode_multiple_events.__func__
    if not getattr(current, "tolerates_dropped_values", False):
        converter.decode_multiple_events = classmethod(_tolerating_dropped_values(current))


tolerate_dropped_values()


def values_not_handed_over(events: list[func.KafkaEvent]) -> list[bytes] | None:
    """The values the host handed over for ``events`` when it left some out (:class:`ValueNotHandedOver`), else None."""
    return events[0].handed_over if events and isinstance(events[0], ValueNotHandedOver) else None


RecordAt = tuple[str, int, int]  # a record by its topic, partition and offset
_REREADS_KEPT = 8  # batches whose re-read a worker keeps: a retried batch is not read again
_rereads: OrderedDict[tuple[RecordAt, ...], dict[RecordAt, bytes | None]] = OrderedDict()
_rereads_lock = threading.Lock()


def with_values_from_broker(source: str, records: list[KafkaRecord], handed_over: list[bytes]) -> list[KafkaRecord]:
    """``records`` (a batch the host left null values out of) with their values: the broker names which records are
    tombstones (``None``), and the values the host handed over (``handed_over``, in order) go to the others.

    Read once per batch and worker with the source's trigger credentials (a retry of the batch reuses it, so the
    retry cycle stays within ``maxPollIntervalMs``). A record the topic no longer holds (retention, compaction) is
    placed by counting, when the tombstones the broker names leave no doubt; otherwise it keeps no value (dead-
    lettered as ``null_value``) and is logged. Raises ``TransientError`` when the broker does not answer in time.
    """
    positions = tuple((record.topic, record.partition, record.offset) for record in records)
    with _rereads_lock:
        found = _rereads.get(positions)
    if found is None:
        found = _reread(source, positions)
        with _rereads_lock:
            _rereads[positions] = found
            while len(_rereads) > _REREADS_KEPT:
                _rereads.popitem(last=False)
    values = _paired(positions, found, handed_over)
    return [replace(record, value=value) for record, value in zip(records, values, strict=True)]


def _reread(source: str, positions: tuple[RecordAt, ...]) -> dict[RecordAt, bytes | None]:
    wanted: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for topic, partition, offset in positions:
        wanted[topic][partition].add(offset)
    config = consumer_config(
        current_settings(), source_settings(source), source_setting_name(source, "kafka_sasl_password")
    )
    found: dict[RecordAt, bytes | None] = {}
    for topic, offsets in wanted.items():
        found |= {(topic, *position): value for position, value in read_values(config, topic, offsets).items()}
    return found


def _paired(
    positions: tuple[RecordAt, ...], found: dict[RecordAt, bytes | None], handed_over: list[bytes]
) -> list[bytes | None]:
    """Each position's value: ``None`` where the broker holds a tombstone, the next value handed over elsewhere.
    Records the broker no longer holds are all values or all tombstones when the count says so; if it does not, or
    the broker's values disagree with the host's, the broker's own values (those gone keep none, logged)."""
    tombstones = sum(1 for position in positions if position in found and found[position] is None)
    gone = [position for position in positions if position not in found]
    missing = len(positions) - len(handed_over)  # how many the host left out
    if tombstones == missing or tombstones + len(gone) == missing:
        gone_are_tombstones = tombstones != missing
        remaining = iter(handed_over)
        paired: list[bytes | None] = []
        for position in positions:
            is_tombstone = found[position] is None if position in found else gone_are_tombstones
            paired.append(None if is_tombstone else next(remaining))
        if all(found.get(position, value) == value for position, value in zip(positions, paired, strict=True)):
            return paired
    if gone:
        log.warning(
            "%d records no longer in the topic, their values not placed: %s",
            len(gone),
            ", ".join(f"{topic}/{partition}@{offset}" for topic, partition, offset in gone[:20]),
        )
    return [found.get(position) for position in positions]


def _key_text(key: Any) -> str:
    """A key the worker handed over as something other than text (bytes, a number, JSON), as text: the record's
    key is kept and written as text, never the reason its batch fails."""
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key).decode("utf-8", "backslashreplace")
    if isinstance(key, str):
        return key
    try:
        return json.dumps(key, default=str)
    except ValueError as error:  # an integer past Python's 4,300-digit limit for text
        return f"<{type(key).__name__} key not written as text: {error}>"


def to_record_with_content_type(event: func.KafkaEvent) -> KafkaRecord:
    """:func:`to_record` plus the ``content-type`` header (Event Hubs Schema Registry Avro carries its id there)."""
    record = to_record(event)
    record.content_type = header_text(event.headers, CONTENT_TYPE_HEADER)
    return record


def header_text(headers: list[Any] | None, name: str) -> str | None:
    """The last header ``name`` (case-insensitive) as text, as Kafka's ``Headers.lastHeader`` reads it (and with it
    azure-schemaregistry-kafka-avro's deserializer, for ``content-type``); the extension hands values over in base64."""
    for header in reversed(headers or ()):
        if isinstance(header, dict) and str(header.get("Key", "")).lower() == name:
            return _base64_header_text(header.get("Value"))
    return None


def _base64_header_text(value: Any) -> str | None:
    """A header value as the extension hands it over (base64) as text; None for no value (null) or one that is not
    text."""
    if not isinstance(value, str):
        return None
    try:
        return header_value_text(base64.b64decode(value, validate=True))
    except (ValueError, UnicodeDecodeError):
        return None


# AMQP 1.0 type codes that hold bytes, with the width of the length that follows: vbin8, str8-utf8, sym8 (1 byte);
# vbin32, str32-utf8, sym32 (4 bytes).
_AMQP_TEXT_LENGTH_WIDTH = {0xA0: 1, 0xA1: 1, 0xA3: 1, 0xB0: 4, 0xB1: 4, 0xB3: 4}


def header_value_text(raw: bytes) -> str:
    """A header's value as text. A property an AMQP producer set (azure-eventhub's ``properties``, its tracing's
    ``traceparent``) reaches Kafka consumers of Event Hubs AMQP-encoded: a type code, a length, then UTF-8
    (github.com/Azure/azure-event-hubs-for-kafka, tutorials/interop). No UTF-8 text starts with those codes
    (continuation bytes), so text that was sent as text reads as it was; raises UnicodeDecodeError for other bytes."""
    width = _AMQP_TEXT_LENGTH_WIDTH.get(raw[0]) if raw else None
    if width is not None and len(raw) == 1 + width + int.from_bytes(raw[1 : 1 + width], "big"):
        raw = raw[1 + width :]
    return raw.decode()


def parse_timestamp_ms(value: Any) -> int | None:
    """The extension's record timestamp (ISO 8601, ``Z`` or an offset, up to 7 fraction digits) as epoch ms; epoch
    milliseconds (a number, or digits) as they are; anything else none, never the reason its batch fails."""
    if isinstance(value, str):
        return _parse_timestamp_ms(value) if value else None
    return value if type(value) is int else None


@lru_cache(maxsize=4096)  # records produced together share their millisecond: most of a batch hits
def _parse_timestamp_ms(value: str) -> int | None:
    if value.isascii() and value.isdigit():
        return int(value) if len(value) <= 19 else None  # more digits are past int64, and past any date
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return epoch_ms(moment)  # exactly: ``timestamp() * 1000``, a float, lands some instants a millisecond early


def trace_carriers(events: list[func.KafkaEvent]) -> list[dict[str, str]]:
    """The batch's distinct trace contexts, in order of first appearance, as text carriers.

    The extension hands header values over in base64. Only ``traceparent`` and ``tracestate``
    are read, and each distinct pair of raw values is decoded once: a generator tick stamps one
    ``traceparent`` on all its records, so a batch holds a handful. Undecodable values are skipped.
    """
    distinct: dict[tuple[tuple[str, str], ...], None] = {}
    previous: list[Any] | None = None
    for event in events:
        headers = event.headers
        if not headers or headers == previous:  # a tick's records arrive together with equal headers
            continue
        previous = headers
        raw = tuple(
            (name, value)
            for header in headers
            if isinstance(header, dict)
            and (name := str(header.get("Key", "")).lower()) in TRACE_HEADERS
            and isinstance(value := header.get("Value"), str)
        )
        if raw and raw not in distinct:
            distinct[raw] = None
            if len(distinct) >= MAX_TRACE_CONTEXTS:
                break
    return [carrier for raw in distinct if "traceparent" in (carrier := _decoded(raw))]


def _decoded(raw: tuple[tuple[str, str], ...]) -> dict[str, str]:
    carrier = {}
    for name, value in raw:
        if (text := _base64_header_text(value)) is not None:
            carrier[name] = text
    return carrier


def trace_headers() -> dict[str, str]:
    """W3C trace context of the current span (``traceparent``), empty when nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
