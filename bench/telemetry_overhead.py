"""Telemetry overhead: processing invocations with OpenTelemetry metrics on versus off, one run.

    python bench/telemetry_overhead.py [--records 100000] [--rounds 5]

Every seeded clickstream invocation (1,000 records, landed in a local lake on /dev/shm when
there is one, so disk noise does not drown the difference) runs twice back to back, the
order alternating per invocation so drift in machine speed cancels: once with the API's
no-op meter (telemetry off, what a worker without APPLICATIONINSIGHTS_CONNECTION_STRING
does) and once with the OpenTelemetry SDK aggregating every instrument (telemetry on; the
App Insights exporter reads these aggregates on its own thread every minute, off the
invocation path). Reports the ratio of total times. Target (issue 6): on is within 5% of off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import seeded_records
from shared import telemetry as telemetry_module
from shared.invocation import ProcessingContext, handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from shared.telemetry import Telemetry
from tests.conftest import FIXED_NOW_MS

BATCH = 1000  # records per invocation: the figures in bench/README.md were measured at this size


def measure(records: list[KafkaRecord], modes: dict[str, Telemetry], lake_root: Path) -> dict[str, float]:
    """Seconds spent per mode; every invocation runs once per mode, back to back, alternating which goes first."""
    source, settings = SOURCES["clickstream"], load_settings({})
    source_settings = load_source_settings("clickstream", {})
    lakes = {name: LocalLake(lake_root / name) for name in modes}
    spent = dict.fromkeys(modes, 0.0)
    contexts = {
        name: ProcessingContext(source, lakes[name], settings, source_settings, clock=lambda: FIXED_NOW_MS / 1000)
        for name in modes
    }
    for number, start in enumerate(range(0, len(records), BATCH)):
        batch = records[start : start + BATCH]
        names = list(modes) if number % 2 == 0 else list(reversed(modes))
        for name in names:
            telemetry_module._telemetry = modes[name]
            started = time.perf_counter()
            handle_batch(contexts[name], batch)
            spent[name] += time.perf_counter() - started
    return spent


def landed_rows(root: Path) -> int:
    """Distinct (partition, offset) pairs in the Parquet files under ``root``, failing on duplicates."""
    seen: set[tuple[int, int]] = set()
    rows = 0
    for path in root.rglob("*.parquet"):
        table = pq.read_table(path, columns=["_partition", "_offset"])
        seen.update(zip(table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True))
        rows += table.num_rows
    return len(seen) if rows == len(seen) else -rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = seeded_records(SOURCES["clickstream"], args.records)
    modes = {
        "off": Telemetry(NoOpMeterProvider().get_meter("bench")),
        "on": Telemetry(MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")),
    }
    shm = Path("/dev/shm")
    totals = dict.fromkeys(modes, 0.0)
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as directory:
        for _ in range(args.rounds):
            for name, seconds in measure(records, modes, Path(directory)).items():
                totals[name] += seconds
        for name in modes:  # every round rewrote the same files: each mode's lake holds each record once
            landed = landed_rows(Path(directory) / name)
            if landed != args.records:
                print(f"CHECK FAILED: telemetry {name}: {landed:,} rows landed of {args.records:,} records")
                return 1
    print(f"checked: each mode landed all {args.records:,} records")
    events = args.records * args.rounds
    rate_off, rate_on = events / totals["off"], events / totals["on"]
    print(f"telemetry off: {rate_off:,.0f} ev/s")
    print(f"telemetry on:  {rate_on:,.0f} ev/s")
    ratio = rate_on / rate_off
    verdict = "met" if ratio >= 0.95 else "MISSED"
    print(f"on / off: {ratio:.3f} (overhead {1 - ratio:+.1%}); target overhead <= 5%: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
