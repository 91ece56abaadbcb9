"""Decode, validate and transform one batch of raw records. Pure: no I/O, never raises for bad data."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from shared.records import KafkaRecord
from shared.sources.base import MAX_TIMESTAMP_MS, Row, Source, record_validator
from shared.state.keys import ALWAYS_FITS, BadKey, encode_key

# An event's own time is trusted within this window around its Kafka record timestamp.
MAX_EVENT_AGE_MS = 7 * 24 * 3600 * 1000
MAX_EVENT_LEAD_MS = 3600 * 1000
LATEST_EVENT_MS = 4_102_444_800_000  # 2100-01-01: an event time without a Kafka timestamp must be before it

# Every reason a record can be dead-lettered for; docs/reliability.md says what each means.
REASONS = (
    "null_value",
    "oversized",
    "not_utf8",
    "not_json",
    "schema",
    "transform_error",
    "bad_key",
    "unencodable",
    "entity_rejected",
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: KafkaRecord
    reason: str  # see REASONS
    detail: str


@dataclass(slots=True)
class ProcessedBatch:
    """What one invocation produced for one source: landed rows and dead letters."""

    source: Source
    rows: list[Row] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    origins: list[KafkaRecord] = field(default_factory=list)  # the record each row came from, row by row

    def dead_letter_rows(self, rows: list[Row], reason: str, details: list[str]) -> None:
        """Move ``rows`` (objects of ``self.rows``) to the dead letters with ``reason``; called by landing."""
        detail_of = {id(row): detail for row, detail in zip(rows, details, strict=True)}
        kept_rows, kept_origins = [], []
        for row, origin in zip(self.rows, self.origins, strict=True):
            detail = detail_of.get(id(row))
            if detail is None:
                kept_rows.append(row)
                kept_origins.append(origin)
            else:
                self.dead_letters.append(DeadLetter(origin, reason, detail))
        self.rows, self.origins = kept_rows, kept_origins


def process_batch(
    source: Source, records: Iterable[KafkaRecord], *, max_record_bytes: int, now_ms: int, keyed: bool = False
) -> ProcessedBatch:
    """Validate and transform ``records``; each bad one becomes a :class:`DeadLetter` with its reason.

    Called once per invocation. With ``keyed`` (the source keeps state in entities) a row whose
    entity key no entity can take (empty, too long once encoded) is dead-lettered as ``bad_key``.
    Never raises for anything a record carries: every failure is the record's own dead letter.
    """
    batch = ProcessedBatch(source)
    validate_json = record_validator(source.model).validate_json
    entity_key = source.entity_key
    for record in records:
        batch.records += 1
        value = record.value
        if record.timestamp_ms is not None and not 0 <= record.timestamp_ms <= MAX_TIMESTAMP_MS:
            record = dataclasses.replace(record, timestamp_ms=None)  # no date can be built from it
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
        except Exception as error:  # a model's own check raised something pydantic does not wrap
            batch.dead_letters.append(DeadLetter(record, "schema", f"{type(error).__name__}: {error}"))
            continue
        try:
            row = source.transform(event)
            event_ms = source.event_time_ms(event)
            if keyed:
                key = entity_key(row)
                if not key or len(key) > ALWAYS_FITS:  # shared.state.keys.check_key, inlined: once per record
                    encode_key(key or "")
        except BadKey as error:
            batch.dead_letters.append(DeadLetter(record, "bad_key", str(error)))
            continue
        except Exception as error:  # a transform bug must not stop the stream: park the record
            batch.dead_letters.append(DeadLetter(record, "transform_error", f"{type(error).__name__}: {error}"))
            continue
        _add_lineage(row, record, event_ms, now_ms)
        batch.rows.append(row)
        batch.origins.append(record)
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
