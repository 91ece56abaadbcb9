"""Processing-core throughput per core, side by side with a raw ``orjson.loads`` loop.

    python bench/core.py [--records 100000] [--repeat 3] [--batch N]

For each source: a seeded batch of records is generated once; then, on one core, the
baseline parses every value with orjson, and the pipeline decodes, validates, transforms
and encodes Parquet (zstd) exactly as a processing invocation does (no lake I/O; the cycle
collector's thresholds as ``functions.processing`` sets them in the worker): with state
off (the Arrow path for a source with a columnar transform) and keyed (rows, as a source with
state does), in invocations of ``--batch`` records: host.json's ``maxBatchSize`` unless given, the
batch a saturated processor gets (a core's throughput is what it does when it is the bottleneck;
``--batch 1000`` gives the figures measured before issue 19 raised it). Rates are events per
CPU-second, the mean of ``--repeat`` rounds that run all of them in turn. Targets (issue 13):
clickstream >= 300k events/s per core, and >= 25% of the raw rate.

A last run mixes 5% hostile records into the keyed batches (values beyond int64, NaN, bad
UTF-8, broken JSON, keys with URL syntax, keys too long for an entity; see ``with_hostile``)
and reports its rate as a ratio to the clean keyed run (issue 9: at least 90%).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CheckFailed
from shared.batch import process_batch
from shared.formats import format_named
from shared.generator_ticks import generate_messages
from shared.landing.files import plan_batch
from shared.records import KafkaRecord
from shared.sources import SOURCES, Source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS

PARQUET = format_named("parquet")

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
BATCH = int(json.loads(HOST_JSON.read_text())["extensions"]["kafka"]["maxBatchSize"])
HOSTILE_SHARE = 0.05


def _hostile_values(value: bytes) -> list[bytes]:
    """Hostile variants of one good record: each is dead-lettered or lands with a hostile key."""
    record = json.loads(value)
    variants = [b"\xff\xfe not utf-8", value[:-1], b"[1, 2]", b"{}", value[:-1] + b', "x": NaN}']
    for name, current in record.items():
        if isinstance(current, int) and not isinstance(current, bool):
            variants.append(json.dumps(record | {name: 2**63}).encode())
        elif isinstance(current, float):
            variants.append(json.dumps(record)[:-1].encode() + f', "{name}": 1e309}}'.encode())
        elif isinstance(current, str) and name.endswith("id"):
            variants.append(json.dumps(record | {name: "a/b?c#d%e\\..\u00e9"}).encode())
            variants.append(json.dumps(record | {name: "\u00e9" * 100}).encode())
    return variants


def with_hostile(records: list[KafkaRecord], share: float = HOSTILE_SHARE) -> list[KafkaRecord]:
    """``records`` with every ``1/share``-th value replaced by a hostile one (same count, same offsets)."""
    hostile = _hostile_values(records[0].value or b"{}")
    step = round(1 / share)
    mixed = list(records)
    for index in range(0, len(mixed), step):
        record = mixed[index]
        value = hostile[(index // step) % len(hostile)]
        mixed[index] = dataclasses.replace(record, value=value)
    return mixed


def seeded_records(source: Source, count: int) -> list[KafkaRecord]:
    messages = generate_messages(source, count, now=FIXED_NOW, seed=1, start_index=0)
    return [
        KafkaRecord(source.name, 0, offset, m.key, m.value.encode(), FIXED_NOW_MS) for offset, m in enumerate(messages)
    ]


def raw_parse(records: list[KafkaRecord]) -> None:
    loads = orjson.loads
    for record in records:
        loads(record.value or b"")


def pipeline(
    source: Source, records: list[KafkaRecord], *, clean: bool = True, keyed: bool = False, batch_size: int = BATCH
) -> None:
    """Process and encode ``records`` in batches as an invocation landing Parquet does (state off: the
    Arrow path where the source has one; ``keyed``: rows, as keyed state reads them); fails unless
    each record was encoded in a raw file or dead-lettered, once."""
    rows = dead = 0
    for start in range(0, len(records), batch_size):
        part = records[start : start + batch_size]
        batch = process_batch(source, part, max_record_bytes=1 << 20, keyed=keyed, columnar=not keyed)
        for file in plan_batch(batch, PARQUET, now_ms=FIXED_NOW_MS):  # encodes every file
            if not file.dead_letters:
                rows += file.row_count
        dead += len(batch.dead_letters)
    if rows + dead != len(records) or (clean and dead) or (not clean and not dead):
        raise CheckFailed(f"{source.name}: {len(records)} records in, {rows} rows encoded, {dead} dead-lettered")


def checked_pipeline(source: Source, records: list[KafkaRecord], batch_size: int = BATCH) -> None:
    """:func:`pipeline` on seeded (all valid) records: fails unless every one was encoded."""
    pipeline(source, records, clean=True, batch_size=batch_size)


def mean_rates(works: list[Callable[[], object]], count: int, repeat: int) -> list[float]:
    """Events per CPU-second of this process (one thread: one core) of each of ``works``, mean over
    ``repeat`` rounds that run them in turn, so machine drift hits them alike."""
    spent = [0.0] * len(works)
    for _ in range(repeat):
        for index, work in enumerate(works):
            started = time.process_time()
            work()
            spent[index] += time.process_time() - started
    return [count * repeat / seconds for seconds in spent]


def mean_rate(work: Callable[[], object], count: int, repeat: int) -> float:
    return mean_rates([work], count, repeat)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=BATCH, help=f"records per invocation (default {BATCH}: host.json)")
    args = parser.parse_args()
    from functions.processing import GC_THRESHOLDS  # the collector as the app's worker sets it, on import

    gc.set_threshold(*GC_THRESHOLDS)
    print(f"{args.records:,} records per source, invocations of {args.batch:,} records, gc thresholds {GC_THRESHOLDS}")
    print(
        f"{'source':<12} {'raw orjson ev/s':>16} {'pipeline ev/s':>14} {'ratio':>7} {'keyed ev/s':>12}"
        f" {'5% hostile ev/s':>16} {'vs keyed':>9}"
    )
    failed = hostile_missed = False
    for name, source in SOURCES.items():
        records = seeded_records(source, args.records)
        mixed = with_hostile(records)
        raw, full, keyed, hostile = mean_rates(
            [
                lambda r=records: raw_parse(r),  # type: ignore[misc]
                lambda s=source, r=records: pipeline(s, r, batch_size=args.batch),  # type: ignore[misc]
                lambda s=source, r=records: pipeline(s, r, keyed=True, batch_size=args.batch),  # type: ignore[misc]
                lambda s=source, r=mixed: pipeline(s, r, clean=False, keyed=True, batch_size=args.batch),  # type: ignore[misc]
            ],
            len(records),
            args.repeat,
        )
        print(
            f"{name:<12} {raw:>16,.0f} {full:>14,.0f} {full / raw:>7.1%} {keyed:>12,.0f}"
            f" {hostile:>16,.0f} {hostile / keyed:>9.1%}"
        )
        if name == "clickstream" and (full < 300_000 or full / raw < 0.25):
            failed = True
        hostile_missed = hostile_missed or hostile / keyed < 0.90
    print("targets (issue 13: clickstream >= 300,000 ev/s per core and >= 25% of raw):", "MISSED" if failed else "met")
    print("target (5% hostile >= 90% of the clean keyed rate, every source):", "MISSED" if hostile_missed else "met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
