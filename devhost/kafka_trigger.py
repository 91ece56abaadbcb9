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

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from devhost.catalog import IndexedFunction
from devhost.config import HostConfig
from devhost.invoker import Invoker
from devhost.kafka_config import consumer_config
from devhost.kafka_events import decode_batch, offset_of, partition_of
from devhost.progress import FunctionStats

log = logging.getLogger("devhost.kafka")
LAG_REFRESH_SECONDS = 1.0


class KafkaTriggerRunner:
    """The consumer loop of one function. ``run`` blocks until ``stop`` is set, then commits and closes."""

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
        self._lag_checked = 0.0
        self._high_watermarks: dict[int, int] = {}

    def run(self) -> None:
        settings = consumer_config(self.binding, self.config)
        consumer = Consumer(settings | {"client.id": self.function.name, "stats_cb": self._on_statistics})
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign)
            while not self.stop.is_set():
                messages = self._poll(consumer)
                if messages:
                    self._process(consumer, messages)
                self._refresh_lag(consumer)
        finally:
            consumer.close()  # commits what was stored

    def _poll(self, consumer: Consumer) -> list[Message]:
        wait = min(1.0, self.config.kafka.subscriber_interval_seconds)
        messages = consumer.consume(num_messages=self.config.kafka.max_batch_size, timeout=wait)
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
            if not self._run_batch(batch):
                return  # stopping: nothing stored, the batch comes again
            _fault_hook()
            ends = {partition_of(message): offset_of(message) + 1 for message in batch}
            try:
                consumer.store_offsets(offsets=[TopicPartition(self.topic, p, end) for p, end in ends.items()])
            except KafkaException as error:
                # The partitions moved to another consumer in a rebalance: it redelivers from the last commit.
                log.warning("%s: offsets not stored, partitions reassigned: %s", self.function.name, error)

    def _run_batch(self, batch: Sequence[Message]) -> bool:
        """Invoke until the batch succeeds or may be skipped; False only when the host is stopping."""
        rounds = 0
        while not self.stop.is_set():
            if self._invoke_with_retries(batch):
                return True
            rounds += 1
            if self.config.kafka.commit_on_failure:
                log.error("%s: batch failed; storing its offsets anyway (commitOnFailure=true)", self.function.name)
                return True
            if 0 <= self.config.kafka.max_retries < rounds:
                log.error("%s: batch failed %d rounds; skipping it (maxRetries)", self.function.name, rounds)
                return True
        return False

    def _invoke_with_retries(self, batch: Sequence[Message]) -> bool:
        policy = self.function.retry
        attempts = 1 + (policy.max_retry_count if policy else 0)
        for attempt in policy.attempts() if policy else range(1):
            if attempt and policy and self.stop.wait(policy.delay_before(attempt)):
                return False
            events = decode_batch(batch, str(self.binding.get("cardinality", "ONE")))
            try:
                self.invoker.invoke(self.function, {self.binding["name"]: events})
            except Exception:
                self.stats.invoked(len(batch), failed=True)
                log.exception(
                    "%s: invocation failed (partition %d, offsets %d-%d, attempt %d/%d)",
                    self.function.name,
                    batch[0].partition(),
                    batch[0].offset(),
                    batch[-1].offset(),
                    attempt + 1,
                    attempts,
                )
                continue
            self.stats.invoked(len(batch))
            return True
        return False

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Called by librdkafka after each rebalance: say which partitions this worker now owns."""
        owned = sorted(p.partition for p in partitions)
        print(f"devhost: worker {self.worker} {self.function.name} assigned {self.topic} {owned}", flush=True)

    def _on_statistics(self, document: str) -> None:
        """librdkafka's statistics callback: the high watermark of each partition from fetch responses."""
        partitions = json.loads(document).get("topics", {}).get(self.topic, {}).get("partitions", {})
        for number, figures in partitions.items():
            if number != "-1" and figures.get("hi_offset", -1) >= 0:
                self._high_watermarks[int(number)] = int(figures["hi_offset"])

    def _refresh_lag(self, consumer: Consumer) -> None:
        """Records of the assigned partitions not yet processed (high watermark minus position)."""
        now = time.monotonic()
        if now - self._lag_checked < LAG_REFRESH_SECONDS:
            return
        self._lag_checked = now
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException as error:
            log.debug("%s: lag unavailable: %s", self.function.name, error)
            return
        lag = 0
        for position in positions:
            high = self._high_watermarks.get(position.partition)
            if high is not None and position.offset >= 0:
                lag += max(0, high - position.offset)
        self.stats.lag = lag


_successful_invocations = 0


def _fault_hook() -> None:
    """Test-only fault injection: SIGKILL this process between landing and storing offsets."""
    global _successful_invocations
    limit = os.environ.get("DEVHOST_FAULT_KILL_BEFORE_STORE")
    if not limit:
        return
    _successful_invocations += 1
    if _successful_invocations >= int(limit):
        print(f"devhost: fault injection: killed before storing offsets (pid {os.getpid()})", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
