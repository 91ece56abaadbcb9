"""Keyed state cost: pipeline throughput with state on versus off, and what key buckets weigh at scale.

    python bench/state.py [--events 1000000] [--keys 10000] [--buckets 1024]
    python bench/state.py scale [--rate 10000] [--keys 100000] [--buckets 1024] [--minutes 120]

Throughput (the default): sensor readings over ``--keys`` sensors, in invocations of 1,000
records over 4 partitions. Off: decode, validate, transform, plan and encode Parquet (what an
invocation does without state). On: the same, plus the state work of an invocation (stats
lookups, one read per bucket through the 30-second cache, anomaly flags, pre-aggregation into
one signal per bucket, each signal's JSON body). The entities applying those signals (load the
bucket's JSON, apply, save the JSON; in Azure separate entity invocations) are timed apart and
reported as total CPU. Both run in one process, batch by batch, the order alternating.

Scale (``scale``, ``bench/state_scale.py``): entity operations per event for the whole stream, and
the state size and CPU per operation of buckets at steady state, per keyed source.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.batch import process_batch
from shared.formats import format_named
from shared.landing.files import plan_batch
from shared.records import KafkaRecord
from shared.sources import SOURCES
from shared.state.aggregate import signals_for
from shared.state.anomaly import flag_anomalies
from shared.state.bucket_state import apply, key_state
from shared.state.buckets import bucket_for
from shared.state.cache import TtlCache
from shared.state.sensor_stats import fold
from tests.conftest import FIXED_NOW_MS

BATCH, PARTITIONS = 1000, 4
PARQUET = format_named("parquet")
SENSORS = SOURCES["sensors"]


def synthetic_batches(events: int, keys: int) -> list[list[KafkaRecord]]:
    """Valid sensor readings; a key always goes to the same partition, offsets count per partition."""
    rng = random.Random(7)
    offsets = [0] * PARTITIONS
    records = []
    for index in range(events):
        key = f"fra-1-temperature-{rng.randrange(keys):05d}"
        partition = hash(key) % PARTITIONS
        value = {"sensor_id": key, "site": "fra-1", "metric": "temperature", "value": round(rng.gauss(24, 3), 3),
                 "unit": "celsius", "timestamp": FIXED_NOW_MS - (events - index)}  # fmt: skip
        records.append(KafkaRecord("sensors", partition, offsets[partition], key, orjson.dumps(value), FIXED_NOW_MS))
        offsets[partition] += 1
    return [records[start : start + BATCH] for start in range(0, events, BATCH)]


def without_state(records: list[KafkaRecord]) -> int:
    """One invocation without state; returns the rows encoded into files."""
    batch = process_batch(SENSORS, records, max_record_bytes=1 << 20)
    return sum(file.row_count for file in plan_batch(batch, PARQUET, now_ms=FIXED_NOW_MS) if not file.dead_letters)


def with_state(
    records: list[KafkaRecord], entities: dict[str, str], cache: TtlCache[Any], buckets: int
) -> tuple[int, list[tuple[str, str]]]:
    """One invocation with state: cached bucket reads, anomaly flags, landing, one signal body per bucket.

    Returns the rows encoded into files and the signals (bucket key, body)."""
    batch = process_batch(SENSORS, records, max_record_bytes=1 << 20)
    rows = batch.rows()
    homes = {row["sensor_id"]: bucket_for(row["sensor_id"], buckets) for row in rows}
    for home in cache.missing(set(homes.values())):
        cache.put(home, json.loads(entities[home]) if home in entities else None)
    held = cache.get_many(set(homes.values()))
    flag_anomalies(rows, {key: key_state(held.get(home), key) for key, home in homes.items()})
    planned = plan_batch(batch, PARQUET, now_ms=FIXED_NOW_MS)
    encoded = sum(file.row_count for file in planned if not file.dead_letters)
    signals = signals_for("sensors", rows, buckets=buckets)
    return encoded, [(s.key, json.dumps(json.dumps(s.payload))) for s in signals]


def run_entities(signals: list[tuple[str, str]], entities: dict[str, str]) -> None:
    """What the entity invocations do with those signals: load the bucket, apply, save it (JSON)."""
    for key, body in signals:
        state = json.loads(entities[key]) if key in entities else {}
        entities[key] = json.dumps(apply(fold, state, json.loads(json.loads(body))))


def main() -> int:
    if sys.argv[1:2] == ["scale"]:
        from bench.state_scale import main as scale

        return scale(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--buckets", type=int, default=1024)
    args = parser.parse_args()
    batches = synthetic_batches(args.events, args.keys)
    entities: dict[str, str] = {}
    cache: TtlCache[Any] = TtlCache(30.0)
    spent = {"off": 0.0, "on": 0.0, "entities": 0.0}
    operations = distinct_per_batch = 0
    encoded = {"off": 0, "on": 0}
    for number, records in enumerate(batches):
        distinct_per_batch += len({bucket_for(str(r.key), args.buckets) for r in records})
        for mode in ("off", "on") if number % 2 == 0 else ("on", "off"):
            started = time.perf_counter()
            if mode == "off":
                encoded["off"] += without_state(records)
                spent["off"] += time.perf_counter() - started
                continue
            rows, signals = with_state(records, entities, cache, args.buckets)
            encoded["on"] += rows
            spent["on"] += time.perf_counter() - started
            started = time.perf_counter()
            run_entities(signals, entities)
            spent["entities"] += time.perf_counter() - started
            operations += len(signals)
    counted = sum(json.loads(key)["count"] for state in entities.values() for key in json.loads(state)["keys"].values())
    if encoded != {"off": args.events, "on": args.events} or counted != args.events:
        print(f"CHECK FAILED: {args.events:,} events in; encoded {encoded}; entities counted {counted:,}")
        return 1
    print(f"checked: every event encoded in both modes, entities counted {counted:,} events")
    per_million = operations * 1_000_000 / args.events
    print(f"events: {args.events:,} over {args.keys:,} keys in {len(batches):,} invocations of {BATCH:,}")
    print(f"entity operations: {operations:,} ({per_million:,.0f} per 1M events) with {args.buckets:,} buckets; "
          f"buckets touched per batch, summed: {distinct_per_batch:,} -> "
          f"{'met' if operations <= distinct_per_batch else 'MISSED'}")  # fmt: skip
    rate_off, rate_on = args.events / spent["off"], args.events / spent["on"]
    cost = 1 - rate_on / rate_off
    print(f"processing throughput, state off: {rate_off:,.0f} ev/s; state on: {rate_on:,.0f} ev/s")
    print(f"state costs the processing functions {cost:.1%}; target < 25%: {'met' if cost < 0.25 else 'MISSED'}")
    total = args.events / (spent["on"] + spent["entities"])
    print(f"counting the entity invocations' CPU too: {total:,.0f} ev/s, {1 - total / rate_off:.1%} below state off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
