"""The lineage columns every landed row carries: where it came from and which hour it lands in.

The hour a row lands in never depends on when it was processed: an event's own time is
trusted within a window around its Kafka timestamp; otherwise the Kafka timestamp counts;
a record with neither lands at epoch 0 (``_event_time_source = "none"``).
"""

from __future__ import annotations

from shared.records import KafkaRecord
from shared.sources.base import Column, Row

MAX_EVENT_AGE_MS = 7 * 24 * 3600 * 1000
MAX_EVENT_LEAD_MS = 3600 * 1000
LATEST_EVENT_MS = 4_102_444_800_000  # 2100-01-01: an event time without a Kafka timestamp must be before it

LINEAGE_COLUMNS: tuple[Column, ...] = (
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_incarnation", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("_key", "string"),
    Column("_kafka_timestamp", "timestamp"),
    Column("_event_time", "timestamp", nullable=False),
    Column("_event_time_source", "string", nullable=False),
)


def landing_time(event_ms: int | None, kafka_ms: int | None) -> tuple[int, str]:
    """The time a row lands by (epoch ms) and where it came from: ``event``, ``kafka`` or ``none``."""
    if event_ms is not None and (
        (kafka_ms is None and 0 <= event_ms < LATEST_EVENT_MS)
        or (kafka_ms is not None and kafka_ms - MAX_EVENT_AGE_MS <= event_ms <= kafka_ms + MAX_EVENT_LEAD_MS)
    ):
        return event_ms, "event"
    if kafka_ms is not None:
        return kafka_ms, "kafka"
    return 0, "none"


def add_lineage(row: Row, record: KafkaRecord, event_ms: int | None) -> None:
    """Add the lineage columns to ``row`` in place (``_incarnation`` is set by the landing guard)."""
    event_time, time_source = landing_time(event_ms, record.timestamp_ms)
    row["_topic"] = record.topic
    row["_partition"] = record.partition
    row["_incarnation"] = 0
    row["_offset"] = record.offset
    row["_key"] = record.key
    row["_kafka_timestamp"] = record.timestamp_ms
    row["_event_time"] = event_time
    row["_event_time_source"] = time_source
