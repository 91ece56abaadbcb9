"""Reading a batch's values again from a real broker, as an invocation does when the host left null values out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from devhost.services.broker import ensure_topics
from functions import bindings
from shared import settings as settings_module
from shared.kafka_clients import consumer_config, read_values
from shared.records import KafkaRecord
from shared.settings import load_settings, load_source_settings


def _topic_with(broker: str, partitions: int, values: dict[int, list[bytes | None]]) -> str:
    topic = f"users-values-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=partitions)
    producer = Producer({"bootstrap.servers": broker})
    for partition, members in values.items():
        for value in members:
            producer.produce(topic, value, b"k", partition=partition)
    assert producer.flush(30) == 0
    return topic


def _reader(broker: str) -> dict[str, object]:
    env = {"KAFKA_BROKER_LIST": broker}
    return consumer_config(load_settings(env), load_source_settings("users", env), "USERS_KAFKA_SASL_PASSWORD")


def test_read_values_gives_each_asked_offset_its_value_and_a_tombstone_none(broker: str) -> None:
    topic = _topic_with(broker, 2, {0: [b"a0", None, b"a2", b"a3"], 1: [b"b0", b"b1"]})
    values = read_values(_reader(broker), topic, {0: [1, 2], 1: [0, 1]}, timeout=30)
    assert values == {(0, 1): None, (0, 2): b"a2", (1, 0): b"b0", (1, 1): b"b1"}


def test_an_offset_past_the_end_of_its_partition_is_absent_not_waited_for(broker: str) -> None:
    topic = _topic_with(broker, 1, {0: [b"a0", b"a1"]})
    assert read_values(_reader(broker), topic, {0: [1, 5]}, timeout=30) == {(0, 1): b"a1"}


@pytest.fixture
def worker_settings(broker: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker's settings read afresh with this broker (they are read once per worker and cached)."""
    monkeypatch.setenv("KAFKA_BROKER_LIST", broker)
    caches = (bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


@pytest.mark.usefixtures("worker_settings")
def test_an_invocation_takes_its_records_values_from_the_broker(broker: str) -> None:
    topic = _topic_with(broker, 1, {0: [b'{"x": 1}', None, b""]})
    records = [KafkaRecord(topic, 0, offset, "k", None, 1) for offset in range(3)]
    reread = bindings.with_values_from_broker("users", records, [b'{"x": 1}', b""])
    assert [(r.offset, r.key, r.value, r.timestamp_ms) for r in reread] == [
        (0, "k", b'{"x": 1}', 1),
        (1, "k", None, 1),
        (2, "k", b"", 1),
    ]
