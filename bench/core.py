"""Processing-core throughput per core, side by side with a raw ``orjson.loads`` loop.

    python bench/core.py [--records 100000] [--repeat 3]

For each source: a seeded batch of records is generated once; then, on one core, the
baseline parses every value with orjson, and the pipeline decodes, validates, transforms
and encodes Parquet (zstd) exactly as a processing invocation does (no lake I/O). Best of
``--repeat`` runs. Targets (issue 2): clickstream >= 100k events/s, and >= 20% of the raw rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.generator import generate_messages
from shared.landing import plan_files
from shared.pipeline import process_batch
from shared.records import KafkaRecord
from shared.sources import SOURCES, Source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS

BATCH = 1000  # records per invocation, as host.json's maxBatchSize


def seeded_records(source: Source, count: int) -> list[KafkaRecord]:
    messages = generate_messages(source, count, now=FIXED_NOW, seed=1, start_index=0)
    return [
        KafkaRecord(source.name, 0, offset, m.key, m.value.encode(), FIXED_NOW_MS) for offset, m in enumerate(messages)
    ]


def raw_parse(records: list[KafkaRecord]) -> None:
    loads = orjson.loads
    for record in records:
        loads(record.value or b"")


def pipeline(source: Source, records: list[KafkaRecord]) -> None:
    for start in range(0, len(records), BATCH):
        batch = process_batch(source, records[start : start + BATCH], max_record_bytes=1 << 20, now_ms=FIXED_NOW_MS)
        for file in plan_files(batch, "parquet", now_ms=FIXED_NOW_MS):
            file.encoded()


def best_rate(work: Callable[[], None], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'source':<12} {'raw orjson ev/s':>16} {'pipeline ev/s':>14} {'ratio':>7}")
    failed = False
    for name, source in SOURCES.items():
        records = seeded_records(source, args.records)
        raw = best_rate(lambda r=records: raw_parse(r), len(records), args.repeat)  # type: ignore[misc]
        full = best_rate(lambda s=source, r=records: pipeline(s, r), len(records), args.repeat)  # type: ignore[misc]
        print(f"{name:<12} {raw:>16,.0f} {full:>14,.0f} {full / raw:>7.1%}")
        if name == "clickstream" and (full < 100_000 or full / raw < 0.20):
            failed = True
    print("targets (clickstream >= 100,000 ev/s and >= 20% of raw):", "MISSED" if failed else "met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
