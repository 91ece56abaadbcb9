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
and ``bench/core.py``'s rate per CPU-second on 100k records per source. Rates are counted from the
first record consumed (a) or first offset committed (b) to the last, so process start-up
and group joins are left out. Every (b) run must land each valid record and dead-letter
each invalid one exactly once, or the benchmark fails. Targets (issue 3): (b) >= 50,000
events/s and, per core (CPU per event), >= 60% of the core's rate; (issue 6): telemetry on
within 5% of off.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import core
from bench.common import Run, bare_consumer, local_host, mean, produce, run_checked
from devhost.services.broker import embedded_broker, ensure_topics
from shared.sources import SOURCES

STREAMS = ("clickstream", "mobile", "sensors")
PARTITIONS = 4


def core_rate(per_source: int) -> float:
    """``bench/core.py``'s pipeline on ``per_source`` records of each stream: mixed events per CPU-second."""
    seconds = 0.0
    for name in STREAMS:
        records = core.seeded_records(SOURCES[name], per_source)
        rate = core.mean_rate(lambda s=SOURCES[name], r=records: core.checked_pipeline(s, r, 1000), len(records), 2)  # type: ignore[misc]
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
        bare = bare_consumer(broker, produced).rate
        print(f"(a) bare consumer: {bare:,.0f} ev/s")
        warm_up = local_host(broker, produced, telemetry=True, workers=args.workers)
        print(f"(b) local host, warm-up run (not counted): {warm_up.rate:,.0f} ev/s (all landed once)")
        runs: dict[bool, list[Run]] = {True: [], False: []}
        for number in range(args.rounds * 2):
            telemetry = number % 4 in (0, 3)  # on, off, off, on, ...: drift in machine speed cancels
            run = local_host(broker, produced, telemetry=telemetry, workers=args.workers)
            runs[telemetry].append(run)
            print(
                f"(b) local host, telemetry {'on ' if telemetry else 'off'}: {run.rate:,.0f} ev/s, "
                f"{run.cpu_us_per_event:.1f} us CPU per event (all landed once)"
            )

    on, off = mean([r.rate for r in runs[True]]), mean([r.rate for r in runs[False]])
    cpu_on, cpu_off = mean([r.cpu_us_per_event for r in runs[True]]), mean([r.cpu_us_per_event for r in runs[False]])
    print()
    print(f"(b) local host (telemetry on, mean of {len(runs[True])}): {on:,.0f} ev/s with {args.workers} worker(s)")
    print(f"(b) / (a) bare consumer: {on / bare:.1%}")
    core_us = 1e6 / core_mixed
    # Like with like: events per CPU-second of the host's process tree against the core's, both per core.
    print(f"CPU per event, core / local host (no broker): {core_us:.1f} / {cpu_on:.1f} us = {core_us / cpu_on:.1%}")
    print(f"telemetry on / off, throughput: {on / off:.3f} (overhead {1 - on / off:+.1%})")
    print(f"telemetry on / off, CPU per event: {cpu_on:.1f} / {cpu_off:.1f} us (overhead {cpu_on / cpu_off - 1:+.1%})")
    met = on >= 50_000 and core_us / cpu_on >= 0.60
    print(f"targets (b >= 50,000 ev/s; per core >= 60% of the core's rate): {'met' if met else 'MISSED'}")
    print(f"target telemetry overhead <= 5% (throughput): {'met' if on / off >= 0.95 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    run_checked(main)
