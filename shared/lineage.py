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


def add_lineage(rows: list[Row], records: list[KafkaRecord], event_times_ms: list[int | None]) -> None:
    """Add the lineage columns to each row in place, from its record and its event's own time.

    ``_incarnation`` starts at 0; the landing guard sets it when the partition's offsets restarted.
    """
    for row, record, event_ms in zip(rows, records, event_times_ms, strict=True):
        kafka_ms = record.timestamp_ms
        if event_ms is not None and (
            (kafka_ms - MAX_EVENT_AGE_MS <= event_ms <= kafka_ms + MAX_EVENT_LEAD_MS)
            if kafka_ms is not None
            else 0 <= event_ms < LATEST_EVENT_MS
        ):
            event_time, time_source = event_ms, "event"
        elif kafka_ms is not None:
            event_time, time_source = kafka_ms, "kafka"
        else:
            event_time, time_source = 0, "none"
        row["_topic"] = record.topic
        row["_partition"] = record.partition
        row["_incarnation"] = 0
        row["_offset"] = record.offset
        row["_key"] = record.key
        row["_kafka_timestamp"] = kafka_ms
        row["_event_time"] = event_time
        row["_event_time_source"] = time_source
