"""Compaction: 1M events landed as 1,000-record raw files, compacted into the curated Delta table,
then one aggregate query over the day on raw and on curated, in the same run.

    python bench/compact.py [--events 1000000] [--file-records 1000] [--repeat 3] [--dir DIR]

Raw files are what processing lands: clickstream rows from the real pipeline (decode, validate,
transform, lineage), encoded by the landing's Parquet (zstd) encoder, one file per 1,000
records, spread over the 24 hours of one day, written through the local lake store. To keep
set-up short, a pool of 10,000 processed rows is reused with fresh offsets and event times.

Compaction runs the production job (``shared.compaction.job.compact``) on all 24 closed hours;
rows/s per core divides rows by the process CPU time (Python, Arrow and delta-rs threads).
The query (page views per user and hour, bots excluded) runs in DuckDB on one thread, once
over the raw files (listed through the lake store) and once over the curated table's active
files (from the Delta log), best of ``--repeat`` each, listing and log reading included.
Targets (issue 11): compaction >= 1M rows/s per core; curated query >= 10x faster than raw.
The lake is a local directory (on /dev/shm when present): against ADLS every raw file is an
extra request, so the raw side is slower there and the ratio larger.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import formats
from shared.compaction.hours import HOUR_MS
from shared.compaction.job import compact, open_curated
from shared.lake import LocalLake
from shared.landing import landed_columns
from shared.layout import RAW_AREA, batch_file_name, hour_directory
from shared.pipeline import process_batch
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS

POOL = 10_000
DAY_START_MS = FIXED_NOW_MS - FIXED_NOW_MS % (24 * HOUR_MS)
QUERY = """
    SELECT date_trunc('hour', _event_time) AS hour, userid, count(*) AS page_views, sum(bytes) AS bytes
    FROM read_parquet({files})
    WHERE NOT is_bot
    GROUP BY ALL
"""


def row_pool() -> list[dict[str, object]]:
    from bench.core import seeded_records

    source = get_source("clickstream")
    batch = process_batch(source, seeded_records(source, POOL), max_record_bytes=1 << 20, now_ms=FIXED_NOW_MS)
    return batch.rows


def land_raw(lake: LocalLake, events: int, per_file: int) -> tuple[int, int]:
    """Write ``events`` rows as files of ``per_file`` over one day; returns (files, bytes)."""
    source = get_source("clickstream")
    pool = row_pool()
    columns = landed_columns(process_batch(source, [], max_record_bytes=1, now_ms=FIXED_NOW_MS))
    files = events // per_file
    written = 0
    for index in range(files):
        first = index * per_file
        event_ms = DAY_START_MS + (index * 24 * HOUR_MS) // files
        rows = []
        for offset in range(first, first + per_file):
            row = dict(pool[offset % POOL])
            row["_offset"] = offset
            row["_event_time"] = event_ms + (offset - first)
            rows.append(row)
        data = formats.encode("parquet", columns, rows, record_name="clickstream")
        name = batch_file_name("clickstream", 0, first, first + per_file - 1, "parquet")
        lake.write_atomic(f"{hour_directory(RAW_AREA, 'clickstream', event_ms)}/{name}", data)
        written += len(data)
    return files, written


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def query(files: list[str]) -> pa.Table:
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    return connection.sql(QUERY.format(files=repr(files))).to_arrow_table()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file-records", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-compact-", dir=args.dir))
    try:
        return run(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, args: argparse.Namespace) -> int:
    lake = LocalLake(root)
    started = time.perf_counter()
    raw_files, raw_bytes = land_raw(lake, args.events, args.file_records)
    print(f"landed {args.events:,} events as {raw_files:,} raw files in {time.perf_counter() - started:.1f} s")

    settings = load_settings({"LAKE_LOCAL_ROOT": str(root)})
    table = open_curated(settings, "clickstream")
    cpu, wall = time.process_time(), time.perf_counter()
    report = compact("clickstream", lake, table, now_ms=DAY_START_MS + 48 * HOUR_MS, grace_ms=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert not report.failed and report.rows == args.events, (report.failed, report.rows)
    curated_dir = root / "curated" / "clickstream"
    data_files = [p for p in curated_dir.rglob("*.parquet") if "_delta_log" not in p.parts]
    curated_bytes = sum(p.stat().st_size for p in data_files)
    log_bytes = sum(p.stat().st_size for p in (curated_dir / "_delta_log").iterdir())

    def raw_query() -> pa.Table:
        return query([str(root / path) for path in lake.list_paths("raw/clickstream")])

    def curated_query() -> pa.Table:
        from deltalake import DeltaTable

        return query(DeltaTable(str(curated_dir)).file_uris())

    raw_s, raw_result = best_of(args.repeat, raw_query)
    curated_s, curated_result = best_of(args.repeat, curated_query)
    assert isinstance(raw_result, pa.Table) and isinstance(curated_result, pa.Table)
    assert raw_result.sort_by([("hour", "ascending"), ("userid", "ascending")]).equals(
        curated_result.sort_by([("hour", "ascending"), ("userid", "ascending")])
    ), "raw and curated answers differ"

    per_core = report.rows / cpu
    speedup = raw_s / curated_s
    print(f"{'':<28} {'files':>8} {'MB':>9}")
    print(f"{'raw (before)':<28} {raw_files:>8,} {raw_bytes / 1e6:>9.1f}")
    print(f"{'curated (after), data':<28} {len(data_files):>8,} {curated_bytes / 1e6:>9.1f}")
    print(f"{'curated _delta_log':<28} {'':>8} {log_bytes / 1e6:>9.2f}")
    print(f"compaction: {report.rows:,} rows, {len(report.hours)} hours in {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"  {report.rows / wall:,.0f} rows/s wall; {per_core:,.0f} rows/s per core (target >= 1,000,000)")
    print(
        f"query over the day (DuckDB, 1 thread, best of {args.repeat}): raw {raw_s * 1000:.0f} ms, "
        f"curated {curated_s * 1000:.0f} ms: {speedup:.1f}x (target >= 10x); {raw_result.num_rows} result rows"
    )
    met = per_core >= 1_000_000 and speedup >= 10
    print("targets:", "met" if met else "MISSED", f"(os cpus {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
