"""The lineage columns every landed row carries: where it came from, which hour it lands in, and
the record as it was received.

The hour a row lands in never depends on when it was processed: an event's own time is
trusted within a window around its Kafka timestamp; otherwise the Kafka timestamp counts;
a record with neither lands at epoch 0 (``_event_time_source = "none"``).

Nothing a producer sent is dropped: ``_extra`` holds the fields the model does not know (JSON
text, nested values whole; a field inside a known nested record as ``parent.child``; ``.`` and ``\\``
in names escaped by ``\\``), and
``_received`` the record as received (JSON text: the value itself for JSON sources, the decoded
record for Avro ones), so the current code can recompute the row from raw alone
(``tools.reprocess``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from shared.records import KafkaRecord
from shared.source_model import INT64_MAX, INT64_MIN, MAX_TIMESTAMP_MS, Column, Row

MAX_EVENT_AGE_MS = 7 * 24 * 3600 * 1000
MAX_EVENT_LEAD_MS = 3600 * 1000
LATEST_EVENT_MS = 4_102_444_800_000  # 2100-01-01: an event time without a Kafka timestamp must be before it
NO_EVENT_TIME = "none"  # _event_time_source of a record with no event time and no Kafka timestamp (epoch 0)

RECORD_LINEAGE: tuple[Column, ...] = (  # where a record came from: landed rows and dead letters carry these
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_incarnation", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("_key", "string"),
    Column("_kafka_timestamp", "timestamp"),
)
RECEIVED_COLUMNS: tuple[Column, ...] = (Column("_extra", "string"), Column("_received", "string"))
LINEAGE_COLUMNS: tuple[Column, ...] = (
    *RECORD_LINEAGE,
    Column("_event_time", "timestamp", nullable=False),
    Column("_event_time_source", "string", nullable=False),
    *RECEIVED_COLUMNS,
)


def landing_times(kafka_ms: pa.Array, event_ms: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each row's landing time (epoch ms, int64) and where it came from: ``event``, ``kafka`` or ``none``.

    ``kafka_ms`` and ``event_ms`` are int64 arrays with nulls for a missing time. An event's own time
    counts within a window around its Kafka timestamp, never before 1970 (no tool files a row in a 1969 hour)
    and never past ``MAX_TIMESTAMP_MS`` (a year 10000 hour has no directory).
    """
    with_kafka = pc.and_(
        pc.greater_equal(event_ms, pc.max_element_wise(pc.subtract(kafka_ms, MAX_EVENT_AGE_MS), 0)),
        pc.less_equal(event_ms, pc.min_element_wise(pc.add(kafka_ms, MAX_EVENT_LEAD_MS), MAX_TIMESTAMP_MS)),
    )
    alone = pc.and_(pc.greater_equal(event_ms, 0), pc.less(event_ms, LATEST_EVENT_MS))
    trusted = pc.fill_null(pc.if_else(pc.is_valid(kafka_ms), with_kafka, alone), False)
    has_kafka = pc.is_valid(kafka_ms)
    times = pc.if_else(trusted, event_ms, pc.fill_null(kafka_ms, 0))
    sources = pc.if_else(trusted, "event", pc.if_else(has_kafka, "kafka", NO_EVENT_TIME))
    return times, sources


def add_lineage(
    rows: list[Row],
    records: list[KafkaRecord],
    event_times_ms: list[int | None],
    extras: list[str | None] | None = None,
    received: list[bytes] | None = None,
) -> None:
    """Add the lineage columns to each row in place, from its record and its event's own time.

    ``extras`` are the rows' ``_extra`` texts (None: no unknown fields anywhere); ``received`` the
    records as received (None: their values, JSON text). ``_incarnation`` starts at 0; the
    landing guard sets it when the partition's offsets restarted.
    """
    _, times, sources = _landing_times_of(records, event_times_ms)
    texts = received_texts(records, received)
    extra_texts = extras if extras is not None else [None] * len(rows)
    lineage = zip(records, times.to_pylist(), sources.to_pylist(), extra_texts, texts, strict=True)
    for row, (record, event_time, time_source, extra, text) in zip(rows, lineage, strict=True):
        row["_topic"] = record.topic
        row["_partition"] = record.partition
        row["_incarnation"] = 0
        row["_offset"] = record.offset
        row["_key"] = record.key
        row["_kafka_timestamp"] = record.timestamp_ms
        row["_event_time"] = event_time
        row["_event_time_source"] = time_source
        row["_extra"] = extra
        row["_received"] = text


def received_texts(records: list[KafkaRecord], received: list[bytes] | None) -> list[str | None]:
    """``_received`` of each row: the record as received, as text."""
    values = received if received is not None else [record.value for record in records]
    return [None if value is None else value.decode("utf-8", errors="replace") for value in values]


def received_array(records: list[KafkaRecord], received: list[bytes] | None) -> pa.Array:
    """``_received`` as an Arrow string array, from the bytes without a Python string per row."""
    values = received if received is not None else [record.value for record in records]
    try:
        return pa.array(values, pa.binary()).cast(pa.string())
    except (pa.ArrowInvalid, TypeError):  # not UTF-8 (never for a validated JSON value): replace, as the rows do
        return pa.array(received_texts(records, received), pa.string())


def lineage_arrays(
    records: list[KafkaRecord],
    event_times_ms: list[int | None],
    extras: list[str | None] | None = None,
    received: list[bytes] | None = None,
) -> list[pa.Array]:
    """The lineage columns of rows from ``records`` as Arrow arrays, in ``LINEAGE_COLUMNS`` order."""
    kafka_ms, times, sources = _landing_times_of(records, event_times_ms)
    timestamp = pa.timestamp("ms", tz="UTC")
    extra = pa.nulls(len(records), pa.string()) if extras is None else pa.array(extras, pa.string())
    return [
        pa.array([record.topic for record in records], pa.string()),
        pa.array([record.partition for record in records], pa.int64()),
        pa.nulls(len(records), pa.int64()).fill_null(0),
        pa.array([record.offset for record in records], pa.int64()),
        pa.array([record.key for record in records], pa.string()),
        kafka_ms.cast(timestamp),
        times.cast(timestamp),
        sources,
        extra,
        received_array(records, received),
    ]


def _landing_times_of(
    records: list[KafkaRecord], event_times_ms: list[int | None]
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The records' Kafka timestamps, then :func:`landing_times`, as arrays."""
    kafka_ms = pa.array([record.timestamp_ms for record in records], pa.int64())
    return kafka_ms, *landing_times(kafka_ms, _int64_times(event_times_ms))


def _int64_times(event_times_ms: list[int | None]) -> pa.Array:
    """Event times as int64; one that is not an integer a long can hold counts as no time of its own."""
    try:
        return pa.array(event_times_ms, pa.int64())
    except (OverflowError, TypeError, pa.ArrowInvalid):
        return pa.array(
            [t if type(t) is int and INT64_MIN <= t <= INT64_MAX else None for t in event_times_ms], pa.int64()
        )
