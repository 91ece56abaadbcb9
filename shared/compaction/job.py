"""One compaction run of one source: list, plan, and for each due hour read, merge and replace; then vacuum.

Called by ``compact_<source>`` (functions/compaction.py) on its schedule, by the local host, the
tests and the benchmark. A raw file the hour cannot use (unreadable, undecodable, a column that
clashes or that no Delta table can store) is quarantined (``quarantine``: moved under
``deadletter/<source>/quarantine/`` with its reason) and the rest of its hour compacts in the same
run; one its partition's landing still names as pending is left out instead (``LeftOut``: not moved,
not covered, tried again by the next run). An hour that still cannot be compacted (any other error of
its own) is logged and skipped so that the other hours go on, and vacuum after them. Either way the
run then raises, so the failure, the quarantine or the file left out shows as a failed invocation
(the compaction-failures alert; a failed hour, or an hour still due, in the compaction-lag alert too), never
silently; so does a file
named as a landed batch that compaction does not read (``CompactionPlan.unplanned``). Only a
transient error (the lake unavailable, a commit that lost its version to another writer's or whose
outcome is unknown) stops the run at once: the next tick retries; it never quarantines a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa
from opentelemetry import metrics

from shared import formats
from shared.compaction import drift
from shared.compaction.delta_table import CuratedTable
from shared.compaction.hours import Hour, parse_raw_path, raw_prefix
from shared.compaction.location import delta_location
from shared.compaction.plan import AHEAD_LEAD_MS, CompactionPlan, HourTask, plan_compaction
from shared.compaction.quarantine import LeftOut, Quarantined, StillLanding, UnusableRawFiles, quarantine
from shared.compaction.rewrite import SLICE_ROWS, HourResult, HourRewrite
from shared.compaction.rows import CompactionError
from shared.errors import TransientError
from shared.lake.base import LakeStore
from shared.lineage import LINEAGE_COLUMNS
from shared.settings import Settings
from shared.sources import SOURCES
from shared.telemetry import telemetry

log = logging.getLogger("streamingpoc.compaction")
MB = 1024 * 1024
METRICS_FLUSH_TIMEOUT_MS = 5_000  # the end of a run waits at most this long for its metrics to be exported


@dataclass
class CompactionReport:
    source: str
    plan: CompactionPlan
    hours: list[HourResult] = field(default_factory=list)
    failed: dict[Hour, str] = field(default_factory=dict)
    vacuumed: int = 0
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

    @property
    def quarantined(self) -> list[Quarantined]:
        return [moved for h in self.hours for moved in h.quarantined]

    @property
    def left_out(self) -> list[LeftOut]:
        return [waiting for h in self.hours for waiting in h.left_out]


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
    on_hour: Callable[[HourResult], None] | None = None,
    slice_rows: int = SLICE_ROWS,
) -> CompactionReport:
    """Compact every due hour of ``source``; hours that fail are in ``report.failed``, the others commit, each told
    to ``on_hour`` as it does (a run that raises later has committed them all the same)."""
    started = time.perf_counter()
    listing = lake.list_modified(raw_prefix(source))
    coverage = table.hour_coverage({raw.hour for path in listing if (raw := parse_raw_path(source, path))})
    read_version = table.version()  # the coverage's: a commit of an hour since makes its task stale
    plan = plan_compaction(
        source,
        listing,
        {hour: found.raw_files for hour, found in coverage.items()},
        now_ms=now_ms,
        grace_ms=grace_ms,
        include_open=include_open,
        committed_rows={hour: found.rows for hour, found in coverage.items()},
        landed_ms=listing,
    )
    if on_planned is not None:
        on_planned(plan)
    if plan.ignored:
        log.warning(
            "%s: %d paths under raw/ are not landed files or names the lake refuses, e.g. %s",
            source,
            len(plan.ignored),
            plan.ignored[0],
        )
    if plan.unplanned:
        log.error(
            "%s: %d files under raw/ are named as landed batches but are not where compaction reads them: %s",
            source,
            len(plan.unplanned),
            ", ".join(plan.unplanned),
        )
    if plan.ahead_hours:
        log.warning(
            "%s: %d hours that start more than %d min from now compacted ahead of time (a producer clock ahead)",
            source,
            plan.ahead_hours,
            AHEAD_LEAD_MS // 60_000,
        )
    report = CompactionReport(source, plan)
    schema = landed_schema(source)
    for task in plan.tasks:
        try:
            task = replace(task, read_version=read_version)
            report.hours.append(compact_hour(source, lake, table, task, schema, slice_rows=slice_rows))
            if on_hour is not None:
                on_hour(report.hours[-1])
        except TransientError:
            raise
        except CompactionError as error:
            log.error("%s: %s", source, error)
            report.failed[task.hour] = str(error)
        except Exception as error:  # the hour's own, unforeseen: it must not stop the hours after it
            log.exception("%s: hour %s failed", source, task.hour)
            report.failed[task.hour] = f"hour {task.hour}: {type(error).__name__}: {error}"
    report.vacuumed = table.vacuum()
    if report.vacuumed:
        log.info("%s: vacuumed %d data files past the table's file retention", source, report.vacuumed)
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def run_compaction(
    source: str, lake: LakeStore, settings: Settings, *, now_ms: int, environ: Mapping[str, str] | None = None
) -> CompactionReport:
    """What ``compact_<source>`` does on each tick: compact with the app's settings, report metrics, and
    raise ``CompactionError`` when an hour failed (after the others committed).

    However it ends, the run's metrics are flushed (``flush_metrics``): they are otherwise exported every
    60 s, and an instance that only ran this timer may be gone before then, its lag point with it."""
    try:
        return _run_compaction(source, lake, settings, now_ms=now_ms, environ=environ)
    finally:
        flush_metrics()


def flush_metrics(timeout_ms: int = METRICS_FLUSH_TIMEOUT_MS) -> None:
    """Export what the global meter provider holds now, waiting at most ``timeout_ms``; never raises (a
    provider without ``force_flush``, the API's no-op one, has nothing to export)."""
    force_flush = getattr(metrics.get_meter_provider(), "force_flush", None)
    if force_flush is None:
        return
    try:
        if not force_flush(timeout_millis=timeout_ms):
            log.warning("metrics not flushed within %d ms", timeout_ms)
    except Exception:  # the run's outcome stands; its metrics go out with the next periodic export, if any
        log.warning("flushing metrics failed", exc_info=True)


def _run_compaction(
    source: str, lake: LakeStore, settings: Settings, *, now_ms: int, environ: Mapping[str, str] | None
) -> CompactionReport:
    instruments = telemetry()
    committed: list[HourResult] = []
    try:
        report = compact(
            source,
            lake,
            open_curated(settings, source, environ),
            now_ms=now_ms,
            grace_ms=settings.compaction_grace_minutes * 60_000,
            include_open=settings.compaction_open_hours,
            on_planned=lambda plan: instruments.record_compaction_lag(source, plan.lag_ms),
            on_hour=committed.append,
        )
    finally:  # hours committed before a later failure (vacuum, an outage) count: the next run sees them covered
        instruments.record_compaction(
            source,
            hours=len(committed),
            rows=sum(hour.rows for hour in committed),
            files_in=sum(hour.files_in for hour in committed),
            files_out=sum(hour.files_out for hour in committed),
        )
    problems = (
        [f"{len(report.failed)} hours not compacted: " + "; ".join(report.failed.values())] if report.failed else []
    )
    if report.quarantined:
        moved = "; ".join(f"{q.raw_path} -> {q.path}: {q.why}" for q in report.quarantined)
        problems.append(f"{len(report.quarantined)} raw files quarantined, their rows not in curated: {moved}")
    if report.plan.unplanned:
        problems.append(
            f"{len(report.plan.unplanned)} files under raw/ are named as landed batches but compaction does not read"
            " them (not in a date=/hour= directory, an extension it does not read, or a name the lake refuses); their"
            " rows are not in curated and the lifecycle rule deletes them: move each into its hour's directory under"
            " a name compaction reads: " + ", ".join(report.plan.unplanned)
        )
    if report.left_out:
        waiting = "; ".join(f"{left.raw_path}: {left.why}" for left in report.left_out)
        problems.append(
            f"{len(report.left_out)} unusable raw files left for the next run (their partition's landing still"
            f" names them as pending; each is quarantined once that partition's next batch finishes it): {waiting}"
        )
    if problems:
        raise CompactionError(f"{source}: " + "; ".join(problems))
    return report


def landed_schema(source: str) -> pa.Schema | None:
    """The Arrow schema today's code lands for ``source`` (types Avro and JSON lines files)."""
    registered = SOURCES.get(source)
    return None if registered is None else formats.arrow_schema((*registered.columns, *LINEAGE_COLUMNS))


def compact_hour(
    source: str,
    lake: LakeStore,
    table: CuratedTable,
    task: HourTask,
    schema: pa.Schema | None = None,
    *,
    slice_rows: int = SLICE_ROWS,
) -> HourResult:
    """Curated rows of the hour plus its new raw files, deduplicated, sorted, written as one commit.

    The raw files the hour cannot use are quarantined and the hour is rewritten without them (a scan
    names every unusable file at once; one that fails later, as its slice is read, is one more pass).
    One that cannot be moved yet (``StillLanding``) is left out the same way, but stays where it is and
    uncovered (``HourTask.left_out``), so the next run tries it again. When no new file is left, nothing
    is committed: the hour's curated rows stand as they were."""
    quarantined: list[Quarantined] = []
    left_out: list[LeftOut] = []
    while True:
        try:
            result = HourRewrite(source, lake, table, task, schema, slice_rows).run()
            break
        except UnusableRawFiles as unusable:
            for path, why in sorted(unusable.reasons.items()):
                try:
                    quarantined.append(quarantine(lake, source, path, why))
                except StillLanding as waiting:
                    log.error("%s: %s: left for the next run: %s", source, task.hour, waiting)
                    left_out.append(LeftOut(path, why))
            task = replace(
                task,
                new_files=tuple(raw for raw in task.new_files if raw.path not in unusable.reasons),
                left_out=tuple(left.raw_path for left in left_out),
            )
            if not task.new_files:
                log.error("%s: %s: no new raw file is left to compact; nothing to commit", source, task.hour)
                return HourResult(task.hour, 0, 0, 0, 0, quarantined=tuple(quarantined), left_out=tuple(left_out))
    result = replace(result, quarantined=tuple(quarantined), left_out=tuple(left_out))
    if result.drift is not None:
        _report_drift(source, result.drift)
    if result.rows == 0:
        log.info("%s: %s: its %d new raw files hold no rows; recorded as covered", source, task.hour, result.files_in)
    else:
        log.info("%s: compacted %s: %d rows from %d new raw files", source, task.hour, result.rows, result.files_in)
    return result


def _report_drift(source: str, hour_drift: drift.HourDrift) -> None:
    """One log line and the drift metric for an hour whose rows drifted from the curated schema."""
    if not hour_drift.drifted:
        return
    log.warning("%s: schema drift in %s: %s", source, hour_drift.hour, hour_drift.summary())
    telemetry().record_drift(
        source,
        new_fields=len(hour_drift.new_fields) + hour_drift.more_fields,
        new_columns=len(hour_drift.new_columns),
        type_changes=len(hour_drift.type_changes),
    )
