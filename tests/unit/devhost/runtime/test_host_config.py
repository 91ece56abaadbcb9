"""The local host's binding conversions: what functions receive and what they send, no broker needed."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from confluent_kafka import Message

from devhost.kafka.events import decode_batch
from devhost.kafka.output import OutputProducers, parse_output
from devhost.runtime.catalog import IndexedFunction, RetryPolicy, parse_timespan
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig, HostConfigError, KafkaOptions
from devhost.runtime.invoker import Invoker, WorkerLoop
from devhost.timers.ncrontab import Schedule, ScheduleError
from devhost.timers.runner import Clock, TimerRunner
from devhost.web.routes import compile_route
from functions.bindings import to_record
from shared.generator_ticks import OutgoingMessage, kafka_output_payload
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, ROOT


def _message(offset: int, value: bytes | None, key: bytes | None = b"user-1") -> Message:
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    return Message(
        topic="clickstream", partition=2, offset=offset, key=key, value=value, headers=headers,
        timestamp=(1, FIXED_NOW_MS + offset),
    )  # fmt: skip


def test_many_cardinality_batch_decodes_to_the_workers_kafka_events() -> None:
    events = decode_batch([_message(7, b'{"a": 1}'), _message(8, b"\xff", key=None)], "MANY")
    assert [type(e) for e in events] == [func.KafkaEvent, func.KafkaEvent]
    first, second = events
    assert (first.topic, first.partition, first.offset, first.key) == ("clickstream", 2, 7, "user-1")
    assert first.get_body() == b'{"a": 1}' and second.get_body() == b"\xff" and second.key is None
    assert base64.b64decode(first.headers[0]["Value"]).startswith(b"00-0af7")
    records = [to_record(e) for e in events]
    assert [r.timestamp_ms for r in records] == [FIXED_NOW_MS + 7, FIXED_NOW_MS + 8]
    assert (records[0].partition, records[0].offset, records[0].value) == (2, 7, b'{"a": 1}')


def test_one_cardinality_gives_a_single_event() -> None:
    event = decode_batch([_message(3, b"x")], "ONE")
    assert isinstance(event, func.KafkaEvent) and event.offset == 3 and event.get_body() == b"x"


def test_generator_payload_becomes_keyed_records_with_headers() -> None:
    payload = kafka_output_payload(
        [OutgoingMessage("u1", '{"x":1}'), OutgoingMessage("u2", '{"x":2}')],
        now=FIXED_NOW,
        headers={"traceparent": "00-abc-def-01"},
    )
    records = parse_output(payload)
    assert [(r.key, r.value) for r in records] == [(b"u1", b'{"x":1}'), (b"u2", b'{"x":2}')]
    assert records[0].headers == (("traceparent", b"00-abc-def-01"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", [b"plain text"]),
        ('{"no": "event fields"}', [b'{"no": "event fields"}']),
        ('["a", {"b": 1}]', [b"a", b'{"b":1}']),
        (["one", "two"], [b"one", b"two"]),
        (b"\x00raw", [b"\x00raw"]),
        (None, []),
    ],
)
def test_other_output_values_follow_the_extension(value: object, expected: list[bytes]) -> None:
    assert [(r.key, r.value) for r in parse_output(value)] == [(None, v) for v in expected]


def test_ncrontab_six_fields_seconds_first() -> None:
    moment = datetime(2026, 11, 24, 10, 30, 5, tzinfo=UTC)
    assert Schedule.parse("*/10 * * * * *").next_after(moment) == moment.replace(second=10)
    assert Schedule.parse("0 30 9 * * Mon-Fri").next_after(moment) == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert Schedule.parse("0 0 0 29 Feb *").next_after(moment) == datetime(2028, 2, 29, tzinfo=UTC)
    assert Schedule.parse("*/5 * * * *").next_after(moment) == moment.replace(minute=35, second=0)  # five fields


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * * *", "*/0 * * * * *", "a * * * * *", "0 0 0 31 2 *"])
def test_bad_schedules_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(datetime(2026, 1, 1, tzinfo=UTC))


def test_route_templates() -> None:
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1").groupdict() == {  # type: ignore[union-attr]
        "source": "sensors",
        "key": "s-1",
    }
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1/windows") is None
    assert compile_route("files/{*path}").fullmatch("files/a/b").groupdict() == {"path": "a/b"}  # type: ignore[union-attr]


def test_retry_policy_and_settings_resolution() -> None:
    assert parse_timespan("00:01:30") == 90 and parse_timespan("1.00:00:00.5") == 86400.5
    policy = RetryPolicy("exponential_backoff", 5, minimum_interval=2, maximum_interval=60)
    assert [policy.delay_before(n) for n in (1, 2, 3, 6)] == [2, 4, 8, 60]
    config = HostConfig({"TOPIC": "clicks"}, KafkaOptions())
    assert config.resolve("%TOPIC%") == "clicks"
    with pytest.raises(HostConfigError, match="MISSING"):
        config.resolve("%MISSING%")


class VirtualClock(Clock):
    """Time that moves only when the runner waits or a function works: a starved CPU changes nothing."""

    def __init__(self, stop: threading.Event, start: datetime) -> None:
        super().__init__(stop)
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def wait(self, seconds: float) -> bool:
        self.moment += timedelta(seconds=seconds)
        return self.stop.is_set()

    def work(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def _run_timer(
    busy_seconds: list[float], start: datetime, schedule: str = "* * * * * *"
) -> list[tuple[datetime, bool]]:
    """Run a timer on a virtual clock; the n-th invocation works ``busy_seconds[n]``."""
    fired: list[tuple[datetime, bool]] = []
    stop = threading.Event()
    clock = VirtualClock(stop, start)

    def tick(timer: func.TimerRequest) -> None:
        fired.append((clock.now(), timer.past_due))
        clock.work(busy_seconds[len(fired) - 1])
        if len(fired) == len(busy_seconds):
            stop.set()

    function = IndexedFunction(
        "tick", ({"type": "timerTrigger", "direction": "IN", "name": "timer", "schedule": schedule},), tick, None
    )
    config = HostConfig({}, KafkaOptions())
    loop = WorkerLoop()
    invoker = Invoker(loop, OutputProducers(config))
    try:
        TimerRunner(function, config, invoker, FunctionStats("tick", "t"), stop, clock).run()
    finally:
        loop.close()
    return fired


def test_timer_fires_on_schedule_with_a_timer_request() -> None:
    start = datetime(2026, 12, 4, 10, 0, 0, 300_000, tzinfo=UTC)
    fired = _run_timer([0.01] * 4, start)
    assert [moment for moment, _ in fired] == [start.replace(microsecond=0) + timedelta(seconds=n) for n in range(1, 5)]
    assert not any(past_due for _, past_due in fired)


def test_a_tick_missed_while_the_function_was_busy_fires_once_past_due() -> None:
    start = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
    fired = _run_timer([7.5, 0.01, 0.01], start, "*/5 * * * * *")  # busy 7.5 s: the tick at 10 s is missed
    moments = [(moment - start).total_seconds() for moment, _ in fired]
    assert moments == [5.0, 12.5, 15.0] and [past_due for _, past_due in fired] == [False, True, False]


def test_entity_batch_context_is_what_the_durable_sdk_reads() -> None:
    import azure.durable_functions as df

    from devhost.durable.entity_runtime import batch_context
    from devhost.durable.store import PendingOperation

    def counter(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0)
        if context.operation_name == "add":
            value += context.get_input()["amount"]
        context.set_state(value)
        context.set_result(value)

    handle = df.Entity.create(counter)
    operations = [
        PendingOperation(1, "counter", "k", "add", json.dumps(json.dumps({"amount": 2}))),  # as signal_entity posts it
        PendingOperation(2, "counter", "k", "add", json.dumps(json.dumps({"amount": 5}))),
        PendingOperation(3, "counter", "k", "get", None),
    ]
    result = json.loads(handle(batch_context("counter", "k", "10", operations)))
    assert result["entityExists"] is True and json.loads(result["entityState"]) == 17
    assert [json.loads(r["result"]) for r in result["results"]] == [12, 17, 17] and not any(
        r["isError"] for r in result["results"]
    )


def test_orchestrations_fail_indexing_with_a_message_naming_what_is_missing() -> None:
    import azure.durable_functions as df

    from devhost.runtime.catalog import IndexingError, index_app

    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def workflow(context: df.DurableOrchestrationContext) -> None:
        return None

    with pytest.raises(IndexingError, match=r"workflow: the local host does not run orchestrationTrigger.*func start"):
        index_app(app)


def test_the_projects_host_json_asks_for_at_least_once_on_a_bundle_that_honours_it() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    options = KafkaOptions.from_host_json(host)
    assert options.commit_on_failure is False and options.max_retries == -1
    assert options.max_batch_size == 10_000 and options.auto_commit_interval_ms == 200
    assert host["extensionBundle"]["version"] == "[4.37.0, 5.0.0)"  # Kafka extension 4.3.x: commitOnFailure


@pytest.mark.parametrize("value", ["false", "False", False])
def test_commit_on_failure_false_reads_as_false_however_it_is_written(value: object) -> None:
    options = KafkaOptions.from_host_json({"extensions": {"kafka": {"CommitOnFailure": value}}})
    assert options.commit_on_failure is False


@pytest.mark.parametrize(
    ("name", "value"), [("commitOnFailure", "no"), ("commitOnFailure", 0), ("maxRetries", "x"), ("maxBatchSize", 0)]
)
def test_kafka_options_of_the_wrong_type_are_refused(name: str, value: object) -> None:
    with pytest.raises(HostConfigError, match=name):
        KafkaOptions.from_host_json({"extensions": {"kafka": {name: value}}})


def test_kafka_defaults_are_the_extensions() -> None:
    options = KafkaOptions.from_host_json({})
    assert (options.commit_on_failure, options.max_retries, options.max_batch_size) == (True, 5, 64)
