"""Runs one Kafka-triggered function the way the Kafka extension (4.3.x) does.

A consumer in the binding's group polls up to ``maxBatchSize`` records (or what arrived within
``subscriberIntervalInSeconds``) from all its partitions. With cardinality many, that whole
batch is one invocation, partitions mixed, invocations one after another; with cardinality one,
each record is an invocation, in order. After an invocation the extension only *stores* each
partition's next offset; librdkafka commits stored offsets every ``autoCommitIntervalMs``
(default 200 ms) and on close, so a crash or a rebalance can redeliver up to that much.
A failing invocation is retried with the function's retry policy; after that, with
``commitOnFailure`` false, the same batch is retried in place, and skipped (stored anyway, with an
error) only after more than ``maxRetries`` failed rounds (``-1``: never).

``DEVHOST_FAULT_KILL_BEFORE_STORE=N`` (tests only) kills the process after the N-th successful
invocation, after its files landed and before its offsets are stored: the widest redelivery.
"""

from __future__ import annotations

import json
import logging
import os
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


class KafkaTriggerRunner:
    """The consumer loop of one function. ``run`` blocks until ``stop`` is set, then commits and closes.

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

    def run(self) -> None:
        consumer = Consumer(self._settings | {"client.id": self.function.name, "stats_cb": self._on_statistics})
        self._consumer = consumer
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign)
            while not self.stop.is_set():
                messages = self._poll(consumer)
                if messages:
                    self._process(consumer, messages)
                self._refresh_lag(consumer)
        finally:
            consumer.close()  # commits what was stored

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

    def _poll(self, consumer: Consumer) -> list[Message]:
        """One batch as the extension cuts it: what arrives within ``subscriberIntervalInSeconds`` of the
        window's start, flushed early at ``maxBatchSize`` (or, while draining, at the first empty poll).
        Waits in slices of at most a second so that a stop is seen promptly even with long windows."""
        limit = self.config.kafka.max_batch_size
        window_end = time.monotonic() + self.config.kafka.subscriber_interval_seconds
        messages: list[Message] = []
        while True:
            remaining = max(0.0, window_end - time.monotonic())
            fetched = consumer.consume(num_messages=limit - len(messages), timeout=min(1.0, remaining))
            messages.extend(fetched)
            drained_dry = self.draining.is_set() and not fetched
            if len(messages) >= limit or remaining <= 0 or self.stop.is_set() or drained_dry:
                break
        good = []
        for message in messages:
            if message.error():
                log.warning("%s: consumer error %s", self.function.name, message.error())
            else:
                good.append(message)
        return good

    def _process(self, consumer: Consumer, messages: list[Message]) -> None:
        many = str(self.binding.get("cardinality", "ONE")).upper() == "MANY"
        for batch in [messages] if many else [[message] for message in messages]:
            spans = _spans(batch)
            if not self._run_batch(batch, spans):
                return  # stopping: nothing stored, the batch comes again
            _fault_hook()
            try:
                ends = [TopicPartition(self.topic, p, last + 1) for p, (_first, last) in spans.items()]
                consumer.store_offsets(offsets=ends)
            except KafkaException as error:
                # The partitions moved to another consumer in a rebalance: it redelivers from the last commit.
                log.warning("%s: offsets not stored, partitions reassigned: %s", self.function.name, error)

    def _run_batch(self, batch: Sequence[Message], spans: PartitionSpans) -> bool:
        """Invoke until the batch succeeds or may be skipped; False only when the host is stopping."""
        rounds = 0
        while not self.stop.is_set():
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
            if attempt and policy and self.stop.wait(policy.delay_before(attempt)):
                return False
            events = decode_batch(batch, str(self.binding.get("cardinality", "ONE")))
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
        self._update_lag()

    def _waiting(self, partition: int, first: int, last: int, error: Exception) -> None:
        """Record the failing batch of ``partition`` for the live line and dashboard; refresh its lag."""
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
        self._update_lag()

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
                del self._unprocessed[partition]  # revoked: its next owner reports it
        self._update_lag()

    def _update_lag(self) -> None:
        """Called from the consumer loop and from a batch's retries (the loop is blocked while they run)."""
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


_successful_invocations = 0


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
