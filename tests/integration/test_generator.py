"""The generator's delivery against a real broker: a tick returns only once its records are acknowledged, and a
tick whose delivery fails raises, so the timer's retry sends the same records and none is lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devhost.services.broker import ensure_topics
from devhost.services.processes import free_port
from functions import bindings
from shared import kafka_clients
from shared import settings as settings_module
from shared.errors import TransientError
from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.conftest import app_functions
from tests.integration.harness import records_until_sentinel


def _tick(retry_count: int) -> Any:
    return SimpleNamespace(retry_context=SimpleNamespace(retry_count=retry_count, max_retry_count=-1))


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


def _received(broker: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    return [(message.key().decode(), json.loads(message.value())) for message in records_until_sentinel(broker, topic)]


def test_a_tick_whose_delivery_fails_raises_and_its_retry_sends_the_same_records(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    topic = f"sensors-gen-{uuid.uuid4().hex[:8]}"
    ensure_topics(
        {"bootstrap.servers": broker}, [topic], partitions=1
    )  # one partition: the sentinel comes after every record
    for name, value in {
        "LAKE_KIND": "local",
        "LAKE_LOCAL_ROOT": str(tmp_path),
        "SENSORS_TOPIC": topic,
        "SENSORS_GENERATOR_EVENTS_PER_TICK": "7",
        "SENSORS_GENERATOR_ITERATIONS": "10",
        "SENSORS_GENERATOR_SEED": "3",
        "KAFKA_BROKER_LIST": f"127.0.0.1:{free_port()}",  # nothing listens: the first delivery fails
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 1.0)
    generate = app_functions()["generate_sensors"].get_user_function()
    with pytest.raises(TransientError, match="unacknowledged"):
        generate(timer=None, context=_tick(0))
    pending = json.loads((tmp_path / "_generator" / "sensors.json").read_text())["pending"]
    failed = generate_messages(SOURCES["sensors"], 7, now=datetime.fromisoformat(pending["now"]), seed=3, start_index=0)
    monkeypatch.setenv("KAFKA_BROKER_LIST", broker)  # the broker is back
    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 30.0)
    settings_module.current_settings.cache_clear()
    generate(timer=None, context=_tick(1))  # the timer's retry of the failed tick
    generate(timer=None, context=_tick(0))  # the next tick: the last 3 of 10
    generate(timer=None, context=_tick(0))  # nothing left
    received = _received(broker, topic)
    assert len(received) == 10  # every record once: the failed tick's 7 sent by its retry, then 3
    assert received[:7] == [(m.key, json.loads(m.value)) for m in failed]  # the same records, not new ones
    assert all(key == record["sensor_id"] for key, record in received)


def _settings(tmp_path: Path, broker: str, source: str, topic: str, **extra: str) -> dict[str, str]:
    prefix = source.upper()
    return {
        "LAKE_KIND": "local",
        "LAKE_LOCAL_ROOT": str(tmp_path),
        "KAFKA_BROKER_LIST": broker,
        f"{prefix}_TOPIC": topic,
        **{f"{prefix}_{name}": value for name, value in extra.items()},
    }


def test_generator_sends_keyed_events_resends_on_retry_and_honours_iterations(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    topic = f"sensors-gen-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    env = _settings(tmp_path, broker, "sensors", topic, GENERATOR_EVENTS_PER_TICK="7", GENERATOR_ITERATIONS="10")
    for name, value in (env | {"SENSORS_GENERATOR_SEED": "3"}).items():
        monkeypatch.setenv(name, value)
    generate = app_functions()["generate_sensors"].get_user_function()
    generate(timer=None, context=_tick(0))
    generate(timer=None, context=_tick(1))  # the send was taken for failed: the retry sends the same records again
    generate(timer=None, context=_tick(0))
    generate(timer=None, context=_tick(0))  # iterations reached: nothing
    from functions import generator as generator_functions

    monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "20")
    bindings.source_settings.cache_clear()
    generate(timer=None, context=_tick(0))  # a restarted process: the 7 after the first 10, nothing sent again
    received = _received(broker, topic)
    assert len(received) == 7 + 7 + 3 + 7
    assert received[:7] == received[7:14]  # the retry's records are the first tick's
    assert len({json.dumps(record, sort_keys=True) for _, record in received[7:]}) == 17  # then each record once
    assert all(key == record["sensor_id"] for key, record in received)


def test_a_config_source_continues_its_iteration_across_ticks_and_stops_at_iterations(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    topic = f"orders-gen-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    for name, value in _settings(
        tmp_path, broker, "orders", topic, GENERATOR_EVENTS_PER_TICK="7", GENERATOR_ITERATIONS="10"
    ).items():
        monkeypatch.setenv(name, value)
    generate = app_functions()["generate_orders"].get_user_function()
    for _ in range(3):
        generate(timer=None, context=SimpleNamespace(retry_context=None))
    received = _received(broker, topic)
    assert [record["orderid"] for _, record in received] == list(range(10))
    assert [key for key, _ in received[7:]] == ["7", "8", "9"]
