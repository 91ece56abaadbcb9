"""The Kafka trigger: its own output, and its listener and executor shaped like the Kafka extension's."""

from __future__ import annotations

import io
import itertools
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from devhost.kafka.output import OutputProducers
from devhost.kafka.trigger import KafkaTriggerRunner
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig, KafkaOptions
from devhost.runtime.invoker import Invoker, WorkerLoop
from tests.conftest import ROOT


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


# The listener and the executor, against a fake librdkafka consumer (Kafka extension 4.3.2:
# KafkaListener.ProcessSubscription, FunctionExecutorBase.Flush, MultipleItemFunctionExecutor.ReaderAsync,
# AsyncCommitStrategy.Commit). Times are scaled down: KafkaOptions built directly takes fractional windows.

BINDING = {
    "type": "kafkaTrigger",
    "name": "events",
    "topic": "t",
    "brokerList": "127.0.0.1:9",
    "consumerGroup": "g",
    "cardinality": "MANY",
}
Call = tuple[float, list[tuple[int, int]]]  # (start, the batch's (partition, offset)s)


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return b"{}"

    def key(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return "t"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def headers(self) -> None:
        return None


class _Consumer:
    """librdkafka's consumer as the trigger uses it. Records become available at scripted times after the
    start (``at``) or one every ``every`` seconds on partition 0; each is handed out once, in order.
    ``store_offsets`` behaves as librdkafka's: a revoked partition fails the call (after the others in it
    were stored). Each call records its thread: confluent-kafka serialises the calls on one consumer, so a
    call from another thread than the polling one waits for the poll to return (or starves)."""

    def __init__(self, at: Sequence[tuple[float, int, int]] = (), every: float | None = None) -> None:
        self.t0 = time.monotonic()
        self.script = list(at)
        self.every = every
        self.handed = 0
        self.lock = threading.Lock()
        self.consume_calls: list[float] = []
        self.store_calls: list[list[tuple[int, int]]] = []
        self.stored: dict[int, int] = {}
        self.revoked: set[int] = set()
        self.closed = False
        self.threads: set[str] = set()

    def __getattribute__(self, name: str) -> Any:
        if name in ("subscribe", "consume", "store_offsets", "assignment", "position", "get_watermark_offsets"):
            object.__getattribute__(self, "threads").add(threading.current_thread().name)
        return object.__getattribute__(self, name)

    def __call__(self, _settings: dict[str, Any]) -> _Consumer:
        return self  # stands in for the Consumer class: the runner builds "its" consumer

    def _available(self) -> list[tuple[int, int]]:
        now = time.monotonic() - self.t0
        if self.every is not None:
            return [(0, offset) for offset in range(int(now / self.every))]
        return [(partition, offset) for at, partition, offset in self.script if at <= now]

    def subscribe(self, _topics: list[str], on_assign: Any = None) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[_Message]:
        self.consume_calls.append(time.monotonic())
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                available = self._available()
                if len(available) > self.handed:
                    out = available[self.handed : self.handed + num_messages]
                    self.handed += len(out)
                    return [_Message(partition, offset) for partition, offset in out]
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.002)

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.store_calls.append([(o.partition, o.offset) for o in offsets])
        failed = [o for o in offsets if o.partition in self.revoked]
        for o in offsets:
            if o.partition not in self.revoked:
                self.stored[o.partition] = o.offset
        if failed:
            raise KafkaException(KafkaError(KafkaError._STATE, "Local: Erroneous state"))

    def assignment(self) -> list[TopicPartition]:
        return []

    def position(self, _partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []

    def get_watermark_offsets(self, *_args: Any, **_kwargs: Any) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        self.closed = True


class _Invoker:
    """Records each invocation; takes ``seconds``; fails the first ``failures``; waits for ``gate`` if given."""

    def __init__(self, consumer: _Consumer, seconds: float = 0.0, failures: int = 0) -> None:
        self.consumer = consumer
        self.seconds, self.failures = seconds, failures
        self.gate: threading.Event | None = None
        self.calls: list[Call] = []
        self.stored_at_start: list[dict[int, int]] = []

    def invoke(self, _function: Any, arguments: dict[str, Any]) -> None:
        events = arguments["events"]
        self.calls.append((time.monotonic(), [(e.partition, e.offset) for e in events]))
        self.stored_at_start.append(dict(self.consumer.stored))
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds)
        if len(self.calls) <= self.failures:
            raise OSError("the lake is down")


@contextmanager
def _running(
    monkeypatch: pytest.MonkeyPatch,
    consumer: _Consumer,
    invoker: _Invoker,
    *,
    capacity: int | None = None,
    **options: Any,
) -> Iterator[tuple[KafkaTriggerRunner, threading.Thread]]:
    """A runner on its listener thread, stopped (and checked to have stopped) on the way out."""
    import devhost.kafka.trigger as trigger_module

    monkeypatch.setattr(trigger_module, "Consumer", consumer)
    function = IndexedFunction("process_t", (BINDING,), lambda events: None, None)
    config = HostConfig({}, KafkaOptions(**({"commit_on_failure": False, "max_retries": -1} | options)))
    extra = {} if capacity is None else {"channel_capacity": capacity}
    runner = KafkaTriggerRunner(
        function,
        config,
        invoker,  # type: ignore[arg-type]
        FunctionStats("process_t", "kafkaTrigger"),
        threading.Event(),
        **extra,
    )
    thread = threading.Thread(target=runner.run, daemon=True, name="listener")
    thread.start()
    consumer.t0 = time.monotonic()
    try:
        yield runner, thread
    finally:
        runner.stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the runner did not stop"


def _wait(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _offsets(calls: list[Call]) -> list[int]:
    return [offset for _, batch in calls for _, offset in batch]


@pytest.mark.parametrize(
    ("window", "invocation", "expected_gap"),
    [
        (0.4, 0.25, 0.45),  # the window (plus the 50 ms idle backoff) is the longer: the listener reads ahead
        (0.3, 0.5, 0.5),  # the invocation is the longer: the next batch waits in the channel, taken at once
    ],
)
def test_a_batch_is_cut_every_max_of_window_and_invocation_not_their_sum(
    monkeypatch: pytest.MonkeyPatch, window: float, invocation: float, expected_gap: float
) -> None:
    """What bench/cost.py prices: at a steady rate, executions every max(W, P) (the extension), not W + P."""
    consumer = _Consumer(every=0.005)
    invoker = _Invoker(consumer, seconds=invocation)
    with _running(monkeypatch, consumer, invoker, max_batch_size=10_000, subscriber_interval_seconds=window):
        _wait(lambda: len(invoker.calls) >= 9, seconds=30)  # the first call aside, 7 gaps between steady batches
    starts = [start for start, _ in invoker.calls[1:]]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 7, gaps
    # Scheduling delays only lengthen a gap, and the median shrugs off a few: it sits at max(W, P) (the
    # expected gap), below the midpoint between that and W + P, where batches cut after the invocation sit.
    # Never under max(W, P): a batch is not cut before its window ends, nor invoked before the last returned.
    median = statistics.median(gaps)
    assert 0.95 * max(window, invocation) <= median < (expected_gap + window + invocation) / 2, gaps
    offsets = _offsets(invoker.calls)
    assert offsets == list(range(len(offsets))), "every record once, in order"


@pytest.mark.parametrize("capacity", [1, 2])
def test_the_listener_reads_ahead_until_the_channel_is_full_then_stops_polling(
    monkeypatch: pytest.MonkeyPatch, capacity: int
) -> None:
    consumer = _Consumer(every=0.005)
    invoker = _Invoker(consumer)
    invoker.gate = threading.Event()  # the first invocation hangs until the gate opens
    extra = {} if capacity == 1 else {"capacity": capacity}  # 1: the default, host.json's
    with _running(monkeypatch, consumer, invoker, **extra, max_batch_size=10_000, subscriber_interval_seconds=0.2) as (
        runner,
        _thread,
    ):
        try:
            _wait(lambda: invoker.calls)
            first = len(invoker.calls[0][1])
            # The channel full, and the listener holding the next batch: no poll for three windows.
            _wait(lambda: runner.channel.full() and time.monotonic() - consumer.consume_calls[-1] > 0.6)
            handed = consumer.handed
            assert handed > first, "the listener did not read ahead while the invocation ran"
            polls = len(consumer.consume_calls)
            time.sleep(0.5)  # not a synchronisation: a span in which no poll may happen
            assert len(consumer.consume_calls) == polls, "the listener polled with the channel full"
            assert consumer.handed == handed
        finally:
            invoker.gate.set()
        _wait(lambda: len(invoker.calls) >= capacity + 2)
    offsets = _offsets(invoker.calls)
    assert offsets == list(range(len(offsets)))
    # What it read is the invocation in hand, `capacity` batches in the channel and the one waiting to get in,
    # which run next once the gate opens: capacity + 2 batches, not the whole stream of the last few seconds.
    assert handed == len(_offsets(invoker.calls[: capacity + 2])), [len(batch) for _, batch in invoker.calls]


def test_after_an_early_flush_the_window_goes_on_gathering_and_flushes_nothing_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KafkaListener.cs alreadyFlushedInCurrentExecution: 12 records at once, 1 more at 0.15 s, batches of 5.
    Two flushes at once; the other 3 wait for the end of the second window, not a fresh window's."""
    window = 0.5
    consumer = _Consumer(at=[(0.0, 0, offset) for offset in range(12)] + [(0.15, 0, 12)])
    invoker = _Invoker(consumer)
    with _running(monkeypatch, consumer, invoker, max_batch_size=5, subscriber_interval_seconds=window):
        _wait(lambda: len(invoker.calls) >= 3)
    assert [[offset for _, offset in batch] for _, batch in invoker.calls] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [10, 11, 12],
    ]
    # Flushed early, in the first window: not at its end (a window is never shorter than `window`).
    assert invoker.calls[1][0] - consumer.t0 < 0.8 * window
    # At the second window's end: never before it (the listener may start a hair before t0), and not as late
    # as a third window's end. A flush at the first window's end, or a fresh window's from the early flush or
    # from record 12 at 0.15 s, would all come before 2 * window.
    assert 2 * window - 0.05 <= invoker.calls[2][0] - consumer.t0 < 3 * window


def test_offsets_are_stored_after_success_a_partition_at_a_time_until_the_first_revoked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AsyncCommitStrategy: StoreOffset per partition, from the batch's last record's partition backwards;
    a revoked partition throws and the rest of the batch's partitions are not stored. Batches already
    read still run (the revoke handler only logs)."""
    records = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]  # stored in the order p1, p0, p2
    consumer = _Consumer(at=[(0.0, p, o) for p, o in records] + [(0.6, 0, 2)])
    consumer.revoked = {0}
    invoker = _Invoker(consumer)
    with _running(monkeypatch, consumer, invoker, max_batch_size=100, subscriber_interval_seconds=0.3):
        _wait(lambda: len(invoker.calls) >= 2)
    assert invoker.stored_at_start[0] == {}, "stored before the invocation ran"
    assert consumer.store_calls[:2] == [[(1, 2)], [(0, 2)]]
    assert consumer.stored == {1: 2}, "partition 2 comes after the revoked partition 0: not stored"
    assert invoker.calls[1][1] == [(0, 2)]  # the next batch of the revoked partition still ran
    assert consumer.closed


def test_only_the_listeners_thread_calls_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = _Consumer(every=0.01)
    invoker = _Invoker(consumer, seconds=0.1, failures=2)
    with _running(monkeypatch, consumer, invoker, max_batch_size=10_000, subscriber_interval_seconds=0.3):
        _wait(lambda: len(consumer.store_calls) >= 3)
    assert consumer.threads == {"listener"}


def test_a_failed_batch_is_retried_in_place_and_nothing_after_it_runs_first(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = _Consumer(every=0.01)
    invoker = _Invoker(consumer, seconds=0.1, failures=3)
    with _running(monkeypatch, consumer, invoker, max_batch_size=10_000, subscriber_interval_seconds=0.3) as (
        runner,
        _thread,
    ):
        _wait(lambda: len(invoker.calls) >= 6)
    first = invoker.calls[0][1]
    assert [batch for _, batch in invoker.calls[:4]] == [first] * 4  # three failures, then it succeeds
    assert all(stored == {} for stored in invoker.stored_at_start[:4]), "a failed batch's offsets were stored"
    assert consumer.store_calls[0] == [(0, first[-1][1] + 1)]
    assert invoker.calls[4][1][0] == (0, first[-1][1] + 1), "the next batch follows the retried one"
    assert runner.stats.failures == 3


def test_max_retries_skips_a_batch_after_that_many_failed_rounds_more(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = _Consumer(at=[(0.0, 0, offset) for offset in range(3)])
    invoker = _Invoker(consumer, failures=100)
    with _running(monkeypatch, consumer, invoker, max_retries=2, max_batch_size=100, subscriber_interval_seconds=0.2):
        _wait(lambda: consumer.store_calls)
        polls = len(consumer.consume_calls)
        _wait(lambda: len(consumer.consume_calls) >= polls + 3)  # the listener went on past the stored batch
    assert len(invoker.calls) == 3  # the first round and maxRetries 2 more, then stored anyway
    assert consumer.stored == {0: 3}


def test_a_stop_finishes_the_batch_in_hand_drops_the_channels_and_closes_the_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = _Consumer(every=0.005)
    invoker = _Invoker(consumer)
    invoker.gate = threading.Event()
    with _running(monkeypatch, consumer, invoker, max_batch_size=10_000, subscriber_interval_seconds=0.2) as (
        runner,
        thread,
    ):
        _wait(lambda: runner.channel.full() and time.monotonic() - consumer.consume_calls[-1] > 0.3)
        runner.stop.set()
        invoker.gate.set()
        thread.join(5)
        assert not thread.is_alive()
    assert len(invoker.calls) == 1, "a batch of the channel ran after the stop"
    assert consumer.stored == {0: invoker.calls[0][1][-1][1] + 1}  # the local host stores the batch in hand
    assert consumer.closed


def test_a_stop_while_the_batch_in_hand_keeps_failing_stores_none_of_its_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch that never succeeded (the lake down) is durable nowhere: at a stop it must come again. Its offsets
    were stored as the stop's last act, as though it had landed, and its records were lost."""
    consumer = _Consumer(at=[(0.0, 0, offset) for offset in range(3)])
    invoker = _Invoker(consumer, failures=10**6)
    with _running(monkeypatch, consumer, invoker, max_batch_size=100, subscriber_interval_seconds=0.2) as (
        runner,
        thread,
    ):
        _wait(lambda: len(invoker.calls) >= 2)
        runner.stop.set()
        thread.join(5)
        assert not thread.is_alive()
    assert _offsets(invoker.calls[:1]) == [0, 1, 2]
    assert consumer.closed and consumer.store_calls == [] and consumer.stored == {}


def test_draining_closes_a_window_at_its_first_empty_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = _Consumer(at=[(0.0, 0, offset) for offset in range(3)])
    invoker = _Invoker(consumer)
    with _running(monkeypatch, consumer, invoker, max_batch_size=100, subscriber_interval_seconds=30) as (
        runner,
        _thread,
    ):
        runner.draining.set()
        _wait(lambda: invoker.calls, seconds=3)
    assert _offsets(invoker.calls) == [0, 1, 2]


def test_an_executor_error_that_is_no_failed_invocation_ends_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    import devhost.kafka.trigger as trigger_module

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(trigger_module, "decode_batch", broken)
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    consumer = _Consumer(at=[(0.0, 0, 0)])
    with _running(monkeypatch, consumer, _Invoker(consumer), max_batch_size=100, subscriber_interval_seconds=0.2) as (
        _runner,
        thread,
    ):
        thread.join(5)
        assert not thread.is_alive() and consumer.closed
    assert [str(error) for error in errors] == ["a bug"]
    assert consumer.stored == {}


def test_the_channel_capacity_is_host_jsons_executor_channel_capacity() -> None:
    """The local host does not read executorChannelCapacity from host.json: keep the two equal."""
    import devhost.kafka.trigger as trigger_module

    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["kafka"].get("executorChannelCapacity", 1) == trigger_module.EXECUTOR_CHANNEL_CAPACITY
    unread = {"channelfullretryintervalinms", "subscriberidlebackoffms"}
    assert not unread & {name.lower() for name in host["extensions"]["kafka"]}, "read them in devhost/kafka/trigger.py"
