"""Runs one Kafka-triggered function the way the Kafka extension does.

A consumer in the binding's group reads batches of up to ``maxBatchSize``; each partition's
records go to one invocation, partitions in parallel, one invocation at a time per
partition. Offsets are committed after the invocation succeeds (or fails, when
``commitOnFailure`` is true). A failing invocation is retried with the function's retry
policy; after that, with ``commitOnFailure`` false, the same batch is retried in place up to
``maxRetries`` rounds (``-1``: forever), so nothing is skipped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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
        pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=self.function.name)
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign)
            while not self.stop.is_set():
                messages = self._poll(consumer)
                if messages:
                    self._process(consumer, pool, messages)
                self._refresh_lag(consumer)
        finally:
            pool.shutdown(wait=True)
            consumer.close()

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

    def _process(self, consumer: Consumer, pool: ThreadPoolExecutor, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for message in messages:
            by_partition[partition_of(message)].append(message)
        outcomes = list(pool.map(self._run_partition_batch, by_partition.values()))
        commits = [
            TopicPartition(self.topic, partition_of(batch[-1]), offset_of(batch[-1]) + 1)
            for batch, commit in zip(by_partition.values(), outcomes, strict=True)
            if commit
        ]
        rewinds = [
            TopicPartition(self.topic, partition_of(batch[0]), offset_of(batch[0]))
            for batch, commit in zip(by_partition.values(), outcomes, strict=True)
            if not commit
        ]
        if commits:
            try:
                consumer.commit(offsets=commits, asynchronous=False)
            except KafkaException as error:
                # Lost the partitions to a rebalance: their next owner redelivers (at least once).
                log.warning("%s: commit failed, batch will be redelivered: %s", self.function.name, error)
        for position in rewinds:
            consumer.seek(position)

    def _run_partition_batch(self, batch: Sequence[Message]) -> bool:
        """Invoke until the batch succeeds or gives up; True when its offsets may be committed."""
        rounds = 0
        while not self.stop.is_set():
            if self._invoke_with_retries(batch):
                return True
            rounds += 1
            if self.config.kafka.commit_on_failure:
                log.error("%s: batch failed; committing anyway (commitOnFailure=true)", self.function.name)
                return True
            if 0 <= self.config.kafka.max_retries <= rounds:
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
