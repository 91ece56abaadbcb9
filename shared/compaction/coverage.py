"""What a compaction commit records, and the coverage read back from the table's history.

Each commit that replaces an hour carries, under ``streamingpoc.compaction`` in its commit
info, the hour, every raw file the hour's rows now come from, and per topic, partition and
incarnation the offset range and row count of the rows written, and the hour's row count. The
newest such commit per hour is that hour's coverage. Delta keeps commit files for ``delta.logRetentionDuration``
(set to ``LOG_RETENTION`` when the table is created); raw files are deleted well before
that (Terraform's ``raw_retention_days``), so every hour that still has raw files has its
commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shared.compaction.hours import Hour

METADATA_KEY = "streamingpoc.compaction"
REPROCESS_KEY = "streamingpoc.reprocess"  # beside it in a commit of tools.reprocess --promote
FORMAT_VERSION = 1
LOG_RETENTION = "interval 30 days"


@dataclass(frozen=True, slots=True)
class OffsetRange:
    topic: str
    partition: int
    incarnation: int
    first: int
    last: int
    rows: int


def commit_metadata(
    source: str, hour: Hour, raw_files: Sequence[str], offsets: Sequence[OffsetRange], rows: int
) -> dict[str, str]:
    """The custom commit metadata of one hour's replacement."""
    document = {
        "version": FORMAT_VERSION,
        "source": source,
        "date": hour.date,
        "hour": hour.hour,
        "rows": rows,
        "raw_files": sorted(raw_files),
        "offsets": [
            {
                "topic": r.topic,
                "partition": r.partition,
                "incarnation": r.incarnation,
                "first": r.first,
                "last": r.last,
                "rows": r.rows,
            }
            for r in offsets
        ],
    }
    return {METADATA_KEY: orjson.dumps(document).decode()}


@dataclass(frozen=True, slots=True)
class HourCoverage:
    """What an hour's newest compaction commit records: the raw files it covers and the rows it left the hour
    with (None when it does not say)."""

    raw_files: frozenset[str]
    rows: int | None


def parse_commit(commit: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compaction document of one history entry, or ``None`` for commits that are not compactions: of
    another writer, or of this format's version without the hour and raw files it names (a ``KeyError`` at
    every run before, the source's compaction stopped)."""
    raw = commit.get(METADATA_KEY)
    if not isinstance(raw, str):
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return None
    files = document.get("raw_files")
    if not isinstance(document.get("date"), str) or not isinstance(document.get("hour"), str):
        return None
    if not isinstance(files, list) or not all(isinstance(path, str) for path in files):
        return None
    return document


def coverage_from_history(history: Iterable[Mapping[str, Any]]) -> dict[Hour, frozenset[str]]:
    """Raw files covered per hour, from history entries ordered newest first (as ``DeltaTable.history``)."""
    return {hour: found.raw_files for hour, found in hour_coverage_from_history(history).items()}


def hour_coverage_from_history(history: Iterable[Mapping[str, Any]]) -> dict[Hour, HourCoverage]:
    """Each hour's newest compaction commit, from history entries ordered newest first."""
    coverage: dict[Hour, HourCoverage] = {}
    for commit in history:
        document = parse_commit(commit)
        if document is None:
            continue
        hour = Hour(str(document["date"]), str(document["hour"]))
        if hour not in coverage:
            raw_files = frozenset(str(path) for path in document["raw_files"])
            coverage[hour] = HourCoverage(raw_files, _count(document.get("rows")))
    return coverage


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
