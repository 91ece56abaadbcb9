"""The generator's delivery against a real broker: a tick returns only once its records are acknowledged, and a
tick whose delivery fails raises, so the timer's retry sends the same records and none is lost; a failed
attempt leaves nothing behind to be delivered with the next."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devhost.services import broker as broker_module
from devhost.services.broker import ensure_topics
from devhost.services.processes import free_port
from functions import bindings
from functions import generator as generator_functions
from shared import generator_ticks, kafka_clients
from shared import settings as settings_module
from shared.errors import TransientError
from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.conftest import app_functions
from tests.faults.scenario import broker_pid
from tests.integration.harness import records_until_sentinel


def _tick(retry_count: int) -> Any:
    return SimpleNamespace(retry_context=SimpleNamespace(retry_count=retry_count, max_retry_count=-1))


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    monkeypatch.setattr(generator_functions, "_delivered", {})
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
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted")  # the process restarted after sending:
    monkeypatch.setattr(generator_functions, "_delivered", {})  # the new one cannot know the tick was delivered
    generate(timer=None, context=_tick(0))  # so it sends the same records again, and records them acknowledged
    generate(timer=None, context=_tick(0))
    generate(timer=None, context=_tick(0))  # iterations reached: nothing
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted again")
    monkeypatch.setattr(generator_functions, "_delivered", {})
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "20")
    bindings.source_settings.cache_clear()
    generate(timer=None, context=_tick(0))  # the 7 after the first 10, nothing sent again
    received = _received(broker, topic)
    assert len(received) == 7 + 7 + 3 + 7
    assert received[:7] == received[7:14]  # the resent records are the first tick's
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


def test_a_broker_outage_spanning_attempts_leaves_no_copies_behind_to_arrive_with_the_retry_that_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """A failed send's records stayed queued in the cached producer (librdkafka's 300 s message timeout, no
    purge), so each failed attempt added a copy: down for 3 attempts, every record arrived 4 times or more.

    The broker is stopped (SIGSTOP), not absent: a topic the embedded broker creates when a reconnecting producer
    asks for it can come out twice, each acknowledging writes at the same offsets, so records the producer was told
    were written vanished (measured under load). Here the topic exists before the producer first asks."""
    topic = f"sensors-gen-{uuid.uuid4().hex[:8]}"
    with broker_module.embedded_broker() as address:
        ensure_topics({"bootstrap.servers": address}, [topic], partitions=1)
        for name, value in {
            "LAKE_KIND": "local",
            "LAKE_LOCAL_ROOT": str(tmp_path),
            "KAFKA_BROKER_LIST": address,
            "SENSORS_TOPIC": topic,
            "SENSORS_GENERATOR_EVENTS_PER_TICK": "7",
            "SENSORS_GENERATOR_SEED": "3",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 2.0)  # one producer throughout: the same settings
        monkeypatch.setattr(kafka_clients, "_producers", {})
        generate = app_functions()["generate_sensors"].get_user_function()
        pid = broker_pid(address)
        try:
            os.kill(pid, signal.SIGSTOP)
            try:
                for attempt in range(3):  # the broker answers nothing: the first attempt and two retries fail
                    with pytest.raises(TransientError):
                        generate(timer=None, context=_tick(attempt))
            finally:
                os.kill(pid, signal.SIGCONT)
            for attempt in range(3, 40):  # the timer's retries, until the producer has reconnected
                try:
                    generate(timer=None, context=_tick(attempt))
                    break
                except TransientError:
                    continue
            else:
                pytest.fail("no retry succeeded with the broker back")
        finally:
            kafka_clients.close_producers(1.0)
        received = [message.value() for message in records_until_sentinel(address, topic)]
    copies = sorted(Counter(received).values())
    assert len(copies) == 7
    # once each unless an attempt gave up while its records were in flight; never one copy per failed attempt
    assert max(copies) <= 2, f"copies per record: {copies}"


def test_a_tick_goes_in_pieces_and_after_a_failed_piece_a_restarted_process_sends_only_the_rest(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """A tick larger than the broker takes within one send was retried whole, forever. In pieces (of 4 here), each
    recorded delivered before the next: the second fails (its broker unreachable), and a restarted process sends
    the second and third, so every record arrives once, the same records the failed piece held."""
    topic = f"sensors-gen-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    env = _settings(tmp_path, broker, "sensors", topic, GENERATOR_EVENTS_PER_TICK="10", GENERATOR_ITERATIONS="10")
    for name, value in (env | {"SENSORS_GENERATOR_SEED": "3"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 4)
    real_send = kafka_clients.send
    sends: list[int] = []

    def second_send_unreachable(config: dict[str, Any], topic: str, records: Any) -> None:
        sends.append(len(records))
        if len(sends) != 2:
            return real_send(config, topic, records)
        monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 1.0)
        try:
            return real_send(config | {"bootstrap.servers": f"127.0.0.1:{free_port()}"}, topic, records)  # no one
        finally:
            monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 60.0)

    monkeypatch.setattr(kafka_clients, "send", second_send_unreachable)
    generate = app_functions()["generate_sensors"].get_user_function()
    try:
        with pytest.raises(TransientError, match="unacknowledged"):
            generate(timer=None, context=_tick(0))
        progress = json.loads((tmp_path / "_generator" / "sensors.json").read_text())
        assert progress["pending"]["delivered"] == 4
        monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted")
        monkeypatch.setattr(generator_functions, "_delivered", {})
        generate(timer=None, context=_tick(0))
        generate(timer=None, context=_tick(0))  # iterations reached: nothing
    finally:
        kafka_clients.close_producers(1.0)
    assert sends == [4, 4, 4, 2]
    now = datetime.fromisoformat(progress["pending"]["now"])
    pieces = [(0, 4), (4, 4), (8, 2)]  # each generated from the tick's seed and its own first index
    expected = [
        m for first, n in pieces for m in generate_messages(SOURCES["sensors"], n, now=now, seed=3, start_index=first)
    ]
    assert _received(broker, topic) == [(m.key, json.loads(m.value)) for m in expected]
    assert json.loads((tmp_path / "_generator" / "sensors.json").read_text())["sent"] == 10
