"""``python -m devhost start``: the local host's life cycle, from settings to the exit summary."""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from devhost.durable.entity_runtime import EntityRuntime
from devhost.durable.store import EntityStore, SqliteEntityStore
from devhost.errors import DevHostError
from devhost.kafka.client_config import client_config
from devhost.kafka.output import OutputProducers
from devhost.kafka.trigger import KafkaTriggerRunner
from devhost.registry.server import MOUNT as REGISTRY_MOUNT
from devhost.registry.server import registry_app
from devhost.registry.store import RegistryStore
from devhost.runtime.catalog import IndexedFunction, enabled, index_app
from devhost.runtime.console import console, say
from devhost.runtime.function_stats import HostStats
from devhost.runtime.host_config import PROJECT_ROOT, HostConfig, load_host_config
from devhost.runtime.host_loop import HostLoop
from devhost.runtime.invoker import Invoker, WorkerLoop
from devhost.runtime.workers import WorkerPool
from devhost.services.broker import BrokerError, embedded_broker, ensure_topics, wait_for_metadata
from devhost.timers.runner import TimerRunner
from devhost.web.dashboard.stats import LiveStats
from devhost.web.routes import http_routes
from devhost.web.server import DURABLE_PREFIX, HttpFrontEnd
from shared import kafka_clients, metric_names
from shared.ncrontab import Schedule, ScheduleError

log = logging.getLogger("devhost")
EXAMPLE_SETTINGS = PROJECT_ROOT / "local.settings.example.json"
DRAIN_GRACE_S = 30.0  # beyond one batch window, what a timed run waits for the last batches to land
BROKER_WAIT_S = 15.0  # how long a start waits for the broker of --broker HOST:PORT or of the settings to answer
NO_BROKER_HINT = "start one, or run with --broker embedded --lake .lake (what make run does)"
HTTP_HOST = "127.0.0.1"


class PortUnavailable(DevHostError):
    """The HTTP port cannot be listened on: another host (or another program) holds it, or it is not allowed."""


def port_unavailable(port: int, error: OSError) -> PortUnavailable:
    why = error.strerror or str(error)
    return PortUnavailable(
        f"cannot listen on {HTTP_HOST}:{port} ({why}): is another devhost running? Stop it, "
        f"or choose another port with --port (e.g. --port {port + 1 if port < 65_535 else port - 1})"
    )


def check_port(port: int) -> None:
    """``PortUnavailable`` unless ``port`` can be listened on now: checked before a broker or Azurite is started,
    so a port that is taken costs nothing (the listener binds it with SO_REUSEADDR too, as aiohttp does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HTTP_HOST, port))
        except OSError as error:
            raise port_unavailable(port, error) from None


@dataclass(frozen=True)
class StartOptions:
    settings: Path | None = None
    broker: str | None = None
    lake: Path | None = None
    storage: str | None = None
    azurite_dir: Path | None = None
    timers: bool = True
    duration: float | None = None
    workers: int = 1
    port: int = 7071
    partitions: int = 4
    app_module: str = "function_app"
    final_timers: tuple[str, ...] = ("compact_",)
    """Timer functions whose names start with one of these run once more at shutdown, after the last
    batches landed, so that a local run ends with a compacted lake (the Functions host has no such step)."""


def _stop_starting(signum: int, _frame: Any) -> None:
    """SIGTERM while the host starts: unwind as Ctrl-C does, so the broker and Azurite it started are stopped (the
    default action would end the process at once and leave them running)."""
    raise KeyboardInterrupt(f"signal {signum} while starting")


class LocalHost:
    """Indexes the app and runs its functions until ``stop`` is set (Ctrl-C, SIGTERM or --duration)."""

    def __init__(self, options: StartOptions) -> None:
        self.options = options
        self.stop = threading.Event()
        self.timers_stop = threading.Event()  # set first when --duration runs out, so the generators stop
        self.stats = HostStats()
        self.reader = InMemoryMetricReader()
        self.threads: list[threading.Thread] = []
        self.kafka_runners: list[KafkaTriggerRunner] = []
        self.crashed: dict[str, BaseException] = {}  # function name -> what ended its runner
        self.timer_runners: list[TimerRunner] = []
        self.timer_threads: list[threading.Thread] = []
        self.pool: WorkerPool | None = None
        self.config = HostConfig({})

    def run(self) -> int:
        check_port(self.options.port)
        signal.signal(signal.SIGTERM, _stop_starting)  # until _take_stop_signals: the stack stops what was started
        with ExitStack() as stack:
            config = self.config = self._configure(stack)
            os.environ.update(config.settings)
            metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))
            _, unit, description = metric_names.METRICS[metric_names.CONSUMER_LAG]
            metrics.get_meter("devhost").create_observable_gauge(
                metric_names.CONSUMER_LAG, callbacks=[self._observe_lag], unit=unit, description=description
            )
            app = importlib.import_module(self.options.app_module).app
            functions = enabled(index_app(app), os.environ)
            self._check_schedules(functions, config)
            self._print_index(functions)
            self._prepare_topics(functions, config)
            worker_loop = WorkerLoop()
            stack.callback(worker_loop.close)
            producers = OutputProducers(config)
            stack.callback(producers.close)
            durable_client = durable_client_json(f"http://127.0.0.1:{self.options.port}{DURABLE_PREFIX}/")
            invoker = Invoker(worker_loop, producers, durable_client)
            host_loop = HostLoop()
            stack.callback(host_loop.close)
            entities = self._entities(functions, invoker, config, stack, host_loop)
            live = LiveStats(self.reader)
            threading.Thread(target=live.sample_until, args=(self.stop,), name="dashboard-rates", daemon=True).start()
            front = HttpFrontEnd(
                http_routes(functions),
                invoker,
                entities,
                self.stats,
                lambda: live.snapshot(waiting=self._waiting()),
                mounts=self._registry(config, stack),
            )
            try:  # taken since check_port: the stack stops what was started
                host_loop.serve(front.application(), HTTP_HOST, self.options.port)
            except OSError as error:
                raise port_unavailable(self.options.port, error) from None
            self._take_stop_signals()  # from here on Ctrl-C stops as a run does: what landed is committed, exit 0
            say(f"devhost: listening on http://127.0.0.1:{self.options.port} (dashboard: /dashboard)")
            self._start_runners(functions, config, invoker)
            if self.options.workers > 1:
                self.pool = WorkerPool(self.options.workers - 1, config, self.options.app_module, durable_client)
            self._wait()
            self._shutdown(entities, host_loop, self.pool)
        say(self.stats.summary())
        if self.crashed:
            say(f"devhost: stopped with an error, its records left for the next run: {', '.join(sorted(self.crashed))}")
            return 1
        return 0

    def _configure(self, stack: ExitStack) -> HostConfig:
        options = self.options
        settings_path = options.settings
        if settings_path is None and not (PROJECT_ROOT / "local.settings.json").exists():
            settings_path = EXAMPLE_SETTINGS
            say(f"devhost: no local.settings.json; using {EXAMPLE_SETTINGS.name}")
        overrides: dict[str, str] = {}
        if options.broker and options.broker != "embedded":
            overrides["KAFKA_BROKER_LIST"] = options.broker
        if options.lake is not None and options.storage != "azurite":
            overrides |= {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(options.lake.resolve())}
        # The app's settings are checked before a broker or Azurite is started or waited for: a bad one is one line
        # and exit 2 at once, not a 15 s wait for a broker ("no broker answered", the setting never named), nor
        # PLAINTEXT tried with a broker off this machine. Stand-ins for the addresses of what is started below.
        stand_ins: dict[str, str] = {}
        if options.broker == "embedded":
            stand_ins |= {"KAFKA_BROKER_LIST": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
        if options.storage == "azurite":
            stand_ins |= {"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
        check_app_settings(self._with_registry(load_host_config(settings_path, overrides | stand_ins)).settings)
        embedded = None
        if options.broker == "embedded":
            embedded = overrides["KAFKA_BROKER_LIST"] = stack.enter_context(embedded_broker())
            overrides["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
            # Run before the broker stops (the stack unwinds in reverse): the generators' producers, kept across
            # ticks, would otherwise keep reconnecting to the stopped broker and log FAIL errors until exit.
            stack.callback(kafka_clients.close_producers)
        if options.storage == "azurite":
            from devhost.services.azurite import start_azurite

            location = (options.azurite_dir or PROJECT_ROOT / ".azurite").resolve()
            azurite = stack.enter_context(start_azurite(location))
            overrides |= {"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": azurite.connection_string}
            overrides["AzureWebJobsStorage"] = azurite.connection_string
        config = self._with_registry(load_host_config(settings_path, overrides))
        if embedded is not None:
            self._announce_broker(embedded, state_directory(config), stack)
        if embedded is None:
            address = config.settings.get("KAFKA_BROKER_LIST", "127.0.0.1:9092")
            named_by = "--broker" if options.broker else "KAFKA_BROKER_LIST"
            try:
                wait_for_metadata({"bootstrap.servers": address, "logger": log}, timeout=BROKER_WAIT_S)
            except BrokerError as error:
                raise BrokerError(
                    f"no broker answered at {address} ({named_by}) in {BROKER_WAIT_S:.0f}s: {NO_BROKER_HINT}"
                ) from error
        return config

    def _with_registry(self, config: HostConfig) -> HostConfig:
        """``config``, naming this host's own schema registry when the settings name none (Avro sources find it)."""
        if serves_registry(config.settings):
            config.settings["SCHEMA_REGISTRY_URL"] = f"http://127.0.0.1:{self.options.port}{REGISTRY_MOUNT}"
        return config

    @staticmethod
    def _announce_broker(address: str, state: Path, stack: ExitStack) -> None:
        """Say where the embedded broker listens, and keep its address in ``<lake>.state/broker`` while it runs,
        for the operator tools (``KAFKA_BROKER_LIST``)."""
        say(f"devhost: embedded broker at {address} (for the tools: KAFKA_BROKER_LIST={address})")
        state.mkdir(parents=True, exist_ok=True)
        file = state / "broker"
        file.write_text(address + "\n", encoding="utf-8")

        def remove() -> None:
            if file.exists() and file.read_text(encoding="utf-8").strip() == address:  # not another host's
                file.unlink()

        stack.callback(remove)

    def _registry(self, config: HostConfig, stack: ExitStack) -> dict[str, Any]:
        """The schema registry this host serves when SCHEMA_REGISTRY_URL named no other, persisted beside the lake."""
        if config.settings.get("SCHEMA_REGISTRY_URL") != f"http://127.0.0.1:{self.options.port}{REGISTRY_MOUNT}":
            return {}
        store = RegistryStore(state_directory(config) / "registry.sqlite")
        stack.callback(store.close)
        return {REGISTRY_MOUNT: registry_app(store)}

    def _print_index(self, functions: list[IndexedFunction]) -> None:
        say(f"devhost: indexed {len(functions)} functions")
        for function in functions:
            trigger = function.trigger
            detail = trigger.get("topic") or trigger.get("schedule") or trigger.get("route") or ""
            say(f"  {function.name}: {function.trigger_type} {detail}")
            self.stats.add(function.name, function.trigger_type)

    def _prepare_topics(self, functions: list[IndexedFunction], config: HostConfig) -> None:
        by_cluster: dict[str, tuple[dict[str, Any], set[str]]] = {}
        for function in functions:
            for binding in function.bindings:
                if binding["type"] in ("kafka", "kafkaTrigger"):
                    settings = client_config(binding, config)
                    entry = by_cluster.setdefault(settings["bootstrap.servers"], (settings, set()))
                    entry[1].add(config.resolve(binding["topic"]))
        for settings, topics in by_cluster.values():
            ensure_topics(settings, topics, self.options.partitions)

    def _entities(
        self,
        functions: list[IndexedFunction],
        invoker: Invoker,
        config: HostConfig,
        stack: ExitStack,
        host_loop: HostLoop,
    ) -> EntityRuntime | None:
        entity_functions = [f for f in functions if f.trigger_type == "entityTrigger"]
        if not entity_functions:
            return None
        store: EntityStore
        if self.options.storage == "azurite":
            from devhost.durable.table_store import TableEntityStore

            store = TableEntityStore(config.settings["AzureWebJobsStorage"])
        else:
            store = SqliteEntityStore(state_directory(config) / "entities.sqlite")
        stack.callback(store.close)
        runtime = EntityRuntime(entity_functions, store, invoker, self.stats.functions)
        resumed = host_loop.run(runtime.resume())
        if resumed:
            say(f"devhost: resuming {resumed} entity signals accepted before the last stop")
        return runtime

    def _check_schedules(self, functions: list[IndexedFunction], config: HostConfig) -> None:
        """Every timer's schedule parsed before anything runs: one that is not NCRONTAB, or that never fires (the 31st
        of February), stops the host at once (``ScheduleError`` naming it), not its timer's thread once running."""
        now = datetime.now(UTC)
        for function in functions:
            if function.trigger_type == "timerTrigger":
                expression = config.resolve(function.trigger["schedule"])
                try:
                    Schedule.parse(expression).next_after(now)
                except ScheduleError as error:
                    raise ScheduleError(f"{function.name}: schedule {expression!r}: {error}") from None

    def _start_runners(self, functions: list[IndexedFunction], config: HostConfig, invoker: Invoker) -> None:
        for function in functions:
            stats = self.stats.functions[function.name]
            runner: KafkaTriggerRunner | TimerRunner
            if function.trigger_type == "kafkaTrigger":
                runner = KafkaTriggerRunner(function, config, invoker, stats, self.stop)
                self.kafka_runners.append(runner)
            elif function.trigger_type == "timerTrigger" and self.options.timers:
                runner = TimerRunner(function, config, invoker, stats, self.timers_stop)
                self.timer_runners.append(runner)
            else:
                continue
            thread = threading.Thread(target=self._reported, args=(function.name, runner.run), name=function.name)
            thread.daemon = True
            thread.start()
            self.threads.append(thread)
            if isinstance(runner, TimerRunner):
                self.timer_threads.append(thread)

    def _reported(self, name: str, run: Callable[[], None]) -> None:
        """``run`` a trigger's runner; one that ends with an error (a bug of this host's, not a failed invocation:
        those are retried) is kept, so the run says so and exits 1 instead of 0 with the function silently gone."""
        try:
            run()
        except BaseException as error:
            self.crashed[name] = error
            say(f"devhost: {name} stopped: {type(error).__name__}: {error}"[:300])
            raise

    def _lag(self) -> dict[str, int]:
        """Lag per source for the dashboard; a topic set by ``<SOURCE>_TOPIC`` is shown under that source."""
        settings = self.config.settings
        sources = {value: name[: -len("_TOPIC")].lower() for name, value in settings.items() if name.endswith("_TOPIC")}
        return {sources.get(r.topic, r.topic): r.stats.lag for r in self.kafka_runners if r.stats.lag is not None}

    def _observe_lag(self, _options: CallbackOptions) -> list[Observation]:
        """Called by the metric reader on each collection: lag per source, from the first unprocessed offset."""
        return [Observation(lag, {"source": source}) for source, lag in self._lag().items()]

    def _waiting(self) -> dict[str, dict[str, Any]]:
        """Partitions whose batch keeps failing, per source (the dashboard shows them as waiting)."""
        settings = self.config.settings
        sources = {value: name[: -len("_TOPIC")].lower() for name, value in settings.items() if name.endswith("_TOPIC")}
        waiting: dict[str, dict[str, Any]] = {}
        for runner in self.kafka_runners:
            with runner.stats._lock:
                batches = {str(p): dict(b) for p, b in runner.stats.waiting.items()}
            if batches:
                waiting.setdefault(sources.get(runner.topic, runner.topic), {}).update(batches)
        return waiting

    def _take_stop_signals(self) -> None:
        """Ctrl-C and SIGTERM set ``stop`` instead of unwinding the start (exit 130). Taken before the host says it
        is listening, so that a stop right after that line, while the runners start, is an ordinary one."""
        for name in ("SIGINT", "SIGTERM"):
            signal.signal(getattr(signal, name), lambda *_: self.stop.set())

    def _wait(self) -> None:
        deadline = None if self.options.duration is None else time.monotonic() + self.options.duration
        interactive = sys.stdout.isatty()  # otherwise (a pipe, a file) the whole line every 5 s, no live line
        printed = 0.0
        try:
            while not self.stop.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._drain()
                    break
                self.stop.wait(1.0 if remaining is None else min(1.0, remaining))
                now = time.monotonic()
                if interactive:
                    console.status(self.stats.status_line(shutil.get_terminal_size().columns - 1))
                elif now - printed >= 5:
                    say(self.stats.live_line())
                    printed = now
        finally:
            console.end_status()
        self.timers_stop.set()
        self.stop.set()

    def _drain(self) -> None:
        """``--duration`` ran out: stop the timers (the generators among them), then wait until every Kafka
        trigger's consumer group has committed all its topic holds (each worker's windows close at their first
        empty poll), so a timed run ends with no lag. All of it within one window and ``DRAIN_GRACE_S``;
        Ctrl-C stops at once; a batch that keeps failing is left for the next run, as on any stop."""
        say("devhost: duration reached; timers stopped, processing what is left")
        deadline = time.monotonic() + self.config.kafka.subscriber_interval_seconds + DRAIN_GRACE_S
        self.timers_stop.set()
        for thread in self.timer_threads:
            while thread.is_alive() and not self.stop.is_set() and time.monotonic() < deadline:
                thread.join(0.2)
        for runner in self.kafka_runners:
            runner.draining.set()
        if self.pool is not None:
            self.pool.drain()
        pending = list(self.kafka_runners)
        while pending and not self.stop.is_set() and time.monotonic() < deadline:
            pending = [runner for runner in pending if not self._caught_up(runner)]
            if pending:
                self.stop.wait(0.5)
        if pending and not self.stop.is_set():
            names = ", ".join(runner.function.name for runner in pending)
            say(f"devhost: drain timed out; left for the next run: {names}")

    @staticmethod
    def _caught_up(runner: KafkaTriggerRunner) -> bool:
        try:
            return runner.fully_committed()
        except KafkaException as error:
            log.warning("%s: lag unknown while draining: %s", runner.function.name, error)
            return False

    def _shutdown(self, entities: EntityRuntime | None, host_loop: HostLoop, pool: WorkerPool | None) -> None:
        say("devhost: stopping; finishing in-flight invocations and committing offsets")
        for thread in self.threads:
            thread.join(timeout=120)
        if pool is not None:
            self._collect(pool)
        if entities is not None:
            try:
                host_loop.run(entities.drained(), timeout=60)
            except TimeoutError:  # an entity still retrying a failed commit: it stalls, its signals kept
                host_loop.run(entities.stop())
                say("devhost: entities still retrying after 60 s; their signals stay in the inbox for the next start")
        self._final_timer_runs()

    def _final_timer_runs(self) -> None:
        prefixes = self.options.final_timers
        for runner in self.timer_runners:
            if prefixes and runner.function.name.startswith(prefixes):
                say(f"devhost: final run of {runner.function.name}")
                runner.run_once()

    def _collect(self, pool: WorkerPool) -> None:
        """Print each worker's events per Kafka-triggered function, then add the others' to the summary."""
        own = {name: stats.as_dict() for name, stats in self.stats.functions.items()}
        reports = [{"worker": 0, "functions": own}, *pool.stop()]
        reported = {report["worker"] for report in reports}
        for number in range(1, len(pool.processes) + 1):
            if number not in reported:  # killed (the OOM killer, a signal): its uncommitted records come again
                self.crashed[f"worker {number}"] = RuntimeError("the worker process ended without a report")
        for report in reports:
            entries = [e for e in report["functions"].values() if e["trigger"] == "kafkaTrigger"]
            say(f"worker {report['worker']}: " + " ".join(f"{e['name']}={e['events']}" for e in entries))
        for report in reports[1:]:
            for entry in report["functions"].values():
                self.stats.functions[entry["name"]].merge(entry)


def check_app_settings(settings: Mapping[str, str]) -> None:
    """Refuse (``ConfigurationError``, naming each app setting) the settings the app refuses when it is indexed: the
    global ones (``KAFKA_SECURITY_PROTOCOL=PLAINTEXT`` with a broker off this machine among them) and every
    source's, each source with its own topic and consumer group (``functions.processing``)."""
    from shared.settings import check_sources_apart, load_settings, load_source_settings
    from shared.sources import SOURCES

    load_settings(settings)
    check_sources_apart({name: load_source_settings(name, settings) for name in SOURCES})


def state_directory(config: HostConfig) -> Path:
    """Where the host keeps what outlives a run beside a local lake: ``<lake>.state/``."""
    lake_root = Path(config.settings.get("LAKE_LOCAL_ROOT") or ".lake").resolve()
    return lake_root.parent / f"{lake_root.name}.state"


def serves_registry(settings: dict[str, str]) -> bool:
    """The host serves the schema registry unless SCHEMA_REGISTRY_URL names one or the Event Hubs one is used."""
    return not settings.get("SCHEMA_REGISTRY_URL", "").strip() and settings.get("SCHEMA_REGISTRY_KIND") != "eventhubs"


def durable_client_json(rpc_base_url: str) -> str:
    """The durable client binding's payload: the Durable HTTP API of this host."""
    return json.dumps(
        {
            "taskHubName": "DevhostHub",
            "creationUrls": {},
            "managementUrls": {},
            "rpcBaseUrl": rpc_base_url,
            "requiredQueryStringParameters": "",
        }
    )
