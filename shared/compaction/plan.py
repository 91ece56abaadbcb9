"""Which hours to compact, from a listing of ``raw/<source>`` and the raw files the table already covers.

Pure: the caller lists and reads; this decides. An hour is *due* when it is closed (its end plus
the grace period has passed, or open hours are allowed) and it holds a raw file the table's
latest commit for that hour did not cover: never compacted, or late files and replays since.
Raw files that vanished (the storage lifecycle rule) do not make an hour due: their rows are
already in the table, and compaction keeps the table's rows. A file whose name the lake refuses
(an operator's ``x (1).parquet``: ``shared.layout.check_relative_path``) could never be read, so
it is ignored with the strays instead of stalling its hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.compaction.hours import Hour, RawFile, parse_raw_path
from shared.errors import UnsafePath
from shared.layout import check_relative_path


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
    """Time since the end of the oldest closed hour holding uncovered raw files; 0 when there is none."""
    waiting_hours: int
    """Hours with uncovered files that are not closed yet."""
    ignored: tuple[str, ...]
    """Paths under the prefix that are not landed files (temporary, stray, or named so the lake refuses them);
    reported, never read."""


def plan_compaction(
    source: str,
    listing: Iterable[str],
    coverage: Mapping[Hour, frozenset[str]],
    *,
    now_ms: int,
    grace_ms: int,
    include_open: bool = False,
    committed_rows: Mapping[Hour, int | None] | None = None,
) -> CompactionPlan:
    """Decide the hours to compact, oldest first. Called once per ``compact_<source>`` run.

    ``committed_rows``: per hour, the rows its latest compaction commit wrote (``HourTask.committed_rows``)."""
    by_hour: dict[Hour, list[RawFile]] = defaultdict(list)
    ignored: list[str] = []
    for path in listing:
        raw = parse_raw_path(source, path)
        if raw is None or not _readable_name(path):
            ignored.append(path)
        else:
            by_hour[raw.hour].append(raw)

    tasks: list[HourTask] = []
    lag_ms = 0
    waiting = 0
    for hour in sorted(by_hour):
        files = sorted(by_hour[hour], key=lambda raw: raw.path)
        covered = coverage.get(hour, frozenset())
        new = tuple(raw for raw in files if raw.path not in covered)
        if not new:
            continue
        closed = now_ms >= hour.end_ms + grace_ms
        if closed:
            lag_ms = max(lag_ms, now_ms - hour.end_ms)
        if closed or include_open:
            still_listed = tuple(raw.path for raw in files if raw.path in covered)
            tasks.append(HourTask(hour, new, still_listed, (committed_rows or {}).get(hour)))
        else:
            waiting += 1
    return CompactionPlan(tuple(tasks), lag_ms, waiting, tuple(ignored))


def _readable_name(path: str) -> bool:
    """Whether the lake would read ``path``: it refuses names outside the layout's alphabet."""
    try:
        check_relative_path(path)
    except UnsafePath:
        return False
    return True
