"""Runs one Kafka-triggered function the way the Kafka extension (4.3.x) does: a listener and an executor.

The *listener* (the extension's ``KafkaListener.ProcessSubscription``) polls the binding's consumer and
cuts a batch every ``subscriberIntervalInSeconds`` window, or flushes early once ``maxBatchSize``
records are pending. After an early flush the same window goes on gathering and, at its end, flushes
nothing: what it gathered after the flush waits for the next window's end. After a window without an
early flush it pauses ``SubscriberIdleBackoffMs`` (50 ms). A batch goes into a bounded channel of
``executorChannelCapacity`` batches; while the channel is full the listener waits, retrying every
``ChannelFullRetryIntervalInMs`` (50 ms), and does not poll. The *executor* (``ReaderAsync``) takes
one batch at a time: with cardinality many the whole batch, partitions mixed, is one invocation;
with cardinality one each record is an invocation, in order. So the listener reads ahead while a
batch runs: a batch is cut every max(window, invocation time), not every window plus invocation.

After a successful invocation the executor only *stores* each partition's next offset, one partition
at a time (``AsyncCommitStrategy``), from the partition of the batch's last record backwards; the first
that fails (its partition was revoked in a rebalance: the extension's revoke handler only logs, so
batches already in the channel still run) is logged and ends the storing of that batch. librdkafka
commits stored offsets every ``autoCommitIntervalMs`` (default 200 ms), so a crash or a rebalance can
redeliver up to that much. A failing invocation is retried with the function's retry policy; after
that, with ``commitOnFailure`` false, the same batch is retried in place (nothing after it runs
first), and skipped (stored anyway, with an error) only after more than ``maxRetries`` failed rounds
(``-1``: never). While a batch is retried the listener fills the channel and then waits, so the
consumer stops polling and is put out of its group after ``maxPollIntervalMs``, as in the extension.

Stopping differs from Azure on purpose: outside drain mode the extension cancels its executor (a batch that
finishes after that is not stored) and drops what the channel holds (in drain mode, a Flex scale-in, it runs
and stores the channel's batches first), then unsubscribes and disposes the consumer
without closing it (no final commit; the group keeps its partitions until ``session.timeout.ms``).
The local host drops the channel's batches too, but finishes the batch in hand, stores its offsets
if it succeeded, and closes the consumer, which commits them and leaves the group.

``DEVHOST_FAULT_KILL_BEFORE_STORE=N`` (tests only) kills the process after the N-th successful
invocation, after its files landed and before its offsets are stored: the widest redelivery.
``DEVHOST_FAULT_SLOW_INVOCATION_S=S`` (tests only) makes every invocation take S seconds more (a slow,
state-on invocation): the channel stays full and the listener holds read-ahead batches.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from devhost.kafka.client_config import consumer_config
from devhost.kafka.events import decode_batch, offset_of, partition_of
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.console import say
from devhost.runtime.function_stats import FunctionStats
from devhost.runtime.host_config import HostConfig
from devhost.runtime.invoker import Invoker

PartitionSpans = dict[int, tuple[int, int]]  # partition -> (first, last offset) of one batch of one topic
log = logging.getLogger("devhost.kafka")
LAG_REFRESH_SECONDS = 1.0
PROBE_TIMEOUT_S = 10.0  # how long fully_committed waits for every partition to report its end
# The extension's options the local host does not read from host.json, at the extension's defaults.
# executorChannelCapacity is in host.json, at this value (tests/unit/devhost/kafka/test_trigger.py keeps them equal).
EXECUTOR_CHANNEL_CAPACITY = 1
CHANNEL_FULL_RETRY_S = 0.05  # ChannelFullRetryIntervalInMs: how often a listener retries a full channel
SUBSCRIBER_IDLE_BACKOFF_S = 0.05  # SubscriberIdleBackoffMs: the pause after a window without an early flush
# The listener polls in slices of at most this: between them it stores the offsets of the batches the executor
# finished (confluent-kafka serialises the calls on one consumer: a store from the executor's thread would wait
# for the listener's poll to return, and a listener that polls again at once can starve it) and sees a stop.
POLL_SLICE_S = 0.1
MAX_CONSUME_MESSAGES = 1_000_000  # librdkafka's most per consume(); a larger maxBatchSize gathers over several
EXECUTOR_WAIT_S = 0.2  # how long the executor waits for a batch before it looks at the stop again
Batch = list[Message]


class KafkaTriggerRunner:
    """The listener and executor of one function. ``run`` polls (the listener) on the calling thread and
    invokes (the executor) on a thread of its own until ``stop`` is set; then the executor finishes the batch
    in hand, the channel's batches are dropped, and the consumer is closed (committing what was stored).

    Once ``draining`` is set (the host's ``--duration`` ran out and nothing produces any more), a window
    closes as soon as a poll comes back empty, so what is left lands without waiting out the window;
    ``fully_committed`` tells when the group has committed everything.
    """

    def __init__(
        self,
        function: IndexedFunction,
        config: HostConfig,
        invoker: Invoker,
        stats: FunctionStats,
        stop: threading.Event,
        worker: int = 0,
        channel_capacity: int = EXECUTOR_CHANNEL_CAPACITY,
    ) -> None:
        self.function = function
        self.worker = worker
        self.binding = function.trigger
        self.config = config
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.topic = config.resolve(self.binding["topic"])
        self._settings = consumer_config(self.binding, config)  # here, so bad options stop the host at start
        self._lag_checked = 0.0
        self._high_watermarks: dict[int, int] = {}
        # First offset not yet processed per partition: the in-flight batch's first while it runs
        # (and is retried), the consumer position otherwise. Lag counts from here, so a partition
        # stuck on a failing batch shows its whole backlog, not 0.
        self._unprocessed: dict[int, int] = {}
        self._positions: dict[int, int] = {}
        self._consumer: Consumer | None = None
        self.draining = threading.Event()
        self.channel: queue.Queue[Batch] = queue.Queue(maxsize=channel_capacity)
        self._closing = threading.Event()  # set when run ends: the executor takes no more batches
        self._executor_error: BaseException | None = None
        # The executor's finished batches, each partition's next offset in the order to store them: the
        # listener stores them, as only its thread calls the consumer.
        self._finished: queue.SimpleQueue[dict[int, int]] = queue.SimpleQueue()

    def run(self) -> None:
        consumer = Consumer(self._settings | {"client.id": self.function.name, "stats_cb": self._on_statistics})
        self._consumer = consumer
        executor = threading.Thread(target=self._execute, name=f"{self.function.name}-executor")
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign)
            executor.start()
            self._listen(consumer)
        finally:
            self._closing.set()
            if executor.ident is not None:
                executor.join()  # the batch in hand ends; the channel's are dropped
            self._store_finished(consumer)  # the batch in hand too, if it succeeded
            self._update_lag()
            consumer.close()  # commits what was stored, leaves the group
        if self._executor_error is not None:
            raise self._executor_error

    def _stopping(self) -> bool:
        return self.stop.is_set() or self._closing.is_set()

    def fully_committed(self) -> bool:
        """True when this function's consumer group has committed every record its topic holds, every worker's
        partitions included. A consumer of its own, which does not join the group (no rebalance), reads from
        each committed offset: a partition that reports its end first is done, a record means it is not.
        (It reads rather than asks for the end offsets: Tansu answered ListOffsets with 1 for partitions holding
        4-6 records here.)"""
        settings = self._settings | {"enable.auto.commit": False, "enable.partition.eof": True}
        probe = Consumer(settings | {"client.id": f"{self.function.name}-drain"})
        try:
            partitions = probe.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            committed = probe.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
            probe.assign([TopicPartition(self.topic, c.partition, max(c.offset, OFFSET_BEGINNING)) for c in committed])
            ended: set[int] = set()
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while len(ended) < len(committed) and time.monotonic() < deadline:
                message = probe.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is None:
                    return False  # a record at or after the committed offset
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                ended.add(message.partition() or 0)
            return len(ended) == len(committed)
        finally:
            probe.close()

    def _listen(self, consumer: Consumer) -> None:
        """The extension's subscriber loop (``KafkaListener.ProcessSubscription``): windows of
        ``subscriberIntervalInSeconds``, an early flush at ``maxBatchSize`` after which the window goes on
        gathering and flushes nothing at its end, a pause of ``SubscriberIdleBackoffMs`` after a window
        without an early flush. The pending records carry over from window to window until flushed.
        Polls in slices of ``POLL_SLICE_S``, storing the finished batches' offsets between them; while
        draining, a window also ends at its first empty poll."""
        limit = self.config.kafka.max_batch_size
        window = self.config.kafka.subscriber_interval_seconds
        pending: Batch = []
        while not self._stopping():
            window_start = time.monotonic()
            flushed_early = False
            available = float(window)
            while available > 0 and not self._stopping():
                wanted = min(limit - len(pending), MAX_CONSUME_MESSAGES)
                fetched = consumer.consume(num_messages=wanted, timeout=min(POLL_SLICE_S, available))
                self._store_finished(consumer)
                self._refresh_lag(consumer)
                for message in fetched:
                    if message.error():
                        log.warning("%s: consumer error %s", self.function.name, message.error())
                    else:
                        pending.append(message)
                if len(pending) >= limit:
                    self._flush(consumer, pending)
                    pending = []
                    flushed_early = True
                if self.draining.is_set() and not fetched:
                    break
                available = window - (time.monotonic() - window_start)
            if not flushed_early:
                if pending:
                    self._flush(consumer, pending)
                    pending = []
                self.stop.wait(SUBSCRIBER_IDLE_BACKOFF_S)

    def _flush(self, consumer: Consumer, batch: Batch) -> None:
        """Hand a batch to the executor (``FunctionExecutorBase.Flush``): while the channel is full, wait and
        retry without polling; a stop drops the batch (not stored: it comes again)."""
        for partition, (first, _last) in _spans(batch).items():
            self._unprocessed.setdefault(partition, first)  # lag counts the batches waiting in the channel too
        while not self._stopping():
            try:
                self.channel.put(batch, timeout=CHANNEL_FULL_RETRY_S)
                return
            except queue.Full:
                self._store_finished(consumer)
                self._refresh_lag(consumer)

    def _execute(self) -> None:
        """The executor thread (``ReaderAsync``): one batch at a time from the channel until the stop.
        It never calls the consumer: the offsets of a batch that succeeded go to the listener to store."""
        try:
            while not self._stopping():
                try:
                    messages = self.channel.get(timeout=EXECUTOR_WAIT_S)
                except queue.Empty:
                    continue
                self._process(messages)
        except BaseException as error:  # a bug, not a failed invocation: end the runner, as one thread did
            self._executor_error = error
            self._closing.set()

    def _process(self, messages: Batch) -> None:
        many = str(self.binding.get("cardinality", "ONE")).upper() == "MANY"
        for batch in [messages] if many else [[message] for message in messages]:
            spans = _spans(batch)
            if not self._run_batch(batch, spans):
                return  # stopping: nothing stored, the batch comes again
            _fault_hook()
            self._finished.put(_ends(batch))

    def _store_finished(self, consumer: Consumer) -> None:
        """Store the finished batches' offsets as the extension does (``AsyncCommitStrategy``): each
        partition's next offset, one partition at a time, from the partition of the batch's last record
        backwards; the first that fails (its partition moved to another consumer in a rebalance, which
        redelivers from the last commit) ends that batch's storing."""
        while True:
            try:
                ends = self._finished.get_nowait()
            except queue.Empty:
                return
            for partition, end in ends.items():
                try:
                    consumer.store_offsets(offsets=[TopicPartition(self.topic, partition, end)])
                except KafkaException as error:
                    log.warning(
                        "%s: offset %d of partition %d not stored, nor the batch's partitions after it"
                        " (reassigned): %s",
                        self.function.name,
                        end,
                        partition,
                        error,
                    )
                    break

    def _run_batch(self, batch: Sequence[Message], spans: PartitionSpans) -> bool:
        """Invoke until the batch succeeds or may be skipped; False only when the host is stopping."""
        rounds = 0
        while not self._stopping():
            if self._invoke_with_retries(batch, spans):
                return True
            rounds += 1
            if self.config.kafka.commit_on_failure:
                log.error("%s: batch failed; storing its offsets anyway (commitOnFailure=true)", self.function.name)
                self._batch_done(spans)
                return True
            if 0 <= self.config.kafka.max_retries < rounds:
                log.error("%s: batch failed %d rounds; skipping it (maxRetries)", self.function.name, rounds)
                self._batch_done(spans)
                return True
        return False

    def _invoke_with_retries(self, batch: Sequence[Message], spans: PartitionSpans) -> bool:
        policy = self.function.retry
        attempts = 1 + (policy.max_retry_count if policy else 0)
        for partition, (first, last) in spans.items():
            self._unprocessed[partition] = first
            self._high_watermarks[partition] = max(self._high_watermarks.get(partition, 0), last + 1)
        for attempt in policy.attempts() if policy else range(1):
            if attempt and policy and (self.stop.wait(policy.delay_before(attempt)) or self._closing.is_set()):
                return False
            events = decode_batch(batch, str(self.binding.get("cardinality", "ONE")))
            _slow_hook()
            try:
                self.invoker.invoke(self.function, {self.binding["name"]: events})
            except Exception as error:
                self.stats.invoked(len(batch), failed=True)
                for partition, (first, last) in spans.items():
                    self._waiting(partition, first, last, error)
                # Full traceback at debug level; the core logs a one-line error per partition per minute.
                log.debug("%s: invocation failed", self.function.name, exc_info=True)
                log.warning(
                    "%s: invocation failed (offsets %s, attempt %d/%s): %s",
                    self.function.name,
                    ", ".join(f"{p}:{first}-{last}" for p, (first, last) in sorted(spans.items())),
                    attempt + 1,
                    attempts if attempts > 0 else "unlimited",
                    f"{type(error).__name__}: {error}"[:300],
                )
                continue
            self.stats.invoked(len(batch))
            self._batch_done(spans)
            return True
        return False

    def _batch_done(self, spans: PartitionSpans) -> None:
        """The batch's offsets will be stored: its partitions no longer wait, lag counts from after it."""
        with self.stats._lock:
            for partition in spans:
                self.stats.waiting.pop(partition, None)
        for partition, (_first, last) in spans.items():
            self._unprocessed[partition] = last + 1

    def _waiting(self, partition: int, first: int, last: int, error: Exception) -> None:
        """Record the failing batch of ``partition`` for the live line and dashboard (the listener refreshes
        the lag within a second: it counts from the batch's first offset)."""
        with self.stats._lock:
            previous = self.stats.waiting.get(partition)
            attempts = 1 if previous is None or previous["first_offset"] != first else previous["attempts"] + 1
            self.stats.waiting[partition] = {
                "first_offset": first,
                "last_offset": last,
                "attempts": attempts,
                "since": time.time() if previous is None else previous["since"],
                "cause": f"{type(error).__name__}: {error}"[:300],
            }

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Called by librdkafka after each rebalance: say which partitions this worker now owns."""
        owned = sorted(p.partition for p in partitions)
        say(f"devhost: worker {self.worker} {self.function.name} assigned {self.topic} {owned}")

    def _on_statistics(self, document: str) -> None:
        """librdkafka's statistics callback: the high watermark of each partition from fetch responses."""
        partitions = json.loads(document).get("topics", {}).get(self.topic, {}).get("partitions", {})
        for number, figures in partitions.items():
            if number != "-1" and figures.get("hi_offset", -1) >= 0:
                self._high_watermarks[int(number)] = int(figures["hi_offset"])

    def _refresh_lag(self, consumer: Consumer) -> None:
        """Records behind the end of each assigned partition, from its first unprocessed offset."""
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_SECONDS:
            return
        self._lag_checked = now
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException as error:
            log.debug("%s: lag unavailable: %s", self.function.name, error)
            return
        self._positions = {p.partition: p.offset for p in positions}
        for partition in list(self._unprocessed):
            if partition not in self._positions:
                self._unprocessed.pop(partition, None)  # revoked: its next owner reports it
        self._update_lag()

    def _update_lag(self) -> None:
        """Called on the listener's thread, which alone calls the consumer."""
        lag = 0
        for partition, position in list(self._positions.items()) or [(p, -1) for p in self._unprocessed]:
            start = self._unprocessed.get(partition, position)
            if position >= 0:
                start = min(start, position)
            high = self._high_watermarks.get(partition)
            if self._consumer is not None:
                try:  # the fetcher's last answer, no request: records produced while a batch waits count too
                    _, cached_high = self._consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition), cached=True
                    )
                    if cached_high > 0:
                        high = max(high or 0, cached_high)
                except KafkaException:
                    pass
            if high is not None and start >= 0:
                lag += max(0, high - start)
        self.stats.lag = lag


def _spans(batch: Sequence[Message]) -> PartitionSpans:
    """Each partition's first and last offset in a batch, in one pass (a partition's records arrive in order)."""
    spans: PartitionSpans = {}
    for message in batch:
        partition, offset = partition_of(message), offset_of(message)
        known = spans.get(partition)
        spans[partition] = (offset, offset) if known is None else (known[0], offset)
    return spans


def _ends(batch: Sequence[Message]) -> dict[int, int]:
    """Each partition's next offset after a batch, in the order the extension stores them
    (``MultipleItemFunctionExecutor``): the partitions by their last record, from the batch's end."""
    ends: dict[int, int] = {}
    for message in reversed(batch):
        ends.setdefault(partition_of(message), offset_of(message) + 1)
    return ends


_successful_invocations = 0


def _slow_hook() -> None:
    """Test-only fault injection: a slow invocation."""
    delay = os.environ.get("DEVHOST_FAULT_SLOW_INVOCATION_S")
    if delay:
        time.sleep(float(delay))


def _fault_hook() -> None:
    """Test-only fault injection: SIGKILL this process between landing and storing offsets."""
    global _successful_invocations
    limit = os.environ.get("DEVHOST_FAULT_KILL_BEFORE_STORE")
    if not limit:
        return
    _successful_invocations += 1
    if _successful_invocations >= int(limit):
        say(f"devhost: fault injection: killed before storing offsets (pid {os.getpid()})")
        os.kill(os.getpid(), signal.SIGKILL)
