"""Decode, validate and transform one batch of raw records. Pure: no I/O, never raises for bad data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from shared.records import KafkaRecord
from shared.sources.base import Row, Source, record_validator

# An event's own time is trusted within this window around its Kafka record timestamp.
MAX_EVENT_AGE_MS = 7 * 24 * 3600 * 1000
MAX_EVENT_LEAD_MS = 3600 * 1000
LATEST_EVENT_MS = 4_102_444_800_000  # 2100-01-01: an event time without a Kafka timestamp must be before it


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: KafkaRecord
    reason: str  # not_utf8 | not_json | schema | oversized | null_value | transform_error
    detail: str


@dataclass(slots=True)
class ProcessedBatch:
    """What one invocation produced for one source: landed rows and dead letters."""

    source: Source
    rows: list[Row] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0


def process_batch(
    source: Source, records: Iterable[KafkaRecord], *, max_record_bytes: int, now_ms: int
) -> ProcessedBatch:
    """Validate and transform ``records``; each bad one becomes a :class:`DeadLetter` with its reason."""
    batch = ProcessedBatch(source)
    validate_json = record_validator(source.model).validate_json
    for record in records:
        batch.records += 1
        value = record.value
        if not value:  # the Functions worker hands a tombstone's null value over as empty bytes
            batch.dead_letters.append(DeadLetter(record, "null_value", "record has no value (tombstone or empty)"))
            continue
        if len(value) > max_record_bytes:
            detail = f"{len(value)} bytes exceeds MAX_RECORD_BYTES={max_record_bytes}"
            batch.dead_letters.append(DeadLetter(record, "oversized", detail))
            continue
        try:
            event = validate_json(value)
        except ValidationError as error:
            batch.dead_letters.append(_classify(record, value, error))
            continue
        try:
            row = source.transform(event)
        except Exception as error:  # a transform bug must not stop the stream: park the record
            batch.dead_letters.append(DeadLetter(record, "transform_error", f"{type(error).__name__}: {error}"))
            continue
        _add_lineage(row, record, source.event_time_ms(event), now_ms)
        batch.rows.append(row)
    return batch


def _classify(record: KafkaRecord, value: bytes, error: ValidationError) -> DeadLetter:
    issues = error.errors(include_url=False, include_input=False)
    if any(issue["type"] == "json_invalid" for issue in issues):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return DeadLetter(record, "not_utf8", str(decode_error))
        return DeadLetter(record, "not_json", issues[0]["msg"])
    detail = "; ".join(f"{'.'.join(map(str, issue['loc'])) or '<record>'}: {issue['msg']}" for issue in issues[:10])
    return DeadLetter(record, "schema", detail)


def _add_lineage(row: Row, record: KafkaRecord, event_ms: int | None, now_ms: int) -> None:
    """Lineage columns. The hour a row lands in never depends on when it was processed: a record
    with no Kafka timestamp keeps its own time, or lands at epoch 0 (``_event_time_source = "none"``)."""
    reference = record.timestamp_ms
    if event_ms is not None and (
        (reference is None and 0 <= event_ms < LATEST_EVENT_MS)
        or (reference is not None and reference - MAX_EVENT_AGE_MS <= event_ms <= reference + MAX_EVENT_LEAD_MS)
    ):
        event_time, time_source = event_ms, "event"
    elif reference is not None:
        event_time, time_source = reference, "kafka"
    else:
        event_time, time_source = 0, "none"
    row["_topic"] = record.topic
    row["_partition"] = record.partition
    row["_incarnation"] = 0  # set by the landing guard when the partition's offsets have restarted
    row["_offset"] = record.offset
    row["_key"] = record.key
    row["_kafka_timestamp"] = reference
    row["_event_time"] = event_time
    row["_event_time_source"] = time_source
