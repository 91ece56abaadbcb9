"""Compaction: 1M events landed as 1,000-record raw files, compacted into the curated Delta table,
then one aggregate query over the day on raw and on curated, in the same run, on two stores.

    python bench/compact.py [--events 1000000] [--file-records 1000] [--hours 24] [--repeat 3]
                            [--stores local,azurite] [--skip-query]

Raw files are what processing lands: clickstream rows from the real pipeline (decode, validate,
transform, lineage), encoded by the landing's Parquet (zstd) encoder, one file per 1,000
records, spread over ``--hours`` hours of one day (24 by default; ``--hours 1`` puts every row
in one hour, the case that bounds compaction's memory), written through the lake store. To keep
set-up short, a pool of 10,000 processed rows is reused with fresh offsets and event times.

Compaction runs the production job (``shared.compaction.job.compact``) on all closed hours, in a
fresh process (spawned, importing only what the job needs), so that its peak resident memory is
the job's own: ``ru_maxrss`` of that process, interpreter and libraries included (target: under
1 GB). Rows/s per core divides rows by that process's CPU time (Python, Arrow and delta-rs
threads; Azurite's own process is not counted). The query (page views per user and hour, bots
excluded) is aggregated by DuckDB on one thread. Each layer's files are found the way a reader
finds them (raw: a listing of ``raw/clickstream``; curated: the Delta log's active files) and
fetched through the lake store (a local directory: file reads; Azurite: one HTTP GET per file),
reading only the query's columns; best of ``--repeat``, listing and log included. On the local
store DuckDB also reads the files itself (``read_parquet``), for reference.
Targets (issue 11): compaction >= 1M rows/s per core; curated query >= 10x faster than raw;
(issue 22) peak RSS of the compaction process under 1 GB. ``--skip-query`` skips the query.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import formats
from shared.batch import process_batch
from shared.compaction.job import compact, open_curated
from shared.lake import LakeStore, LocalLake
from shared.landing.files import landed_columns
from shared.layout import HOUR_MS, RAW_AREA, batch_file_name, hour_directory
from shared.records import OffsetSpan, TopicPartition
from shared.settings import Settings, load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS

POOL = 10_000
RSS_TARGET_MB = 1024
DAY_START_MS = FIXED_NOW_MS - FIXED_NOW_MS % (24 * HOUR_MS)
QUERY_COLUMNS = ["_event_time", "userid", "bytes", "is_bot"]
QUERY = """
    SELECT date_trunc('hour', _event_time) AS hour, userid, count(*) AS page_views, sum(bytes) AS bytes
    FROM {source}
    WHERE NOT is_bot
    GROUP BY ALL
"""


@dataclass
class Store:
    name: str
    lake: LakeStore
    settings: Settings
    values: dict[str, str]  # the settings, to rebuild the store in the compaction process
    local_root: Path | None = None


def row_pool() -> list[dict[str, object]]:
    from bench.core import seeded_records

    source = get_source("clickstream")
    batch = process_batch(source, seeded_records(source, POOL), max_record_bytes=1 << 20)
    return batch.rows()


def land_raw(
    lake: LakeStore, events: int, per_file: int, hours: int = 24, *, first_offset: int = 0, first_hour: int = 0
) -> tuple[int, int]:
    """Write ``events`` rows as files of ``per_file`` over ``hours`` hours of one day, from ``first_hour``,
    with offsets from ``first_offset``; returns (files, bytes)."""
    source = get_source("clickstream")
    pool = row_pool()
    columns = landed_columns(source)
    files = events // per_file
    written = 0
    for index in range(files):
        first = first_offset + index * per_file
        event_ms = DAY_START_MS + first_hour * HOUR_MS + (index * hours * HOUR_MS) // files
        rows = []
        for offset in range(first, first + per_file):
            row = dict(pool[offset % POOL])
            row["_offset"] = offset
            row["_event_time"] = event_ms + (offset - first)
            rows.append(row)
        data = formats.encode("parquet", columns, rows, record_name="clickstream")
        name = batch_file_name(TopicPartition("clickstream", 0), OffsetSpan(first, first + per_file - 1), 0, "parquet")
        lake.write_atomic(f"{hour_directory(RAW_AREA, 'clickstream', event_ms)}/{name}", data)
        written += len(data)
    return files, written


def best_of(repeat: int, work: Callable[[], pa.Table]) -> tuple[float, pa.Table]:
    best, result = float("inf"), pa.table({})
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result.sort_by([("hour", "ascending"), ("userid", "ascending")])


def aggregate(source: str, **tables: object) -> pa.Table:
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    for name, table in tables.items():
        connection.register(name, table)
    return connection.sql(QUERY.format(source=source)).to_arrow_table()


def fetched(lake: LakeStore, paths: list[str]) -> pa.Table:
    """The query's columns of every file, each fetched whole through the lake store."""
    parts = [
        pq.ParquetFile(pa.BufferReader(lake.read(path))).read(columns=QUERY_COLUMNS, use_threads=False)
        for path in paths
    ]
    return pa.concat_tables(parts)


def curated_paths(store: Store) -> list[str]:
    """Active data files of the curated table, from its Delta log, as lake-relative paths."""
    from deltalake import DeltaTable

    location = open_curated(store.settings, "clickstream").location
    marker = "/curated/"
    uris = DeltaTable(location.uri, storage_options=location.storage_options).file_uris()
    return ["curated/" + uri.split(marker, 1)[1] for uri in uris]


@dataclass(frozen=True)
class CompactionRun:
    rows: int
    hours: int
    files_in: int
    cpu_s: float
    wall_s: float
    rss_before_mb: float  # after imports, before the job
    peak_rss_mb: float


def compact_in_fresh_process(store: Store) -> CompactionRun:
    """The production job on every closed hour, in a spawned process: its peak RSS is the job's."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_compact, (store.values, str(store.local_root) if store.local_root else None))


def _compact(values: dict[str, str], local_root: str | None) -> CompactionRun:
    from shared.lake.blob import BlobLake

    settings = load_settings(values)
    lake: LakeStore = LocalLake(Path(local_root)) if local_root else BlobLake.from_settings(settings)
    table = open_curated(settings, "clickstream")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    report = compact("clickstream", lake, table, now_ms=DAY_START_MS + 48 * HOUR_MS, grace_ms=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert not report.failed, report.failed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return CompactionRun(report.rows, len(report.hours), report.files_in, cpu, wall, before, peak)


def run(store: Store, args: argparse.Namespace) -> bool:
    lake = store.lake
    started = time.perf_counter()
    raw_files, raw_bytes = land_raw(lake, args.events, args.file_records, args.hours)
    landing_s = time.perf_counter() - started
    print(
        f"[{store.name}] landed {args.events:,} events as {raw_files:,} raw files over {args.hours} hours "
        f"in {landing_s:.1f} s"
    )

    compaction = compact_in_fresh_process(store)
    cpu, wall = compaction.cpu_s, compaction.wall_s
    assert compaction.rows == args.events, compaction
    late_rows = args.late_files * args.file_records
    land_raw(lake, late_rows, args.file_records, 1, first_offset=args.events, first_hour=args.hours - 1)
    recompaction = compact_in_fresh_process(store)
    assert recompaction.hours == (1 if late_rows else 0) and recompaction.rows >= late_rows, recompaction
    data_paths = curated_paths(store)
    curated_bytes = sum(len(lake.read(path)) for path in data_paths)
    log_bytes = sum(len(lake.read(path)) for path in lake.list_paths("curated/clickstream/_delta_log"))

    per_core = compaction.rows / cpu
    print(f"  {'':<26} {'files':>8} {'MB':>8}")
    print(f"  {'raw (before)':<26} {raw_files:>8,} {raw_bytes / 1e6:>8.1f}")
    print(f"  {'curated (after), data':<26} {len(data_paths):>8,} {curated_bytes / 1e6:>8.1f}")
    print(f"  {'curated _delta_log':<26} {'':>8} {log_bytes / 1e6:>8.2f}")
    print(f"  compaction: {compaction.rows:,} rows, {compaction.hours} hours, {wall:.2f} s wall, {cpu:.2f} s CPU:")
    print(f"    {compaction.rows / wall:,.0f} rows/s wall, {per_core:,.0f} rows/s per core (target >= 1,000,000)")
    print(
        f"    peak RSS of the compaction process {compaction.peak_rss_mb:,.0f} MB (target < {RSS_TARGET_MB:,}; "
        f"{compaction.rss_before_mb:,.0f} MB after imports, before the job)"
    )
    print(
        f"  recompaction of the last hour ({recompaction.rows - late_rows:,} curated rows + {args.late_files} late "
        f"files of {args.file_records:,}): {recompaction.wall_s:.2f} s wall, {recompaction.cpu_s:.2f} s CPU, "
        f"peak RSS {recompaction.peak_rss_mb:,.0f} MB"
    )
    memory_met = max(compaction.peak_rss_mb, recompaction.peak_rss_mb) < RSS_TARGET_MB
    if args.skip_query:
        return memory_met

    def raw_query() -> pa.Table:
        return aggregate("raw", raw=fetched(lake, lake.list_paths("raw/clickstream")))

    def curated_query() -> pa.Table:
        return aggregate("curated", curated=fetched(lake, curated_paths(store)))

    raw_s, raw_result = best_of(args.repeat, raw_query)
    curated_s, curated_result = best_of(args.repeat, curated_query)
    assert raw_result.equals(curated_result), "raw and curated answers differ"
    speedup = raw_s / curated_s
    print(
        f"  query over the day, fetched through the store: raw {raw_s * 1000:,.0f} ms, curated "
        f"{curated_s * 1000:,.0f} ms: {speedup:.1f}x (target >= 10x); {raw_result.num_rows} result rows, equal"
    )
    if store.local_root is not None:
        root = store.local_root
        raw_files_list = [str(root / path) for path in lake.list_paths("raw/clickstream")]
        local_raw_s, _ = best_of(args.repeat, lambda: aggregate(f"read_parquet({raw_files_list!r})"))
        local_curated_s, _ = best_of(
            args.repeat, lambda: aggregate(f"read_parquet({[str(root / p) for p in curated_paths(store)]!r})")
        )
        print(
            f"  same query, DuckDB read_parquet on the files: raw {local_raw_s * 1000:,.0f} ms, curated "
            f"{local_curated_s * 1000:,.0f} ms: {local_raw_s / local_curated_s:.1f}x"
        )
    return per_core >= 1_000_000 and speedup >= 10 and memory_met


@contextmanager
def open_store(kind: str, scratch: Path) -> Iterator[Store]:
    if kind == "local":
        root = scratch / "lake"
        values = {"LAKE_LOCAL_ROOT": str(root)}
        yield Store("local directory", LocalLake(root), load_settings(values), values, root)
        return
    from devhost.services.azurite import start_azurite
    from shared.lake.blob import BlobLake

    with start_azurite(scratch / "azurite", reuse_running=False) as azurite:
        values = {"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": azurite.connection_string, "LAKE_FILE_SYSTEM": "bench"}
        settings = load_settings(values)
        yield Store("Azurite, Blob API", BlobLake.from_settings(settings), settings, values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file-records", type=int, default=1_000)
    parser.add_argument("--hours", type=int, default=24, choices=range(1, 25), metavar="1-24")
    parser.add_argument("--late-files", type=int, default=10, help="late raw files for the last hour, then again")
    parser.add_argument("--skip-query", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="local,azurite")
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()
    results = {}
    for kind in args.stores.split(","):
        scratch = Path(tempfile.mkdtemp(prefix="bench-compact-", dir=args.dir))
        try:
            with open_store(kind, scratch) as store:
                results[store.name] = run(store, args)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for name, met in results.items():
        print(f"targets on {name}:", "met" if met else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
