"""What exactly-once landing costs: the same batches landed plainly and through the landing guard.

    python bench/landing_guard.py [--records 200000] [--repeat 3]

Clickstream batches of 1,000 records (host.json's maxBatchSize before issue 19), one partition, land on a local
lake twice per round, alternating: (a) ``plan_batch`` + ``land`` as before the guard, (b)
``shared.landing.guard.land_once`` as the processing functions do now. Lake operations are
counted per batch by a counting wrapper around the store. Best of ``--repeat`` rounds.
Targets (issue 10): at most one extra small write per partition-batch, and under 5% slower.
Each round checks its lake holds every offset exactly once, and exits non-zero if not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import seeded_records
from shared.batch import process_batch
from shared.formats import decode, format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.landing.guard import land_once
from shared.records import KafkaRecord
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS

PARQUET = format_named("parquet")
BATCH = 1000  # records per batch: the figures in bench/README.md were measured at this size


class CountingLake(LocalLake):
    """A local lake that counts its calls by kind."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: Counter[str] = Counter()

    def create(self, path: str, data: bytes) -> bool:
        self.calls["write"] += 1
        return super().create(path, data)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        self.calls["conditional write"] += 1
        return super().write_if(path, data, version)

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        self.calls["read"] += 1
        return super().read_versioned(path)

    def exists(self, path: str) -> bool:
        self.calls["exists"] += 1
        return super().exists(path)


def plain(lake: LocalLake, records: list[KafkaRecord]) -> None:
    source = SOURCES["clickstream"]
    for start in range(0, len(records), BATCH):
        part = records[start : start + BATCH]
        batch = process_batch(source, part, max_record_bytes=1 << 20)
        land(lake, plan_batch(batch, PARQUET, now_ms=FIXED_NOW_MS))


def guarded(lake: LocalLake, records: list[KafkaRecord]) -> None:
    source = SOURCES["clickstream"]
    for start in range(0, len(records), BATCH):
        part = records[start : start + BATCH]
        batch = process_batch(source, part, max_record_bytes=1 << 20)
        land_once(lake, batch, PARQUET, now_ms=FIXED_NOW_MS)


def timed(
    work: Callable[[CountingLake, list[KafkaRecord]], None], records: list[KafkaRecord]
) -> tuple[float, Counter[str]]:
    with tempfile.TemporaryDirectory() as root:
        lake = CountingLake(Path(root))
        started = time.perf_counter()
        work(lake, records)
        elapsed = time.perf_counter() - started
        offsets = [row["_offset"] for p in lake.list_paths("raw") for row in decode("parquet", lake.read(p))]
        if sorted(offsets) != list(range(len(records))):
            raise SystemExit(f"{work.__name__}: the lake does not hold each offset once")
        return elapsed, lake.calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = seeded_records(SOURCES["clickstream"], args.records)
    batches = -(-len(records) // BATCH)
    best = {"plain": float("inf"), "guarded": float("inf")}
    calls: dict[str, Counter[str]] = {}
    for _ in range(args.repeat):
        for name, work in (("plain", plain), ("guarded", guarded)):
            elapsed, calls[name] = timed(work, records)
            best[name] = min(best[name], elapsed)
    print(f"{'landing':<8} {'events/s':>10} {'lake operations per batch'}")
    for name in ("plain", "guarded"):
        per_batch = ", ".join(f"{kind} {count / batches:.2f}" for kind, count in sorted(calls[name].items()))
        print(f"{name:<8} {len(records) / best[name]:>10,.0f} {per_batch}")
    ratio = best["plain"] / best["guarded"]
    extra = (sum(calls["guarded"].values()) - sum(calls["plain"].values())) / batches
    print(f"guarded/plain throughput {ratio:.1%}; extra lake operations per batch {extra:.2f}")
    met = ratio >= 0.95 and extra <= 1.0
    print("targets (>= 95% throughput, <= 1 extra small write per partition-batch):", "met" if met else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
