"""Drives the local host as a user does: ``python -m devhost start`` in a subprocess, on a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from devhost.services.processes import free_port
from shared.formats import decode
from tests.conftest import ROOT

T = TypeVar("T")
SOURCE_NAMES = ("clickstream", "mobile", "sensors")


async def wait_for_async(condition: Callable[[], Awaitable[T]], timeout: float, what: str, interval: float = 0.2) -> T:
    """``wait_for`` for a coroutine condition, polled on the running event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value {value!r}")
        await asyncio.sleep(interval)


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value {value!r}")
        time.sleep(interval)


@dataclass
class Run:
    """Unique topic and group names for one test, so tests can share one broker."""

    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def topic(self, source: str) -> str:
        return f"{source}-{self.suffix}"

    def settings(self, sources: Iterable[str] = SOURCE_NAMES, **extra: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for source in sources:
            upper = source.upper()
            values[f"{upper}_TOPIC"] = self.topic(source)
            values[f"{upper}_CONSUMER_GROUP"] = f"{source}-processor-{self.suffix}"
            values[f"{upper}_GENERATOR_ENABLED"] = "false"
        return values | extra


TEST_BATCHING = {"subscriberIntervalInSeconds": 1, "maxBatchSize": 1000}


def fast_host_json(directory: Path, **kafka: object) -> Path:
    """The project's host.json with the tests' batching (``TEST_BATCHING``) and ``kafka`` options changed.

    The shipped defaults gather eight seconds and up to 10,000 records per invocation (sized for
    cost, docs/scale.md); tests use one-second windows of at most 1,000 so that a test's few
    thousand records make many batches (kills, rewinds and rebalances land mid-stream) quickly.
    """
    host = json.loads((ROOT / "host.json").read_text())
    host["extensions"]["kafka"] |= TEST_BATCHING | kafka
    path = directory / f"host-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(host))
    return path


class DevHost:
    """One ``python -m devhost start`` process; its output goes to a log file the test can show.

    It runs with ``fast_host_json`` unless ``env`` names another ``DEVHOST_HOST_JSON``.
    """

    def __init__(self, broker: str, lake: Path, env: dict[str, str], *arguments: str, project: Path = ROOT) -> None:
        self.port = free_port()
        self.log_path = lake.parent / f"devhost-{self.port}.log"
        lake.parent.mkdir(parents=True, exist_ok=True)
        if "DEVHOST_HOST_JSON" not in env:
            env = env | {"DEVHOST_HOST_JSON": str(fast_host_json(lake.parent))}
        command = [sys.executable, "-m", "devhost", "start", "--broker", broker]
        command += [] if "--storage" in arguments else ["--lake", str(lake)]
        command += ["--port", str(self.port), *arguments]
        environment = {k: v for k, v in os.environ.items() if k not in ("KAFKA_SECURITY_PROTOCOL", "LAKE_KIND")}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=project, env=environment | env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: self.process.poll() is not None or "listening on" in self.output(), 60, "devhost to start")
        if self.process.poll() is not None:
            raise AssertionError(f"devhost exited early:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            body = error.read()
            return error.code, json.loads(body) if body else None

    def function_stats(self) -> dict[str, dict[str, Any]]:
        _, snapshot = self.get("/dashboard/api/stats")
        return {entry["name"]: entry for entry in snapshot["functions"]}

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C, then wait for a clean exit."""
        self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._log.close()


# topic -> partition -> next offset, from the producer's delivery reports. Tansu's ListOffsets
# answers the last record batch's base offset + 1, so watermarks cannot be asked of the broker.
END_OFFSETS: dict[str, dict[int, int]] = {}


def produce(
    broker: str,
    topic: str,
    records: Iterable[tuple[str | None, bytes | None]],
    positions: list[tuple[int, int]] | None = None,
) -> int:
    """Produce ``records``; with ``positions``, the (partition, offset) of each, in order, is appended to it."""
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 50, "batch.size": 1_048_576})
    ends = END_OFFSETS.setdefault(topic, {})
    where: dict[int, tuple[int, int]] = {}

    def delivered(index: int) -> Any:
        def report(error: Any, message: Any) -> None:
            assert error is None, error
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
            where[index] = (message.partition(), message.offset())

        return report

    count = 0
    for key, value in records:
        producer.produce(topic, value, key, on_delivery=delivered(count))
        count += 1
    assert producer.flush(30) == 0
    if positions is not None:
        positions.extend(where[index] for index in range(count))
    return count


def committed_lag(broker: str, group: str, topic: str) -> int:
    """Records produced to ``topic`` by this test run that ``group`` has not committed."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    try:
        ends = END_OFFSETS[topic]
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return sum(ends[c.partition] - max(c.offset, 0) for c in committed)
    finally:
        consumer.close()


def landed_rows(lake: Path, area: str, source: str) -> list[dict[str, Any]]:
    """Every row landed for ``source`` in ``raw`` or ``deadletter``."""
    rows: list[dict[str, Any]] = []
    for path in sorted((lake / area / source).rglob("*")):
        if not path.is_file() or path.name.startswith((".tmp-", ".lock-")):  # the local lake's own files
            continue
        fmt = "parquet" if path.suffix == ".parquet" else "avro" if path.suffix == ".avro" else "jsonl"
        rows.extend(decode(fmt, path.read_bytes()))
    return rows


SENTINEL = b"--end-of-test--"


def records_until_sentinel(broker: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message of ``topic``'s partition 0 (a one-partition topic) up to a sentinel this sends after them.

    Reads by assignment, not in a group: no group join to wait for."""
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(topic, SENTINEL)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            if message.value() == SENTINEL:
                return messages
            messages.append(message)
        raise AssertionError(f"no sentinel on {topic} after {timeout:g} s; got {len(messages)} messages")
    finally:
        consumer.close()
