"""The Kafka output binding: what a function ``set`` on its ``func.Out`` is produced to the topic.

No function of this app uses it (the generators produce through ``shared.kafka_clients``, because
the extension's binding hands records to librdkafka and returns before delivery); this emulation
waits for delivery and raises, so it is stricter than the extension.

Parsing follows the extension: a JSON array is many messages; an item with all of Offset,
Partition, Topic, Timestamp, Value and Headers is a Kafka event object whose Key, Value and
Headers (UTF-8 strings) are sent; any other item is sent as its JSON text. The binding's
topic always wins and the key picks the partition.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from devhost.errors import DevHostError
from devhost.kafka.client_config import producer_config
from devhost.runtime.host_config import HostConfig

_EVENT_FIELDS = frozenset({"Offset", "Partition", "Topic", "Timestamp", "Value", "Headers"})


class ProduceError(DevHostError):
    """The broker did not acknowledge every record of an output binding."""


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def parse_output(value: Any) -> list[OutgoingRecord]:
    """The records one ``func.Out`` value stands for."""
    if value is None:
        return []
    if isinstance(value, bytes):
        return [OutgoingRecord(None, value)]
    if isinstance(value, list):
        return [record for item in value for record in parse_output(item)]
    text = str(value)
    try:
        document = json.loads(text)
    except ValueError:
        return [OutgoingRecord(None, text.encode())]
    if isinstance(document, list):
        return [_item(item) for item in document]
    return [_item(document, text)]


def _item(item: Any, text: str | None = None) -> OutgoingRecord:
    if isinstance(item, dict) and item.keys() >= _EVENT_FIELDS:
        raw = item["Value"]
        body = json.dumps(raw, separators=(",", ":")) if isinstance(raw, dict) else str(raw if raw is not None else "")
        key = item.get("Key")
        headers = tuple((str(h["Key"]), str(h["Value"]).encode()) for h in item.get("Headers") or [])
        return OutgoingRecord(None if key is None else str(key).encode(), body.encode(), headers)
    body = text if text is not None else (item if isinstance(item, str) else json.dumps(item, separators=(",", ":")))
    return OutgoingRecord(None, body.encode())


class OutputProducers:
    """One producer per broker configuration, shared by every output binding that uses it."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self._producers: dict[str, Producer] = {}
        self._lock = threading.Lock()

    def _producer(self, binding: dict[str, Any]) -> Producer:
        settings = producer_config(binding, self.config)
        identity = json.dumps(settings, sort_keys=True, default=repr)
        with self._lock:
            if identity not in self._producers:
                self._producers[identity] = Producer(settings)
            return self._producers[identity]

    def send(self, binding: dict[str, Any], value: Any, timeout: float = 30.0) -> int:
        """Produce every record of ``value`` to the binding's topic; returns once all are acknowledged."""
        records = parse_output(value)
        if not records:
            return 0
        topic = self.config.resolve(binding["topic"])
        producer = self._producer(binding)
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        for record in records:
            while True:
                try:
                    producer.produce(
                        topic, record.value, record.key, headers=list(record.headers), on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        remaining = producer.flush(timeout)
        if remaining or failures:
            raise ProduceError(f"{topic}: {len(failures)} failed, {remaining} unacknowledged of {len(records)} records")
        return len(records)

    def close(self) -> None:
        """Deliver what is queued, then close each producer (before the broker stops, so none reconnects)."""
        with self._lock:
            producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            producer.flush(10)
            producer.close()
