"""Key buckets at scale: operations per event, bucket state size and CPU per operation, per keyed source.

    python bench/state.py scale [--rate 10000] [--keys 100000] [--buckets 1024] [--minutes 120]
                                [--batch 1000] [--sample 8] [--partitions 4]

The stream: ``--rate`` events/s in total, split evenly over the registered sources (the
generators' default mix: 100 events every 10 s each), so each keyed source gets rate / sources;
``--keys`` distinct keys per source, uniform; invocations of ``--batch`` events, partitions mixed.

Operations per event are counted for the whole stream: 400 invocations of ``--batch`` uniform keys,
``shared.state.aggregate.signals_for`` on real rows, one operation per bucket touched.

Size and CPU at steady state: simulating every bucket for hours would take hours, so ``--sample``
buckets are simulated with their full share of the keys (keys/N each) and every event those keys
get over ``--minutes`` of event time at the source's rate, cut into the invocations the whole
stream would have. Rows are the source's own Datagen records (processed by the pipeline), with the
key, offset, partition and event time of the simulated stream. Each operation runs through the app's
own entity function and the Durable SDK's handler, with the batch context the extension sends
(the bucket's JSON state and the signal's body): the CPU (process time) of that call is what a
Python worker spends per operation; it is reported for the last quarter of the run, when buckets
are full size.
Checks: every simulated event is counted once by its key's state, and the last invocations
applied again change nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.batch import process_batch
from shared.generator_ticks import generate_messages
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.sources import SOURCES
from shared.state.aggregate import signals_for
from shared.state.bucket_state import dump
from shared.state.buckets import bucket_index
from shared.state.registry import ENTITY_KINDS
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, app_functions

KEY_FIELDS = {"clickstream": "userid", "mobile": "device_id", "sensors": "sensor_id", "users": "user_id"}
COUNTERS = {"clickstream": "page_views", "mobile": "events", "sensors": "count", "users": "updates"}
LIMITS = {"ops_per_event": 0.2, "bucket_bytes": 256 * 1024, "ops_per_entity_s": 20}


@dataclass
class Figures:
    source: str
    ops_per_event: float
    keys_per_bucket: float
    bucket_bytes_max: int
    bucket_bytes_mean: float
    cpu_us_per_op: float
    events_per_op: float
    ops_per_bucket_s: float
    fullest_keys: int

    @property
    def fullest_bytes(self) -> float:
        """The fullest of all N buckets: its key count (exact) times the bytes per key measured."""
        return self.fullest_keys * self.bucket_bytes_mean / self.keys_per_bucket


def key_name(source: str, number: int) -> str:
    return str(number) if source in ("clickstream", "users") else f"{source}-key-{number:06d}"


def row_pool(source: str, count: int = 500) -> list[dict[str, Any]]:
    """The source's own Datagen records as the pipeline lands them (valid rows, lineage columns)."""
    messages = generate_messages(SOURCES[source], count, now=FIXED_NOW, seed=3, start_index=0)
    records = [KafkaRecord(source, 0, i, None, m.value.encode(), FIXED_NOW_MS) for i, m in enumerate(messages)]
    rows = process_batch(SOURCES[source], records, max_record_bytes=1 << 20, keyed=True).rows()
    if source == "clickstream":
        rows = [r for r in rows if r["user_known"]]
    return rows


def stamped(template: dict[str, Any], source: str, key: str, where: tuple[int, int, int]) -> dict[str, Any]:
    partition, offset, event_ms = where
    row = dict(template)
    row[KEY_FIELDS[source]] = int(key) if source == "clickstream" else key
    row.update(_topic=source, _partition=partition, _offset=offset, _event_time=event_ms, _incarnation=0)
    return row


READINGS_PER_SENSOR_MINUTE = 1.41  # the envelope: 10,000 events/s, sensors 23.5% of the mix, 100,000 sensors
BUCKET_BOOKKEEPING_BYTES = 4096  # a bucket's applied offset ranges and origins, beside its keys


def steady_key_states(source: str, pool: list[dict[str, Any]], sensors: int = 200) -> list[dict[str, Any]]:
    """Key states at their steady-state size.

    Sessions (clicks, devices): every event 31 minutes after the last, so every session closes and
    every bounded list is full; what a key reaches at any rate given time. Profiles: one per pool
    row. Sensors: an hour of readings at the envelope's rate (Poisson, 1.41 a minute), ``sensors``
    simulated sensors.
    """
    kind = ENTITY_KINDS[source]
    part = {"topic": source, "partition": 0, "incarnation": 0}
    if source == "sensors":
        rng, states = random.Random(17), []
        for sensor in range(sensors):
            events: list[Any] = []
            for minute in range(70):
                for _ in range(_small_poisson(rng, READINGS_PER_SENSOR_MINUTE)):
                    row = pool[rng.randrange(len(pool))]
                    when = FIXED_NOW_MS + minute * 60_000 + rng.randrange(60_000)
                    events.append(kind.compact(stamped(row, source, key_name(source, sensor), (0, len(events), when))))
            states.append(_folded(kind.fold, sorted(events, key=lambda e: e[1]), part))
        return states
    if source == "users":
        return [
            _folded(kind.fold, [kind.compact(stamped(row, source, "1", (0, 0, FIXED_NOW_MS)))], part) for row in pool
        ]
    events = [
        kind.compact(stamped(pool[i % len(pool)], source, key_name(source, 1), (0, i, FIXED_NOW_MS + i * 31 * 60_000)))
        for i in range(300)
    ]
    return [_folded(kind.fold, events, part)]


def key_state_bound(source: str, pool: list[dict[str, Any]]) -> float:
    """Bytes one key takes in its bucket (its state as JSON text inside the bucket's JSON) at steady state:
    the largest profile (one key per bucket varies by its strings), the mean sensor (a bucket holds a
    couple of hundred), the one steady state of clicks and devices."""
    sizes = [_held_bytes(source, state) for state in steady_key_states(source, pool)]
    return max(sizes) if source == "users" else statistics.mean(sizes)


def stored_chars_per_key(source: str, pool: list[dict[str, Any]] | None = None) -> float:
    """Characters one key adds to its bucket as Durable's Azure Storage backend stores it: the bucket's JSON
    is itself a JSON string inside the entity's scheduler state, so each key's text is escaped twice."""
    states = steady_key_states(source, pool if pool is not None else row_pool(source))
    key = key_name(source, 99_999)
    return statistics.mean(len(json.dumps(json.dumps({key: dump(state)}))) - 4 for state in states)


def _held_bytes(source: str, state: dict[str, Any]) -> int:
    return len(json.dumps(dump(state))) + len(json.dumps(key_name(source, 99_999))) + 1


def _folded(fold: Any, events: list[list[Any]], part: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    fold(state, events, part)
    return state


def fullest_bucket_keys(source: str, keys: int, buckets: int) -> int:
    return max(Counter(bucket_index(key_name(source, n), buckets) for n in range(keys)).values())


def bucket_bound(source: str, keys: int = 100_000, buckets: int | None = None) -> tuple[int, float, float]:
    """(fullest bucket's keys, bytes per key at steady state, the fullest bucket's bytes) at ``keys`` keys."""
    count = buckets or ENTITY_KINDS[source].buckets
    fullest = fullest_bucket_keys(source, keys, count)
    per_key = key_state_bound(source, row_pool(source))
    return fullest, per_key, fullest * per_key + BUCKET_BOOKKEEPING_BYTES


def ops_per_event(source: str, args: argparse.Namespace, pool: list[dict[str, Any]], buckets: int, batch: int) -> float:
    """Operations per event of the whole stream: signals of ``batch``-event invocations over uniform keys."""
    rng = random.Random(11)
    events = operations = 0
    for invocation in range(max(20, 400_000 // batch)):
        rows = []
        for i in range(batch):
            key = key_name(source, rng.randrange(args.keys))
            where = (zlib.crc32(key.encode()) % args.partitions, invocation * batch + i, FIXED_NOW_MS)
            rows.append(stamped(pool[i % len(pool)], source, key, where))
        operations += len(signals_for(source, rows, buckets=buckets))
        events += len(rows)
    return operations / events


def ops_grid(args: argparse.Namespace) -> None:
    """Operations per event for N x invocation size (keys uniform: the same for every source)."""
    pool = row_pool("mobile")
    batches = (250, 1000, 2000, 5000, 10000)
    print(f"\noperations per event, {args.keys:,} uniform keys (rows: N buckets; columns: events per invocation)")
    print("| N | " + " | ".join(f"{b:,}" for b in batches) + " |")
    print("| ---: |" + " ---: |" * len(batches))
    for buckets in (64, 128, 256, 512, 1024, 2048, 4096):
        cells = [f"{ops_per_event('mobile', args, pool, buckets, b):.3f}" for b in batches]
        print(f"| {buckets:,} | " + " | ".join(cells) + " |")


def steady_state(
    source: str, args: argparse.Namespace, pool: list[dict[str, Any]]
) -> tuple[dict[str, str], list[float], int]:
    """Simulate the sampled buckets; returns their JSON states, CPU seconds per operation, events applied."""
    entity = ENTITY_KINDS[source].name
    handler = app_functions()[entity].get_user_function()
    rng = random.Random(13)
    sampled = [
        k for k in (key_name(source, n) for n in range(args.keys)) if bucket_index(k, args.buckets) < args.sample
    ]
    rate = args.rate / len(SOURCES)
    seconds_per_invocation = args.batch / rate
    invocations = int(args.minutes * 60 / seconds_per_invocation)
    sampled_per_invocation = args.batch * len(sampled) / args.keys
    start_ms = FIXED_NOW_MS - args.minutes * 60_000
    stores: dict[str, str] = {}
    cpu: list[float] = []
    offsets = [0] * args.partitions
    applied = 0
    replay: list[tuple[str, str]] = []
    for invocation in range(invocations):
        count = _poisson(rng, sampled_per_invocation)
        window_ms = start_ms + int(invocation * seconds_per_invocation * 1000)
        rows = []
        for i in range(count):
            key = sampled[rng.randrange(len(sampled))]
            partition = zlib.crc32(key.encode()) % args.partitions
            offset = offsets[partition] + rng.randrange(args.batch // args.partitions)
            event_ms = window_ms + rng.randrange(int(seconds_per_invocation * 1000))
            rows.append(stamped(pool[(invocation + i) % len(pool)], source, key, (partition, offset, event_ms)))
        rows.sort(key=lambda r: (r["_partition"], r["_offset"]))
        rows = [
            r
            for i, r in enumerate(rows)
            if i == 0 or (r["_partition"], r["_offset"]) != (rows[i - 1]["_partition"], rows[i - 1]["_offset"])
        ]
        ranges = {
            TopicPartition(source, p): OffsetSpan(offsets[p], offsets[p] + args.batch // args.partitions - 1)
            for p in range(args.partitions)
        }
        offsets = [o + args.batch // args.partitions for o in offsets]
        applied += len(rows)
        for signal in signals_for(source, rows, ranges, buckets=args.buckets):
            body = json.dumps(json.dumps(signal.payload))  # as the durable client posts it: JSON text of JSON text
            if invocation >= invocations - 5:
                replay.append((signal.key, body))
            context = _batch_context(entity, signal.key, stores.get(signal.key), body)
            started = time.process_time()
            result = handler(context)
            cpu.append(time.process_time() - started)
            stores[signal.key] = _new_state(result)
    before = dict(stores)
    for key, body in replay:
        stores[key] = _new_state(handler(_batch_context(entity, key, stores[key], body)))
    if stores != before:
        raise SystemExit(f"CHECK FAILED: {source}: applying the last invocations again changed the buckets")
    return stores, cpu, applied


def _batch_context(entity: str, key: str, state: str | None, body: str) -> str:
    """What the Durable extension hands the entity function for one operation (devhost/durable/entity_runtime.py)."""
    batch = [{"name": "apply", "input": body}]
    return json.dumps(
        {"self": {"name": entity, "key": key}, "state": state, "exists": state is not None, "batch": batch}
    )


def _new_state(result: str) -> str:
    outcome = json.loads(result)
    if any(r["isError"] for r in outcome["results"]):
        raise SystemExit(f"CHECK FAILED: the entity refused an operation: {outcome['results']}")
    return str(outcome["entityState"])


def _poisson(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, mean**0.5))) if mean > 30 else _small_poisson(rng, mean)


def _small_poisson(rng: random.Random, mean: float) -> int:
    count, limit, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def measure(source: str, args: argparse.Namespace) -> Figures:
    pool = row_pool(source)
    per_event = ops_per_event(source, args, pool, args.buckets, args.batch)
    stores, cpu, applied = steady_state(source, args, pool)
    states = {key: json.loads(body) for key, body in stores.items()}
    counted = sum(json.loads(k).get(COUNTERS[source], 0) for s in states.values() for k in s["keys"].values())
    if counted != applied:
        raise SystemExit(f"CHECK FAILED: {source}: {applied:,} events applied, the keys counted {counted:,}")
    sizes = [len(body.encode()) for body in stores.values()]
    keys = [len(s["keys"]) for s in states.values()]
    tail = cpu[len(cpu) * 3 // 4 :]
    invocations_per_s = (args.rate / len(SOURCES)) / args.batch
    fullest = max(Counter(bucket_index(key_name(source, n), args.buckets) for n in range(args.keys)).values())
    return Figures(
        source,
        per_event,
        statistics.mean(keys),
        max(sizes),
        statistics.mean(sizes),
        statistics.mean(tail) * 1e6,
        applied / len(cpu),
        invocations_per_s * len(cpu) / (args.sample * int(args.minutes * 60 * invocations_per_s)),
        fullest,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/state.py scale", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="events/s across all sources")
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys per keyed source")
    parser.add_argument("--buckets", type=int, default=1024)
    parser.add_argument("--minutes", type=int, default=120, help="event time simulated for the sampled buckets")
    parser.add_argument("--batch", type=int, default=1000, help="events per invocation")
    parser.add_argument("--sample", type=int, default=8, help="buckets simulated with every event of their keys")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sources", nargs="*", default=list(ENTITY_KINDS))
    parser.add_argument("--grid", action="store_true", help="only the operations-per-event grid over N and batch")
    args = parser.parse_args(argv)
    if args.grid:
        ops_grid(args)
        return 0
    rate = args.rate / len(SOURCES)
    print(f"{args.rate:,} ev/s over {len(SOURCES)} sources ({rate:,.0f} ev/s per source), "
          f"{args.keys:,} keys per source, {args.buckets:,} buckets, invocations of {args.batch:,}, "
          f"{args.minutes} min simulated on {args.sample} buckets")  # fmt: skip
    print("| source (entity) | ops/event | keys/bucket (fullest) | bucket JSON: sampled (fullest, est.) | CPU us/op |"
          " events/op | ops/s per bucket |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    missed = []
    for source in args.sources:
        f = measure(source, args)
        print(f"| {source} ({ENTITY_KINDS[source].name}) | {f.ops_per_event:.3f} | {f.keys_per_bucket:,.0f} "
              f"({f.fullest_keys}) | {f.bucket_bytes_max / 1024:,.0f} KB ({f.fullest_bytes / 1024:,.0f} KB) | "
              f"{f.cpu_us_per_op:,.0f} | {f.events_per_op:.1f} | {f.ops_per_bucket_s:.2f} |")  # fmt: skip
        if f.ops_per_event > LIMITS["ops_per_event"]:
            missed.append(f"{source}: {f.ops_per_event:.3f} ops/event")
        if max(f.bucket_bytes_max, f.fullest_bytes) > LIMITS["bucket_bytes"]:
            missed.append(f"{source}: bucket {max(f.bucket_bytes_max, f.fullest_bytes) / 1024:,.0f} KB")
        if f.ops_per_bucket_s > LIMITS["ops_per_entity_s"]:
            missed.append(f"{source}: {f.ops_per_bucket_s:.1f} ops/s per bucket")
    print("checked: every simulated event counted once by its key; the last invocations applied again changed nothing")
    print("targets (<= 0.2 ops/event, <= 256 KB per bucket, <= 20 ops/s per bucket): "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))  # fmt: skip
    return 0
