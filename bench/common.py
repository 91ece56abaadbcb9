"""What the end-to-end benchmarks share: producing records, a bare consumer, running the local host,
CPU of a process tree, and the checks that every record landed or was dead-lettered exactly once.

Used by ``bench/e2e.py`` and ``bench/compare.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devhost.services.processes import free_port  # noqa: E402
from shared.generator_ticks import generate_messages  # noqa: E402
from shared.sources import SOURCES  # noqa: E402

INVALID_EVERY = 20  # 5%
INVALID_VALUES: tuple[bytes | None, ...] = (b"not json {", b"\xff\xfe\x00", b'{"unexpected": true}', None)
# What each source's entity counts once per event, to check entity totals against the events landed.
ENTITY_COUNTS = {"clickstream": ("user_activity", "page_views"), "mobile": ("device_activity", "events")}


class CheckFailed(RuntimeError):
    """What a benchmark measured is not what it was given: its figures must not be reported."""


def run_checked(main: Callable[[], int]) -> NoReturn:
    """A benchmark's entry point: its exit code, or 1 with the reason when a check failed."""
    try:
        sys.exit(main())
    except CheckFailed as failure:
        print(f"CHECK FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


@dataclass
class Produced:
    ends: dict[str, dict[int, int]]  # topic -> partition -> next offset
    valid: dict[str, int]
    invalid: dict[str, int]
    topics: dict[str, str] = field(default_factory=dict)  # source -> topic

    @property
    def total(self) -> int:
        return sum(self.valid.values()) + sum(self.invalid.values())


def traceparent() -> bytes:
    """A fresh W3C traceparent, as the generator's producing span injects it (one per tick)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01".encode()


def produce(
    broker: str, topics: dict[str, str], per_source: int, *, tick: int | None = None, invalid_every: int | None = None
) -> Produced:
    """Seeded records with current timestamps; every ``invalid_every``-th (default ``INVALID_EVERY``, 0 for none)
    replaced by a bad value.

    With ``tick``, records carry a ``traceparent`` header, a new one every ``tick`` records, the
    way the timer generator stamps its producing span on every record of one tick.
    """
    every = INVALID_EVERY if invalid_every is None else invalid_every
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 50, "batch.size": 1_048_576})
    produced = Produced({t: {} for t in topics.values()}, dict.fromkeys(topics, 0), dict.fromkeys(topics, 0), topics)
    now = datetime.now(UTC)

    def delivered(error: object, message: object) -> None:
        if error is not None:
            raise RuntimeError(f"produce failed: {error}")
        ends = produced.ends[message.topic()]  # type: ignore[attr-defined]
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)  # type: ignore[attr-defined]

    for source, topic in topics.items():
        headers: list[tuple[str, str | bytes | None]] | None = None
        for index, message in enumerate(generate_messages(SOURCES[source], per_source, now=now, seed=1, start_index=0)):
            if tick and index % tick == 0:
                headers = [("traceparent", traceparent())]
            value: bytes | None = message.value.encode()
            if every and index % every == every - 1:
                value = INVALID_VALUES[(index // every) % len(INVALID_VALUES)]
                produced.invalid[source] += 1
            else:
                produced.valid[source] += 1
            while True:
                try:
                    producer.produce(topic, value, message.key, headers=headers, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("records left unsent after 120 s")
    return produced


@dataclass(frozen=True)
class Run:
    """One measured run of a consumer of the produced records."""

    rate: float  # events/s, wall clock, first progress to last
    cpu_us_per_event: float  # user + system CPU of the process tree per event
    files: int = 0  # data files written (landed + dead-letter)


def bare_consumer(broker: str, produced: Produced) -> Run:
    """A plain confluent-kafka consumer reading every record, from its first record to its last.

    CPU is this process's own (not its children: the embedded broker is one)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe(list(produced.ends))
        read, first_batch, first, first_cpu = 0, 0, 0.0, 0.0
        deadline = time.monotonic() + 600
        while read < produced.total and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=1000, timeout=1.0)
            if messages and not first:  # the clock starts after the first poll
                first, first_batch, first_cpu = time.perf_counter(), len(messages), time.process_time()
            read += len(messages)
        if read != produced.total:
            raise CheckFailed(f"bare consumer read {read} of {produced.total} records")
        events = read - first_batch
        return Run(events / (time.perf_counter() - first), (time.process_time() - first_cpu) / events * 1e6)
    finally:
        consumer.close()


class CommitWatcher:
    """Sum of committed offsets of every topic's consumer group, polled from one consumer per group."""

    def __init__(self, broker: str, groups: dict[str, str], ends: dict[str, dict[int, int]]) -> None:
        self.parts = {topic: [TopicPartition(topic, p) for p in sorted(ends[topic])] for topic in groups}
        self.consumers = {
            topic: Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
            for topic, group in groups.items()
        }

    def committed(self) -> int:
        return sum(
            max(tp.offset, 0)
            for topic, consumer in self.consumers.items()
            for tp in consumer.committed(self.parts[topic], timeout=10)
        )

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants, from /proc."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measure_then_stop(
    process: subprocess.Popen[bytes],
    watcher: CommitWatcher,
    expected: int,
    stop: signal.Signals,
    what: str,
    log_path: Path,
    **options: Any,
) -> tuple[float, float]:
    """:func:`measure_process` on the watcher's commits, then stop ``process`` with ``stop``; a process
    that does not exit cleanly fails the run (its log is kept at ``log_path``)."""
    try:
        measured = measure_process(process, watcher.committed, expected, **options)
    finally:
        watcher.close()
        process.send_signal(stop)
        code = process.wait(120)
    if code != 0:
        raise CheckFailed(f"{what} exited {code}; see {log_path}")
    return measured


def measure_process(
    process: subprocess.Popen[bytes],
    progress: Callable[[], int],
    expected: int,
    *,
    done: Callable[[], bool] = lambda: True,
    timeout: float = 900,
    profiler: Profiler | None = None,
) -> tuple[float, float]:
    """Events/s and CPU us per event of ``process``'s tree from its first progress until ``progress()``
    reaches ``expected`` and ``done()`` holds (e.g. entities applied everything); ``profiler``
    samples the same span."""
    first_count, first_time, first_cpu, count = 0, 0.0, 0.0, 0
    deadline = time.monotonic() + timeout
    while count < expected or not done():
        if process.poll() is not None or time.monotonic() > deadline:
            raise CheckFailed(f"process {process.args!r} stopped or stalled at {count} of {expected} records")
        count = progress()
        if count and not first_time:
            first_count, first_time, first_cpu = count, time.perf_counter(), cpu_seconds(process.pid)
            if profiler:
                profiler.start()
        time.sleep(0.05)
    if profiler:
        profiler.stop()
    if count != expected:
        raise CheckFailed(f"committed {count} offsets, expected {expected}")
    if count == first_count:
        raise CheckFailed(f"all {count} records were committed at once: too few records to measure a rate")
    seconds, cpu = time.perf_counter() - first_time, cpu_seconds(process.pid) - first_cpu
    return (count - first_count) / seconds, cpu / (count - first_count) * 1e6


class Profiler:
    """py-spy sampling a process and its children once started: raw collapsed stacks, full file names,
    only threads holding the GIL (so samples / rate is the Python CPU time, GIL waits excluded)."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        self.pid, self.output, self.rate = pid, output, rate
        self.recorder: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "--pid", str(self.pid), "--subprocesses", "--rate", str(self.rate)]
        command += ["--format", "raw", "--full-filenames", "--nonblocking", "--gil", "--output", str(self.output)]
        self.recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.send_signal(signal.SIGINT)
            self.recorder.wait(60)


def local_host(
    broker: str,
    produced: Produced,
    *,
    telemetry: bool,
    workers: int = 1,
    state: bool = False,
    profile: Profiler | None = None,
    host_json: Path | None = None,
) -> Run:
    """``python -m devhost start --no-timers`` on the produced topics, from its first commit to its last
    (and, with state on, until the entities applied every event); then checks what landed."""
    topics = produced.topics
    run = uuid.uuid4().hex[:8]
    groups = {topic: f"{source}-bench-{run}" for source, topic in topics.items()}
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_SECURITY_PROTOCOL", "LAKE_KIND", "OTEL_SDK_DISABLED")
    }
    for source in SOURCES:
        upper = source.upper()
        env[f"{upper}_GENERATOR_ENABLED"] = "false"
        env[f"{upper}_STATE_ENABLED"] = "true" if state and source in topics else "false"
        if source in topics:
            env[f"{upper}_TOPIC"] = topics[source]
            env[f"{upper}_CONSUMER_GROUP"] = groups[topics[source]]
    if not telemetry:
        env["OTEL_SDK_DISABLED"] = "true"
    if host_json is not None:
        env["DEVHOST_HOST_JSON"] = str(host_json)
    expected = sum(sum(ends.values()) for ends in produced.ends.values())
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as directory:
        lake = Path(directory) / "lake"
        entities = lake.parent / "lake.state" / "entities.sqlite"
        command = [sys.executable, "-m", "devhost", "start", "--broker", broker, "--lake", str(lake)]
        command += ["--no-timers", "--workers", str(workers), "--port", str(free_port())]
        log_path = Path(tempfile.gettempdir()) / f"bench-host-{run}.log"
        with log_path.open("wb") as log:
            host = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        watcher = CommitWatcher(broker, groups, produced.ends)

        def applied() -> bool:
            return not state or entity_totals(entities, produced) == {
                s: produced.valid[s] for s in produced.valid if s in ENTITY_COUNTS
            }

        if profile:
            profile.pid = host.pid
        rate, cpu_us = measure_then_stop(
            host, watcher, expected, signal.SIGINT, "local host", log_path, done=applied, profiler=profile
        )
        files = check_landed(lake, produced)
        if state:
            check_entities(entities, produced)
    log_path.unlink(missing_ok=True)
    return Run(rate, cpu_us, files)


def check_landed(lake: Path, produced: Produced) -> int:
    """Every valid record landed once (distinct partition and offset) and every invalid one dead-lettered once.

    Returns the number of files written (landed and dead-letter)."""
    files = 0
    for source in produced.valid:
        landed: set[tuple[int, int]] = set()
        rows = 0
        for path in (lake / "raw" / source).rglob("*.parquet"):
            table = pq.read_table(path, columns=["_partition", "_offset"])
            landed.update(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
            rows += table.num_rows
            files += 1
        dead = 0
        for path in (lake / "deadletter" / source).rglob("*.jsonl.gz"):
            dead += len(gzip.decompress(path.read_bytes()).splitlines())
            files += 1
        check_counts(source, rows, len(landed), dead, produced)
    return files


def check_counts(source: str, rows: int, distinct: int, dead: int, produced: Produced) -> None:
    if (rows, distinct, dead) != (produced.valid[source],) * 2 + (produced.invalid[source],):
        raise CheckFailed(
            f"{source}: landed {rows} rows, {distinct} distinct (expected {produced.valid[source]}); "
            f"dead-lettered {dead} (expected {produced.invalid[source]})"
        )


def entity_totals(path: Path, produced: Produced) -> dict[str, int]:
    """Per source, the entities' event counts summed over keys (read from the local host's SQLite store)."""
    if not path.exists():
        return {}
    totals: dict[str, int] = {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        for source in produced.valid:
            if source not in ENTITY_COUNTS:
                continue
            entity, counter = ENTITY_COUNTS[source]
            rows = db.execute("SELECT state FROM state WHERE entity = ?", (entity,)).fetchall()
            totals[source] = sum(_counted(json.loads(state), counter) for (state,) in rows if state)
    except sqlite3.OperationalError:  # the host has not created its tables yet
        return {}
    finally:
        db.close()
    return totals


def _counted(state: dict[str, Any], counter: str) -> int:
    """A bucket's keys' counts summed (``shared.state.bucket_state``), or a per-key entity's own count."""
    if "keys" in state:
        return sum(int(json.loads(key_state).get(counter, 0)) for key_state in state["keys"].values())
    return int(state.get(counter, 0))


def check_entities(path: Path, produced: Produced) -> None:
    expected = {s: produced.valid[s] for s in produced.valid if s in ENTITY_COUNTS}
    totals = entity_totals(path, produced)
    if totals != expected:
        raise CheckFailed(f"entity totals {totals}, expected the valid events {expected}")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
