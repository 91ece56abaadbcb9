"""Fixtures and helpers the tests of several ``shared`` modules use."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.batch import ProcessedBatch, process_batch
from shared.records import KafkaRecord
from shared.sources import get_source
from shared.state.aggregate import Signal
from shared.state.bucket_state import held_keys, key_state, operate
from shared.state.registry import ENTITY_KINDS
from shared.telemetry import Telemetry
from tests.conftest import FIXED_NOW_MS, records_for


def clickstream_record(value: bytes | None, offset: int = 100, timestamp_ms: int | None = FIXED_NOW_MS) -> KafkaRecord:
    return KafkaRecord("clickstream", 3, offset, "k", value, timestamp_ms)


def processed(name: str, count: int = 20, **kwargs: Any) -> ProcessedBatch:
    """``count`` valid records of source ``name`` (``records_for``'s options), processed as one batch."""
    source = get_source(name)
    return process_batch(source, records_for(source, count, **kwargs), max_record_bytes=100_000)


@pytest.fixture
def reader_and_telemetry() -> tuple[InMemoryMetricReader, Telemetry]:
    reader = InMemoryMetricReader()
    return reader, Telemetry(MeterProvider(metric_readers=[reader]).get_meter("test"))


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


class RecordingGateway:
    """A state gateway with no state: reads find nothing, signals are recorded by bucket key; ``refuse`` names
    a bucket whose signal the entity API refuses (a 400 of its own)."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.signalled: list[str] = []

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        return None

    async def signal(self, signal: Signal) -> None:
        if signal.key == self.refuse:
            raise Exception("The operation failed with an unexpected status code 400")
        self.signalled.append(signal.key)


class ApplyingGateway:
    """A state gateway that applies each signal at once with the real entity core (``bucket_state.operate``),
    the state round-tripped through JSON as Durable stores it: no host, the entities' own code."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], str] = {}

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        text = self.states.get((entity, key))
        return None if text is None else dict(json.loads(text))

    async def signal(self, signal: Signal) -> None:
        kind = next(kind for kind in ENTITY_KINDS.values() if kind.name == signal.entity)
        state = json.loads(self.states.get((signal.entity, signal.key), "{}"))
        payload = json.loads(json.dumps(signal.payload))
        outcome = operate(kind.fold, kind.reduce, signal.key, state, signal.operation, payload)
        self.states[(signal.entity, signal.key)] = json.dumps(outcome.state)

    def key_states(self, entity: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for (name, _), text in self.states.items():
            if name == entity:
                state = json.loads(text)
                found.update({key: key_state(state, key) or {} for key in held_keys(state)})
        return found


def device_tap(
    offset: int,
    device: str,
    *,
    padding: int = 0,
    timestamp_ms: int = FIXED_NOW_MS,
    event_time: str = "2026-11-27T19:00:00Z",
) -> KafkaRecord:
    """A valid mobile tap of ``device`` at ``offset`` of partition 0 (``padding``: that many bytes more)."""
    value = {
        "event_id": f"e{offset}",
        "device_id": device,
        "user_id": "u",
        "session_id": "s",
        "event_type": "tap",
        "screen": "home",
        "app_version": "4.3.0",
        "os": "iOS",
        "os_version": "18.1",
        "timestamp": event_time,
        "properties": {"pad": "x" * padding} if padding else {},
    }
    return KafkaRecord("mobile", 0, offset, device, orjson.dumps(value), timestamp_ms)


def device_events(gateway: ApplyingGateway) -> dict[str, int]:
    """Events counted per device, as the gateway's buckets hold them."""
    return {key: state.get("events", 0) for key, state in gateway.key_states("device_activity").items()}
