"""Extra worker processes (``--workers N``): each runs the app's Kafka triggers in the same consumer groups.

The first worker is the host process itself (HTTP, timers, entities). The others only consume;
their durable clients call the first worker's entity API, so every entity still runs in one place.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from devhost.kafka.output import OutputProducers
from devhost.kafka.trigger import KafkaTriggerRunner
from devhost.runtime.catalog import enabled, index_app
from devhost.runtime.function_stats import HostStats
from devhost.runtime.host_config import HostConfig
from devhost.runtime.invoker import Invoker, WorkerLoop

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def run_kafka_worker(
    config: HostConfig, app_module: str, durable_client_json: str, pool: PoolSignals, number: int
) -> None:
    """Entry point of a worker process; puts its per-function stats on ``pool.results`` when stopped.

    When ``pool.drain`` is set its triggers drain (``KafkaTriggerRunner.draining``). Ctrl-C and SIGTERM (sent to the
    whole process group by ``timeout``, systemd or ``kill -- -PGID``) are the host's to act on: the worker stops when
    the host says so, closing its consumers, or when the host is gone. The worker starts with both blocked
    (:class:`WorkerPool`), so one sent while it starts is ignored too, not a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    host = os.getppid()
    os.environ.update(config.settings)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    indexed = enabled(index_app(importlib.import_module(app_module).app), os.environ)
    functions = [f for f in indexed if f.trigger_type == "kafkaTrigger"]
    worker_loop = WorkerLoop()
    producers = OutputProducers(config)
    invoker = Invoker(worker_loop, producers, durable_client_json)
    stats = HostStats()
    local_stop = threading.Event()
    threads, runners = [], []
    for function in functions:
        function_stats = stats.add(function.name, "kafkaTrigger")
        runner = KafkaTriggerRunner(function, config, invoker, function_stats, local_stop, worker=number)
        thread = threading.Thread(target=runner.run, name=f"{function.name}-{number}")
        thread.start()
        threads.append(thread)
        runners.append(runner)
    while not pool.stop.value and os.getppid() == host:
        if pool.drain.value:
            for runner in runners:
                runner.draining.set()
        time.sleep(0.2)
    local_stop.set()
    for thread in threads:
        thread.join()
    producers.close()
    worker_loop.close()
    pool.results.put({"worker": number, "functions": {name: s.as_dict() for name, s in stats.functions.items()}})


@dataclass
class PoolSignals:
    """What the host process and its workers share: stop and drain flags, and the workers' reports. Flags in shared
    memory that the workers poll, not ``multiprocessing.Event``: setting an Event waits for every process asleep on
    it to wake, so a worker killed while waiting (the OOM killer) made the host's stop hang for ever."""

    stop: Any  # multiprocessing Value("b"): 1 once the host stops
    drain: Any  # 1 once --duration ran out
    results: Any


class WorkerPool:
    """Starts ``count`` worker processes and, on ``stop``, collects what they did.

    The workers are started with Ctrl-C and SIGTERM blocked, a mask they inherit: a group Ctrl-C while a worker
    imports the app (a second or two) killed it before it could ignore the signal, and nothing said so."""

    def __init__(self, count: int, config: HostConfig, app_module: str, durable_client_json: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.signals = PoolSignals(
            context.Value("b", 0, lock=False), context.Value("b", 0, lock=False), context.Queue()
        )
        self.processes = [
            context.Process(
                target=run_kafka_worker,
                args=(config, app_module, durable_client_json, self.signals, number),
                name=f"devhost-worker-{number}",
            )
            for number in range(1, count + 1)
        ]
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for process in self.processes:
                process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)

    def drain(self) -> None:
        """Ask every worker's triggers to land what is left (the host's ``--duration`` ran out)."""
        self.signals.drain.value = 1

    def stop(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Stop the workers and collect their reports; a worker that died reports nothing and is not waited for."""
        self.signals.stop.value = 1
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(reports) < len(self.processes) and time.monotonic() < deadline:
            try:
                reports.append(self.signals.results.get(timeout=0.5))
            except queue.Empty:
                if not any(process.is_alive() for process in self.processes):
                    break
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        return reports
