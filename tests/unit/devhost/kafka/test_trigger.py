"""The Kafka trigger's own output: each worker's assignment is one whole line, written at once."""

from __future__ import annotations

import io
import sys
import threading

import pytest
from confluent_kafka import TopicPartition

from devhost.kafka.output import OutputProducers
from devhost.kafka.trigger import KafkaTriggerRunner
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig, KafkaOptions
from devhost.runtime.invoker import Invoker, WorkerLoop


class _Writes(io.StringIO):
    """A stdout that keeps each ``write`` call: lines of several workers interleave only between calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_each_assignment_is_written_as_one_whole_line(monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = {
        "type": "kafkaTrigger",
        "name": "events",
        "topic": "%TOPIC%",
        "brokerList": "%BROKER%",
        "consumerGroup": "g",
    }
    function = IndexedFunction("process_clicks", (trigger,), lambda events: None, None)
    config = HostConfig({"TOPIC": "clicks", "BROKER": "127.0.0.1:9"}, KafkaOptions())
    loop = WorkerLoop()
    try:
        invoker = Invoker(loop, OutputProducers(config))
        runner = KafkaTriggerRunner(
            function, config, invoker, FunctionStats("process_clicks", "t"), threading.Event(), 2
        )
        stdout = _Writes()
        monkeypatch.setattr(sys, "stdout", stdout)
        runner._on_assign(None, [TopicPartition("clicks", 3), TopicPartition("clicks", 1)])  # type: ignore[arg-type]
    finally:
        loop.close()
    assert stdout.calls == ["devhost: worker 2 process_clicks assigned clicks [1, 3]\n"]
