"""End to end: the local host landing pre-produced records, beside a bare consumer and the core.

    python bench/e2e.py [--records 1000000] [--workers 1]

One run: generate ``--records`` mixed clickstream, mobile and sensors records (5% invalid:
not JSON, not UTF-8, schema violations, null values), produce them once to an embedded Tansu
broker, then measure on the same topics, each with a fresh consumer group:

(a) a bare confluent-kafka consumer reading every record (the broker-side limit here);
(b) ``python -m devhost start --no-timers`` landing them to a local lake as Parquet, with
    keyed state off (``<SOURCE>_STATE_ENABLED=false``: the landing path the core measures),
    telemetry on (the host's in-memory OpenTelemetry reader, as the dashboard uses) and off
    (``OTEL_SDK_DISABLED=true``), alternating on/off/off/on after one uncounted warm-up run
    (the broker's first full read is slower);
and ``bench/core.py``'s per-core rate on 100k records per source. Rates are counted from the
first record consumed (a) or first offset committed (b) to the last, so process start-up
and group joins are left out. Every (b) run must land each valid record and dead-letter
each invalid one exactly once, or the benchmark fails. Targets (issue 3): (b) >= 50,000
events/s and >= 60% of the core's rate; (issue 6): telemetry on within 5% of off.
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import core
from devhost.broker import embedded_broker, ensure_topics
from devhost.processes import free_port
from shared.generator import generate_messages
from shared.sources import SOURCES

STREAMS = ("clickstream", "mobile", "sensors")
PARTITIONS = 4
INVALID_EVERY = 20  # 5%
INVALID_VALUES: tuple[bytes | None, ...] = (b"not json {", b"\xff\xfe\x00", b'{"unexpected": true}', None)
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Produced:
    ends: dict[str, dict[int, int]]  # topic -> partition -> next offset
    valid: dict[str, int]
    invalid: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.valid.values()) + sum(self.invalid.values())


def produce(broker: str, topics: dict[str, str], per_source: int) -> Produced:
    """Seeded records with current timestamps; every ``INVALID_EVERY``-th replaced by a bad value."""
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 50, "batch.size": 1_048_576})
    produced = Produced({t: {} for t in topics.values()}, dict.fromkeys(topics, 0), dict.fromkeys(topics, 0))
    now = datetime.now(UTC)

    def delivered(error: object, message: object) -> None:
        if error is not None:
            raise RuntimeError(f"produce failed: {error}")
        ends = produced.ends[message.topic()]  # type: ignore[attr-defined]
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)  # type: ignore[attr-defined]

    for source, topic in topics.items():
        for index, message in enumerate(generate_messages(SOURCES[source], per_source, now=now, seed=1, start_index=0)):
            value: bytes | None = message.value.encode()
            if index % INVALID_EVERY == INVALID_EVERY - 1:
                value = INVALID_VALUES[(index // INVALID_EVERY) % len(INVALID_VALUES)]
                produced.invalid[source] += 1
            else:
                produced.valid[source] += 1
            while True:
                try:
                    producer.produce(topic, value, message.key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("records left unsent after 120 s")
    return produced


def bare_consumer(broker: str, produced: Produced) -> float:
    """(a): events/s of a plain consumer from its first record to its last."""
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
        read, first_batch, first = 0, 0, 0.0
        deadline = time.monotonic() + 600
        while read < produced.total and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=1000, timeout=1.0)
            if messages and not first:
                first, first_batch = time.perf_counter(), len(messages)  # the clock starts after the first poll
            read += len(messages)
        if read < produced.total:
            raise RuntimeError(f"bare consumer read {read} of {produced.total} records in 600 s")
        return (read - first_batch) / (time.perf_counter() - first)
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


@dataclass(frozen=True)
class HostRun:
    rate: float  # events/s, wall clock
    cpu_us_per_event: float  # CPU of the host and its worker processes, less sensitive to machine drift


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


def local_host(broker: str, topics: dict[str, str], produced: Produced, *, telemetry: bool, workers: int) -> HostRun:
    """(b): events/s of the local host from its first commit to its last; checks what landed."""
    run = uuid.uuid4().hex[:8]
    groups = {topic: f"{source}-bench-{run}" for source, topic in topics.items()}
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_SECURITY_PROTOCOL", "LAKE_KIND", "OTEL_SDK_DISABLED")
    }
    for source in SOURCES:
        upper = source.upper()
        env[f"{upper}_GENERATOR_ENABLED"] = "false"
        env[f"{upper}_STATE_ENABLED"] = "false"
        if source in topics:
            env[f"{upper}_TOPIC"] = topics[source]
            env[f"{upper}_CONSUMER_GROUP"] = groups[topics[source]]
    if not telemetry:
        env["OTEL_SDK_DISABLED"] = "true"
    expected = sum(sum(ends.values()) for ends in produced.ends.values())
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as directory:
        lake = Path(directory)
        command = [sys.executable, "-m", "devhost", "start", "--broker", broker, "--lake", str(lake)]
        command += ["--no-timers", "--workers", str(workers), "--port", str(free_port())]
        with (lake.parent / f"{lake.name}.log").open("wb") as log:
            host = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        watcher = CommitWatcher(broker, groups, produced.ends)
        try:
            first_count, first_time, first_cpu, count = 0, 0.0, 0.0, 0
            deadline = time.monotonic() + 900
            while count < expected:
                if host.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"local host stopped or stalled at {count} of {expected} records")
                count = watcher.committed()
                if count and not first_time:
                    first_count, first_time, first_cpu = count, time.perf_counter(), cpu_seconds(host.pid)
                time.sleep(0.05)
            seconds, cpu = time.perf_counter() - first_time, cpu_seconds(host.pid) - first_cpu
            result = HostRun((count - first_count) / seconds, cpu / (count - first_count) * 1e6)
        finally:
            watcher.close()
            host.send_signal(signal.SIGINT)
            code = host.wait(120)
        if code != 0:
            raise RuntimeError(f"local host exited {code}; see {lake.parent / lake.name}.log")
        check_landed(lake, produced)
    return result


def check_landed(lake: Path, produced: Produced) -> None:
    """Every valid record landed once (distinct partition and offset) and every invalid one dead-lettered once."""
    for source in produced.valid:
        landed: set[tuple[int, int]] = set()
        rows = 0
        for path in (lake / "raw" / source).rglob("*.parquet"):
            table = pq.read_table(path, columns=["_partition", "_offset"])
            landed.update(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
            rows += table.num_rows
        dead = sum(
            len(gzip.decompress(path.read_bytes()).splitlines())
            for path in (lake / "deadletter" / source).rglob("*.jsonl.gz")
        )
        if (rows, len(landed), dead) != (produced.valid[source],) * 2 + (produced.invalid[source],):
            raise RuntimeError(
                f"{source}: landed {rows} rows, {len(landed)} distinct (expected {produced.valid[source]}); "
                f"dead-lettered {dead} (expected {produced.invalid[source]})"
            )


def core_rate(per_source: int) -> float:
    """``bench/core.py``'s pipeline on ``per_source`` records of each stream: mixed events/s on one core."""
    seconds = 0.0
    for name in STREAMS:
        records = core.seeded_records(SOURCES[name], per_source)
        rate = core.best_rate(lambda s=SOURCES[name], r=records: core.pipeline(s, r), len(records), 2)  # type: ignore[misc]
        print(f"  core {name:<12} {rate:>10,.0f} ev/s")
        seconds += per_source / rate
    return len(STREAMS) * per_source / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records in all, split over the sources")
    parser.add_argument("--workers", type=int, default=1, help="local host processes (--workers)")
    parser.add_argument("--rounds", type=int, default=2, help="(b) runs per telemetry mode, alternating")
    args = parser.parse_args()
    per_source = args.records // len(STREAMS)
    suffix = uuid.uuid4().hex[:6]
    topics = {name: f"{name}-bench-{suffix}" for name in STREAMS}

    core_mixed = core_rate(min(per_source, 100_000))
    print(f"core (bench/core.py, mixed): {core_mixed:,.0f} ev/s per core")
    with embedded_broker() as broker:
        ensure_topics({"bootstrap.servers": broker}, topics.values(), PARTITIONS)
        started = time.perf_counter()
        produced = produce(broker, topics, per_source)
        print(
            f"produced {produced.total:,} records ({sum(produced.invalid.values()):,} invalid) "
            f"in {time.perf_counter() - started:.0f}s to {broker}"
        )
        bare = bare_consumer(broker, produced)
        print(f"(a) bare consumer: {bare:,.0f} ev/s")
        warm_up = local_host(broker, topics, produced, telemetry=True, workers=args.workers)
        print(f"(b) local host, warm-up run (not counted): {warm_up.rate:,.0f} ev/s (all landed once)")
        runs: dict[bool, list[HostRun]] = {True: [], False: []}
        for number in range(args.rounds * 2):
            telemetry = number % 4 in (0, 3)  # on, off, off, on, ...: drift in machine speed cancels
            run = local_host(broker, topics, produced, telemetry=telemetry, workers=args.workers)
            runs[telemetry].append(run)
            print(
                f"(b) local host, telemetry {'on ' if telemetry else 'off'}: {run.rate:,.0f} ev/s, "
                f"{run.cpu_us_per_event:.1f} us CPU per event (all landed once)"
            )

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    on, off = mean([r.rate for r in runs[True]]), mean([r.rate for r in runs[False]])
    cpu_on, cpu_off = mean([r.cpu_us_per_event for r in runs[True]]), mean([r.cpu_us_per_event for r in runs[False]])
    print()
    print(f"(b) local host (telemetry on, mean of {len(runs[True])}): {on:,.0f} ev/s with {args.workers} worker(s)")
    print(f"(b) / (a) bare consumer: {on / bare:.1%}")
    print(f"(b) / core: {on / core_mixed:.1%}")
    core_us = 1e6 / core_mixed
    print(f"CPU per event, core / local host (no broker): {core_us:.1f} / {cpu_on:.1f} us = {core_us / cpu_on:.1%}")
    print(f"telemetry on / off, throughput: {on / off:.3f} (overhead {1 - on / off:+.1%})")
    print(f"telemetry on / off, CPU per event: {cpu_on:.1f} / {cpu_off:.1f} us (overhead {cpu_on / cpu_off - 1:+.1%})")
    met = on >= 50_000 and on / core_mixed >= 0.60
    print(f"targets (b >= 50,000 ev/s and >= 60% of core): {'met' if met else 'MISSED'}")
    print(f"target telemetry overhead <= 5% (throughput): {'met' if on / off >= 0.95 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
