"""A maxBatchSize above librdkafka's most per consume call (1,000,000) keeps the trigger listening (a real
confluent-kafka consumer; no broker is needed to see librdkafka refuse the call)."""

from __future__ import annotations

import threading

from devhost.kafka.trigger import KafkaTriggerRunner
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig, KafkaOptions
from devhost.services.processes import free_port


def test_a_max_batch_size_above_a_million_does_not_end_the_listener() -> None:
    """The extension has no such bound; the listener asked consume() for maxBatchSize records and librdkafka raised
    ValueError at the first poll, ending the function's runner."""
    binding = {
        "type": "kafkaTrigger",
        "name": "events",
        "topic": "t",
        "brokerList": f"127.0.0.1:{free_port()}",
        "consumerGroup": "g",
        "cardinality": "MANY",
    }
    function = IndexedFunction("process_t", (binding,), lambda events: None, None)
    config = HostConfig({}, KafkaOptions(max_batch_size=2_000_000, subscriber_interval_seconds=0.2))
    stop = threading.Event()
    stats = FunctionStats("process_t", "kafkaTrigger")
    runner = KafkaTriggerRunner(function, config, None, stats, stop)  # type: ignore[arg-type]  # no invocation here
    polled = threading.Event()
    store_finished = runner._store_finished

    def after_each_poll(consumer: object) -> None:  # the listener stores finished batches after every consume
        store_finished(consumer)  # type: ignore[arg-type]
        polled.set()

    runner._store_finished = after_each_poll  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def listen() -> None:
        try:
            runner.run()
        except BaseException as error:
            errors.append(error)
        finally:
            polled.set()

    listener = threading.Thread(target=listen, name="listener")
    listener.start()
    try:
        assert polled.wait(10)
    finally:
        stop.set()
        listener.join(10)
    assert not listener.is_alive()
    assert errors == []
