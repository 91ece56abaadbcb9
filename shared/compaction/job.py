"""One compaction run of one source: list, plan, and for each due hour read, merge and replace.

Called by ``compact_<source>`` (functions/compaction.py) on its schedule, by the local host, the
tests and the benchmark. An hour that cannot be compacted (an unreadable raw file, conflicting
schemas) is logged and skipped so that the other hours go on; the run then raises, so the
failure shows as a failed invocation and in the compaction-lag alert, never silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from shared import formats
from shared.compaction import drift
from shared.compaction.coverage import commit_metadata
from shared.compaction.delta_table import CuratedTable
from shared.compaction.hours import Hour, parse_raw_path, raw_prefix
from shared.compaction.location import delta_location
from shared.compaction.plan import CompactionPlan, HourTask, plan_compaction
from shared.compaction.rows import CompactionError, merge_hour, offset_ranges, read_raw
from shared.lake.base import LakeStore
from shared.lineage import LINEAGE_COLUMNS
from shared.settings import Settings
from shared.sources import SOURCES
from shared.telemetry import telemetry

log = logging.getLogger("streamingpoc.compaction")
MB = 1024 * 1024
READ_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class HourResult:
    hour: Hour
    rows: int
    files_in: int
    files_out: int
    bytes_in: int
    drift: drift.HourDrift | None = None


@dataclass
class CompactionReport:
    source: str
    plan: CompactionPlan
    hours: list[HourResult] = field(default_factory=list)
    failed: dict[Hour, str] = field(default_factory=dict)
    duration_ms: float = 0.0

    @property
    def rows(self) -> int:
        return sum(h.rows for h in self.hours)

    @property
    def files_in(self) -> int:
        return sum(h.files_in for h in self.hours)

    @property
    def files_out(self) -> int:
        return sum(h.files_out for h in self.hours)


def open_curated(settings: Settings, source: str, environ: Mapping[str, str] | None = None) -> CuratedTable:
    location = delta_location(settings, source, environ)
    return CuratedTable(location, target_file_bytes=settings.compaction_target_file_mb * MB)


def compact(
    source: str,
    lake: LakeStore,
    table: CuratedTable,
    *,
    now_ms: int,
    grace_ms: int,
    include_open: bool = False,
    on_planned: Callable[[CompactionPlan], None] | None = None,
) -> CompactionReport:
    """Compact every due hour of ``source``; hours that fail are in ``report.failed``, the others commit."""
    started = time.perf_counter()
    listing = lake.list_paths(raw_prefix(source))
    coverage = table.coverage({raw.hour for path in listing if (raw := parse_raw_path(source, path))})
    plan = plan_compaction(source, listing, coverage, now_ms=now_ms, grace_ms=grace_ms, include_open=include_open)
    if on_planned is not None:
        on_planned(plan)
    if plan.ignored:
        log.warning("%s: %d paths under raw/ are not landed files, e.g. %s", source, len(plan.ignored), plan.ignored[0])
    report = CompactionReport(source, plan)
    schema = landed_schema(source)
    for task in plan.tasks:
        try:
            report.hours.append(compact_hour(source, lake, table, task, schema))
        except CompactionError as error:
            log.error("%s: %s", source, error)
            report.failed[task.hour] = str(error)
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def run_compaction(
    source: str, lake: LakeStore, settings: Settings, *, now_ms: int, environ: Mapping[str, str] | None = None
) -> CompactionReport:
    """What ``compact_<source>`` does on each tick: compact with the app's settings, report metrics, and
    raise ``CompactionError`` when an hour failed (after the others committed)."""
    instruments = telemetry()
    report = compact(
        source,
        lake,
        open_curated(settings, source, environ),
        now_ms=now_ms,
        grace_ms=settings.compaction_grace_minutes * 60_000,
        include_open=settings.compaction_open_hours,
        on_planned=lambda plan: instruments.record_compaction_lag(source, plan.lag_ms),
    )
    instruments.record_compaction(
        source, hours=len(report.hours), rows=report.rows, files_in=report.files_in, files_out=report.files_out
    )
    if report.failed:
        raise CompactionError(
            f"{source}: {len(report.failed)} hours not compacted: " + "; ".join(report.failed.values())
        )
    return report


def landed_schema(source: str) -> pa.Schema | None:
    """The Arrow schema today's code lands for ``source`` (types Avro and JSON lines files)."""
    registered = SOURCES.get(source)
    return None if registered is None else formats.arrow_schema((*registered.columns, *LINEAGE_COLUMNS))


def compact_hour(
    source: str, lake: LakeStore, table: CuratedTable, task: HourTask, schema: pa.Schema | None = None
) -> HourResult:
    """Curated rows of the hour plus its new raw files, deduplicated, written as one commit."""
    curated_schema = table.schema()
    tables: list[pa.Table] = [table.read_hour(task.hour)]
    bytes_in = 0
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:  # reads wait on the store, not the CPU
        for raw, data in zip(task.new_files, pool.map(lake.read, [raw.path for raw in task.new_files]), strict=True):
            bytes_in += len(data)
            tables.append(read_raw(raw.format, data, path=raw.path, schema=schema))
    tables, type_changes = drift.fit_tables(curated_schema, tables)  # a changed type still compacts
    merged = merge_hour(task.hour, tables)
    hour_drift = drift.report(task.hour, merged, curated_schema, type_changes)
    covered = [*task.covered_files, *(raw.path for raw in task.new_files)]
    metadata = commit_metadata(source, task.hour, covered, offset_ranges(merged), merged.num_rows)
    files_out = table.replace_hour(task.hour, merged, metadata | hour_drift.metadata())
    _report_drift(source, hour_drift)
    log.info("%s: compacted %s: %d rows from %d new raw files", source, task.hour, merged.num_rows, len(task.new_files))
    return HourResult(task.hour, merged.num_rows, len(task.new_files), files_out, bytes_in, hour_drift)


def _report_drift(source: str, hour_drift: drift.HourDrift) -> None:
    """One log line and the drift metric for an hour whose rows drifted from the curated schema."""
    if not hour_drift.drifted:
        return
    log.warning("%s: schema drift in %s: %s", source, hour_drift.hour, hour_drift.summary())
    telemetry().record_drift(
        source,
        new_fields=len(hour_drift.new_fields),
        new_columns=len(hour_drift.new_columns),
        type_changes=len(hour_drift.type_changes),
    )
