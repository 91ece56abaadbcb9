"""Lineage: where each row came from, and the hour it lands in whenever and however often it is processed."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from shared.batch import process_batch
from shared.formats import format_named
from shared.landing.files import plan_batch
from shared.lineage import LATEST_EVENT_MS, MAX_EVENT_AGE_MS, MAX_EVENT_LEAD_MS, landing_times
from shared.records import KafkaRecord
from shared.source_model import MAX_TIMESTAMP_MS
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.conftest import clickstream_record

CLICKSTREAM = get_source("clickstream")
SENSORS = get_source("sensors")


def test_rows_carry_lineage() -> None:
    record = records_for(SENSORS, 1, topic="sensors-eh", partition=4, first_offset=42)[0]
    row = process_batch(SENSORS, [record], max_record_bytes=10_000).rows()[0]
    assert (row["_topic"], row["_partition"], row["_offset"], row["_key"]) == ("sensors-eh", 4, 42, record.key)
    assert row["_kafka_timestamp"] == FIXED_NOW_MS


def test_plausible_event_time_is_used() -> None:
    row = process_batch(SENSORS, records_for(SENSORS, 1), max_record_bytes=10_000).rows()[0]
    assert row["_event_time_source"] == "event"
    assert FIXED_NOW_MS - 1000 <= row["_event_time"] <= FIXED_NOW_MS


def test_datagen_style_tiny_time_falls_back_to_the_kafka_timestamp_and_is_flagged() -> None:
    value = (
        b'{"ip":"1.1.1.1","userid":3,"remote_user":"-","time":"11","_time":11,"request":"GET / HTTP/1.1",'
        b'"status":"200","bytes":"10","referrer":"-","agent":"x"}'
    )
    row = process_batch(CLICKSTREAM, [clickstream_record(value)], max_record_bytes=10_000).rows()[0]
    assert (row["_event_time"], row["_event_time_source"]) == (FIXED_NOW_MS, "kafka")


def test_no_time_at_all_lands_at_epoch_zero_whenever_it_is_processed() -> None:
    record = records_for(SENSORS, 1)[0]
    value = (record.value or b"").replace(b'"timestamp":', b'"ignored":')
    bare = KafkaRecord("sensors", 0, 0, None, value, None)
    first = process_batch(SENSORS, [bare], max_record_bytes=10_000).rows()[0]
    later = process_batch(SENSORS, [bare], max_record_bytes=10_000).rows()[0]
    assert (first["_event_time"], first["_event_time_source"]) == (0, "none")
    assert later["_event_time"] == 0  # a redelivery lands in the same hour


def test_event_time_without_kafka_timestamp_is_kept() -> None:
    record = records_for(SENSORS, 1)[0]
    bare = KafkaRecord("sensors", 0, 0, None, record.value, None)
    row = process_batch(SENSORS, [bare], max_record_bytes=10_000).rows()[0]
    assert row["_event_time_source"] == "event" and abs(row["_event_time"] - FIXED_NOW_MS) < 60_000


def test_event_time_far_in_the_past_is_implausible() -> None:
    record = records_for(SENSORS, 1)[0]
    late = KafkaRecord("sensors", 0, 0, None, record.value, FIXED_NOW_MS + MAX_EVENT_AGE_MS + 60_000)
    row = process_batch(SENSORS, [late], max_record_bytes=10_000).rows()[0]
    assert row["_event_time_source"] == "kafka"


@pytest.mark.parametrize("event_ms", [-1, -1000, -3_600_000])
def test_an_event_time_before_1970_is_not_trusted_even_near_its_kafka_timestamp(event_ms: int) -> None:
    """It landed in a 1969 hour, which reprocess files as epoch 0's (a review); the Kafka timestamp counts."""
    times, sources = landing_times(pa.array([1000], pa.int64()), pa.array([event_ms], pa.int64()))
    assert (times.to_pylist(), sources.to_pylist()) == ([1000], ["kafka"])


@pytest.mark.parametrize("columnar", [False, True])
def test_an_event_time_no_long_can_hold_is_no_time_of_its_own(columnar: bool) -> None:
    source = dataclasses.replace(get_source("clickstream"), event_time_ms=lambda event: 2**64)
    batch = process_batch(source, records_for(source, 3), max_record_bytes=1 << 20, columnar=columnar)
    assert [(row["_event_time"], row["_event_time_source"]) for row in batch.rows()] == [(FIXED_NOW_MS, "kafka")] * 3


@pytest.mark.parametrize("columnar", [False, True])
def test_an_event_time_past_the_last_storable_instant_lands_by_its_kafka_timestamp(columnar: bool) -> None:
    source = get_source("clickstream")
    record = records_for(source, 1)[0]
    event = json.loads(record.value or b"{}") | {"_time": MAX_TIMESTAMP_MS + 1}  # within the hour's lead
    record = dataclasses.replace(record, value=json.dumps(event).encode(), timestamp_ms=MAX_TIMESTAMP_MS)
    batch = process_batch(source, [record], max_record_bytes=1 << 20, columnar=columnar)
    planned = plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)  # a year-10000 hour has no directory
    assert [file.row_count for file in planned] == [1]
    assert [(row["_event_time"], row["_event_time_source"]) for row in batch.rows()] == [(MAX_TIMESTAMP_MS, "kafka")]


def test_the_trusted_window_includes_its_edges() -> None:
    """An event's own time counts from exactly 7 days before to exactly 1 hour after its Kafka timestamp, and,
    without one, from epoch 0 to just before 2100; one millisecond outside either window it does not."""
    kafka = 10 * MAX_EVENT_AGE_MS
    events = [kafka - MAX_EVENT_AGE_MS, kafka + MAX_EVENT_LEAD_MS, kafka - MAX_EVENT_AGE_MS - 1]
    times, sources = landing_times(pa.array([kafka] * 3, pa.int64()), pa.array(events, pa.int64()))
    assert times.to_pylist() == [*events[:2], kafka] and sources.to_pylist() == ["event", "event", "kafka"]
    alone = [0, LATEST_EVENT_MS - 1, LATEST_EVENT_MS]
    times, sources = landing_times(pa.nulls(3, pa.int64()), pa.array(alone, pa.int64()))
    assert times.to_pylist() == [0, LATEST_EVENT_MS - 1, 0] and sources.to_pylist() == ["event", "event", "none"]
