"""Metrics: exact values for a known batch, read through an in-memory OpenTelemetry reader. Application
Insights with Entra ID: the exporter gets the app's managed identity when the authentication string
asks for it, and nothing else changes without it.

Application Insights itself cannot run here, so ``configure_azure_monitor`` is replaced by a
recorder of its arguments (``_RecordingConfigure``); the credential objects are the real ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import metric_names as names
from shared import telemetry as telemetry_module
from shared.settings import load_settings
from shared.telemetry import LATENCY_SAMPLES, BatchMetrics, Telemetry, sample
from tests.unit.shared.conftest import metric_points

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"


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
    points = metric_points(reader)
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
    points = {name: pts[0].value for name, pts in metric_points(reader).items()}
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


class _RecordingConfigure:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _RecordingConfigure:
    import azure.monitor.opentelemetry as monitor

    recording = _RecordingConfigure()
    monkeypatch.setattr(monitor, "configure_azure_monitor", recording)
    return recording


def test_aad_authentication_string_exports_with_the_system_assigned_identity(recorder: _RecordingConfigure) -> None:
    settings = load_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        }
    )
    assert telemetry_module.configure(settings) is True
    (call,) = recorder.calls
    assert call["connection_string"] == CONNECTION
    assert isinstance(call["credential"], ManagedIdentityCredential)


def test_client_id_selects_a_user_assigned_identity() -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222;Authorization=AAD"})
    options = telemetry_module.exporter_options(settings)
    credential = options["credential"]
    assert isinstance(credential, ManagedIdentityCredential)
    assert "11111111-2222" in repr(vars(credential._credential))  # the client id reaches the identity endpoint


def test_without_authentication_string_the_connection_string_alone_is_used(recorder: _RecordingConfigure) -> None:
    assert telemetry_module.configure(load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})) is True
    (call,) = recorder.calls
    assert "credential" not in call


def test_nothing_is_configured_without_a_connection_string(recorder: _RecordingConfigure) -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"})
    assert telemetry_module.configure(settings) is False
    assert recorder.calls == []
