"""Exact metric values for a known batch, read through an in-memory OpenTelemetry reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import metric_names as names
from shared import telemetry as telemetry_module
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.sources import SOURCES
from shared.telemetry import LATENCY_SAMPLES, BatchMetrics, Telemetry, sample
from tests.conftest import context_for, records_for


@pytest.fixture
def reader_and_telemetry() -> tuple[InMemoryMetricReader, Telemetry]:
    reader = InMemoryMetricReader()
    return reader, Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_a_known_batch_gives_exact_counts(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    reader, telemetry = reader_and_telemetry
    telemetry.record_batch(
        BatchMetrics(
            source="clickstream",
            received=10,
            landed=7,
            dead_letters={"not_json": 2, "schema": 1},
            duration_ms=12.5,
            event_times_ms=[1_000, 2_000, 3_000],
            landed_at_ms=5_000,
            bytes_written=4096,
            files_written=2,
            lake_write_ms=[3.0, 4.0],
        )
    )
    points = _points(reader)
    value = {name: {tuple(sorted(p.attributes.items())): p for p in pts} for name, pts in points.items()}
    source = (("source", "clickstream"),)
    assert value[names.EVENTS_RECEIVED][source].value == 10
    assert value[names.EVENTS_LANDED][source].value == 7
    assert value[names.EVENTS_DEADLETTERED][(("reason", "not_json"), ("source", "clickstream"))].value == 2
    assert value[names.EVENTS_DEADLETTERED][(("reason", "schema"), ("source", "clickstream"))].value == 1
    latency = value[names.END_TO_END_LATENCY][source]
    assert (latency.count, latency.sum, latency.min, latency.max) == (3, 9_000, 2_000, 4_000)
    assert value[names.BATCH_SIZE][source].sum == 10
    assert value[names.LAKE_WRITE_DURATION][source].count == 2
    assert value[names.LAKE_BYTES_WRITTEN][source].value == 4096
    assert value[names.LAKE_FILES_WRITTEN][source].value == 2


def test_state_counters(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    reader, telemetry = reader_and_telemetry
    telemetry.record_state("sensors", signals=40, late=3, anomalies=1)
    telemetry.record_state("sensors", signals=2)
    points = {name: pts[0].value for name, pts in _points(reader).items()}
    assert points == {names.ENTITY_SIGNALS: 42, names.EVENTS_LATE: 3, names.ANOMALIES: 1}


def test_every_declared_metric_is_an_instrument(reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry]) -> None:
    _, telemetry = reader_and_telemetry
    gauges = {name for name, (kind, _, _) in names.METRICS.items() if kind == "gauge"}
    assert set(telemetry._instruments) == set(names.METRICS) - gauges
    assert gauges == {names.CONSUMER_LAG}  # observed by the local host, which knows the consumer's position


def test_latency_sampling_is_bounded_and_spread() -> None:
    values = list(range(10_000))
    sampled = sample(values, LATENCY_SAMPLES)
    assert len(sampled) == LATENCY_SAMPLES and sampled[0] == values[0] and sampled[-1] == values[-1]
    assert sample([1, 2], LATENCY_SAMPLES) == [1, 2]


def test_handle_batch_emits_exact_counts_for_a_known_batch(
    reader_and_telemetry: tuple[InMemoryMetricReader, Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    now_ms: int,
) -> None:
    reader, instruments = reader_and_telemetry
    monkeypatch.setattr(telemetry_module, "_telemetry", instruments)
    source = SOURCES["clickstream"]
    records = records_for(source, 5)
    bad = [
        KafkaRecord("clickstream", 0, 5, None, b"{not json", now_ms),
        KafkaRecord("clickstream", 0, 6, None, b"\xff", now_ms),
        KafkaRecord("clickstream", 0, 7, None, b'{"ip": 1}', now_ms),
        KafkaRecord("clickstream", 0, 8, None, b"[]", now_ms),
    ]
    outcome = handle_batch(context_for(source, LocalLake(tmp_path), now_ms=now_ms), records + bad)
    value = {name: {tuple(sorted(p.attributes.items())): p for p in pts} for name, pts in _points(reader).items()}
    attributes = (("source", "clickstream"),)
    assert value[names.EVENTS_RECEIVED][attributes].value == 9
    assert value[names.EVENTS_LANDED][attributes].value == 5 == outcome.landed
    reasons = {dict(key)["reason"]: point.value for key, point in value[names.EVENTS_DEADLETTERED].items()}
    assert reasons == {"not_json": 1, "not_utf8": 1, "schema": 2}
    assert value[names.LAKE_FILES_WRITTEN][attributes].value == len(outcome.files) == 2
    assert value[names.LAKE_BYTES_WRITTEN][attributes].value == outcome.bytes_written
    assert value[names.LAKE_WRITE_DURATION][attributes].count == 2
    assert value[names.END_TO_END_LATENCY][attributes].count == 5
