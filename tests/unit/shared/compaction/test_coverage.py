"""Coverage: the raw files each hour's newest compaction commit records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.compaction.coverage import (
    METADATA_KEY,
    HourCoverage,
    OffsetRange,
    commit_metadata,
    coverage_from_history,
    hour_coverage_from_history,
    parse_commit,
)
from shared.compaction.hours import Hour
from tests.unit.shared.compaction.conftest import H10, raw

H11 = Hour("2026-11-24", "11")


def test_coverage_is_the_newest_compaction_commit_per_hour() -> None:
    first = commit_metadata("clickstream", H10, [raw(H10, "a.parquet")], [OffsetRange("t", 0, 0, 0, 9, 10)], 10)
    second = commit_metadata("clickstream", H10, [raw(H10, "a.parquet"), raw(H10, "b.parquet")], [], 20)
    history = [second, {"operation": "OPTIMIZE"}, {"streamingpoc.compaction": "not json"}, first]  # newest first
    assert coverage_from_history(history) == {H10: frozenset({raw(H10, "a.parquet"), raw(H10, "b.parquet")})}


def test_the_rows_an_hours_newest_commit_wrote_are_read_back_and_unknown_when_it_does_not_say() -> None:
    newer = commit_metadata("clickstream", H10, [raw(H10, "a.parquet")], [], 20)
    older = orjson.loads(commit_metadata("clickstream", H11, [raw(H11, "b.parquet")], [], 5)[METADATA_KEY])
    del older["rows"]  # a commit of code that did not record it
    history = [newer, commit_metadata("clickstream", H10, [], [], 10), {METADATA_KEY: orjson.dumps(older).decode()}]
    assert hour_coverage_from_history(history) == {
        H10: HourCoverage(frozenset({raw(H10, "a.parquet")}), 20),
        H11: HourCoverage(frozenset({raw(H11, "b.parquet")}), None),
    }


@pytest.mark.parametrize(
    "change",
    [
        {"raw_files": None},
        {"raw_files": "a.parquet"},
        {"raw_files": [1, 2]},
        {"date": 20261124},
        {"hour": None},
    ],
    ids=["no raw files", "raw files text", "raw files numbers", "date a number", "no hour"],
)
def test_a_commit_of_this_version_without_its_hour_and_raw_files_is_not_a_compaction(change: dict[str, Any]) -> None:
    """Another writer's document (or a damaged one) was a KeyError or TypeError at every run: the source's
    compaction stopped before any hour. It is a commit of another kind: its hour is compacted again."""
    newer = orjson.loads(commit_metadata("clickstream", H10, [raw(H10, "b.parquet")], [], 5)[METADATA_KEY])
    newer.update(change)
    if change.get("raw_files", 0) is None or change.get("hour", 0) is None:
        newer = {name: value for name, value in newer.items() if value is not None}
    history = [
        {METADATA_KEY: orjson.dumps(newer).decode()},
        commit_metadata("clickstream", H10, [raw(H10, "a")], [], 1),
    ]
    assert parse_commit(history[0]) is None
    assert hour_coverage_from_history(history) == {H10: HourCoverage(frozenset({raw(H10, "a")}), 1)}
