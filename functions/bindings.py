"""Shared binding arguments and conversions for the Kafka trigger and output bindings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Literal

import azure.functions as func
from opentelemetry import propagate

from shared.lake import LakeStore, open_lake
from shared.records import KafkaRecord
from shared.settings import SourceSettings, current_settings, load_source_settings, source_setting_name
from shared.telemetry import configure as configure_telemetry

BROKER_LIST = "%KAFKA_BROKER_LIST%"
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
MAX_TRACE_CONTEXTS = 128  # distinct trace contexts decoded per batch; links are capped lower still

configure_telemetry(current_settings())  # once per worker: Python imports this module once, when the app is indexed


def setting_ref(source: str, field: str) -> str:
    """A binding argument that names a per-source app setting, e.g. ``%CLICKSTREAM_TOPIC%``."""
    return f"%{source_setting_name(source, field)}%"


def kafka_auth(role: Literal["consumer", "producer"]) -> dict[str, Any]:
    """SASL arguments for a Kafka trigger (``consumer``) or output binding (``producer``).

    The extension reads ``protocol`` and ``authenticationMode`` as enums, not ``%settings%``,
    so they are chosen here, when the worker indexes the functions, from KAFKA_SECURITY_PROTOCOL.
    Each role has its own password setting so that Azure can give each a least-privilege
    credential (listen-only, send-only).
    """
    if current_settings().kafka_security_protocol == "SASL_SSL":
        password = "KAFKA_SASL_PASSWORD" if role == "consumer" else "KAFKA_PRODUCER_SASL_PASSWORD"
        return {
            "protocol": "SaslSsl",
            "authentication_mode": "Plain",
            "username": "%KAFKA_SASL_USERNAME%",
            "password": f"%{password}%",
        }
    return {}


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
    return KafkaRecord(
        topic=event.topic or str((event.metadata or {}).get("Topic", "")),  # metadata is rebuilt per access
        partition=int(event.partition if event.partition is not None else -1),
        offset=int(event.offset if event.offset is not None else -1),
        key=event.key,
        value=None if body is None else bytes(body),
        timestamp_ms=parse_timestamp_ms(event.timestamp),
    )


def parse_timestamp_ms(value: str | None) -> int | None:
    """The extension's record timestamp (ISO 8601, ``Z`` or an offset, up to 7 fraction digits) as epoch ms."""
    if not value:
        return None
    return _parse_timestamp_ms(value)


@lru_cache(maxsize=4096)  # records produced together share their millisecond: most of a batch hits
def _parse_timestamp_ms(value: str) -> int | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


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
        try:
            carrier[name] = base64.b64decode(value, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return carrier


def trace_headers() -> dict[str, str]:
    """W3C trace context of the current span (``traceparent``), empty when nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
