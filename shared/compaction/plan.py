"""Which hours to compact, from a listing of ``raw/<source>`` and the raw files the table already covers.

Pure: the caller lists and reads; this decides. An hour is *due* when it holds a raw file the table's
latest commit for that hour did not cover (never compacted, or late files and replays since) and it
is closed (its end plus the grace period has passed, or open hours are allowed) or far ahead: its
start more than ``AHEAD_LEAD_MS`` past now (a producer's clock ahead, its rows filed under their
Kafka time). Such an hour would otherwise wait for days, and the lifecycle rule deletes raw files
``raw_retention_days`` after they landed, whether or not their hour has closed: it is compacted at
once and again as more files come, as a closed hour is. Raw files that vanished (the storage
lifecycle rule) do not make an hour due: their rows are already in the table, and compaction keeps
the table's rows.

A file whose name the lake refuses (an operator's ``x (1).parquet``: ``shared.layout.check_relative_path``)
could never be read, so it is ignored with the strays instead of stalling its hour. An ignored path
whose name is a landed batch's (``shared.layout.parse_batch_file_name``: ``<topic>+<partition>+...``) may
hold rows that are nowhere else: it is ``unplanned``, counts in the lag (by its hour directory, when it
is in one) and fails the run naming it (``job.run_compaction``), so no landed file is ever silently
ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.compaction.hours import Hour, RawFile, hour_of_raw_path, parse_raw_path
from shared.errors import UnsafePath
from shared.layout import HOUR_MS, check_relative_path, parse_batch_file_name

AHEAD_LEAD_MS = HOUR_MS
"""How far past now an hour may start and still wait to close. A producer clock a few minutes ahead files rows
under the next hour, which closes within two hours: it waits, as the current hour does. An hour that starts
further ahead is a clock far wrong, and waiting could outlast its raw files: it is due at once. One hour, as
``delta_table.CLOCK_SKEW_MS``: a commit of an hour made before its start minus that margin is one of these."""


@dataclass(frozen=True, slots=True)
class HourTask:
    """One hour to (re)compact: the raw files it will read and those the table already holds."""

    hour: Hour
    new_files: tuple[RawFile, ...]
    covered_files: tuple[str, ...]
    committed_rows: int | None = None
    """Rows the hour's latest compaction commit left it with; None when unknown (no commit, or one that
    does not say): then its curated rows are checked for identities held twice."""
    left_out: tuple[str, ...] = ()
    """New raw files the run leaves out of the hour (``job.compact_hour``: unusable, but their landing still
    names them): never recorded as covered, so the next run plans them again."""
    read_version: int | None = None
    """The table's version the plan read the hour's coverage at (``job.compact``): the hour's commit fails when
    another writer committed the hour since, as its plan no longer holds. None: the version the table holds."""

    @property
    def covers(self) -> list[str]:
        """The raw files the hour's commit records as covered (``coverage.commit_metadata``): those its rows
        already held and its new ones, never one left out."""
        held = [*self.covered_files, *(raw.path for raw in self.new_files)]
        return [path for path in held if path not in self.left_out]


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    tasks: tuple[HourTask, ...]
    lag_ms: int
    """How long the longest-waiting uncovered raw file (or ``unplanned`` one) of a due hour has waited: since the
    later of its hour's end and when it landed (a late event's file, landed in an hour long closed, has waited since
    it landed); a file due ahead of its hour, or in no hour, since it landed. 0 when there is none."""
    waiting_hours: int
    """Hours with uncovered files that are not closed yet and start at most ``AHEAD_LEAD_MS`` past now."""
    ignored: tuple[str, ...]
    """Paths under the prefix that are not landed files (temporary, stray, or named so the lake refuses them);
    reported, never read. Those among them named as landed batches are in ``unplanned`` too."""
    unplanned: tuple[str, ...] = ()
    """Ignored paths named as a landed batch (``parse_batch_file_name``): rows no run will compact. They count in
    the lag and fail the run, naming them, until an operator moves them where compaction reads them."""
    ahead_hours: int = 0
    """Hours due although not closed, because they start more than ``AHEAD_LEAD_MS`` past now."""


def plan_compaction(
    source: str,
    listing: Iterable[str],
    coverage: Mapping[Hour, frozenset[str]],
    *,
    now_ms: int,
    grace_ms: int,
    include_open: bool = False,
    committed_rows: Mapping[Hour, int | None] | None = None,
    landed_ms: Mapping[str, int | None] | None = None,
) -> CompactionPlan:
    """Decide the hours to compact, oldest first. Called once per ``compact_<source>`` run.

    ``committed_rows``: per hour, the rows its latest compaction commit wrote (``HourTask.committed_rows``).
    ``landed_ms``: when each listed file was written (``LakeStore.list_modified``), which the lag counts from when
    it is after its hour's end (:func:`_waiting_since`)."""
    landed = landed_ms or {}
    by_hour: dict[Hour, list[RawFile]] = defaultdict(list)
    ignored: list[str] = []
    unplanned: list[str] = []
    lag_ms = 0
    for path in listing:
        raw = planned_raw_file(source, path)
        if raw is not None:
            by_hour[raw.hour].append(raw)
            continue
        ignored.append(path)
        if parse_batch_file_name(path) is not None:
            unplanned.append(path)
            hour = hour_of_raw_path(source, path)
            if hour is None or now_ms >= hour.end_ms + grace_ms:
                since = _waiting_since(hour, [path], landed, now_ms)
                lag_ms = max(lag_ms, 0 if since is None else now_ms - since)

    tasks: list[HourTask] = []
    waiting = 0
    ahead = 0
    for hour in sorted(by_hour):
        files = sorted(by_hour[hour], key=lambda raw: raw.path)
        covered = coverage.get(hour, frozenset())
        new = tuple(raw for raw in files if raw.path not in covered)
        if not new:
            continue
        closed = now_ms >= hour.end_ms + grace_ms
        far_ahead = hour.start_ms > now_ms + AHEAD_LEAD_MS
        if closed or far_ahead:
            since = _waiting_since(None if far_ahead else hour, [raw.path for raw in new], landed, now_ms)
            lag_ms = max(lag_ms, 0 if since is None else now_ms - since)
        if closed or far_ahead or include_open:
            still_listed = tuple(raw.path for raw in files if raw.path in covered)
            tasks.append(HourTask(hour, new, still_listed, (committed_rows or {}).get(hour)))
            if far_ahead:
                ahead += 1
        else:
            waiting += 1
    return CompactionPlan(tuple(tasks), lag_ms, waiting, tuple(ignored), tuple(unplanned), ahead)


def _waiting_since(hour: Hour | None, paths: list[str], landed: Mapping[str, int | None], now_ms: int) -> int | None:
    """Since when the oldest of ``paths`` has waited for compaction: the later of its ``hour``'s end and when it
    landed (a late event's file lands in an hour long closed: it has waited since it landed, not since that hour
    ended). Without an hour (a file due ahead of its hour, or in no hour directory) only when it landed counts;
    None when nothing gives a time. A write time after ``now_ms`` (the store's clock and this one apart) is not
    trusted: the hour's end counts, which can only make the lag larger."""
    known = []
    for path in paths:
        when = landed.get(path)
        trusted = when if when is not None and when <= now_ms else None
        if hour is None:
            if trusted is not None:
                known.append(trusted)
        else:
            known.append(hour.end_ms if trusted is None else max(hour.end_ms, trusted))
    return min(known) if known else None


def planned_raw_file(source: str, path: str) -> RawFile | None:
    """The raw file at ``path`` when compaction plans it (a landed file, its name one the lake reads), else None."""
    raw = parse_raw_path(source, path)
    return raw if raw is not None and _readable_name(path) else None


def _readable_name(path: str) -> bool:
    """Whether the lake would read ``path``: it refuses names outside the layout's alphabet."""
    try:
        check_relative_path(path)
    except UnsafePath:
        return False
    return True
