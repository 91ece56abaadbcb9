"""Coverage: the raw files each hour's newest compaction commit records."""

from __future__ import annotations

from shared.compaction.coverage import OffsetRange, commit_metadata, coverage_from_history
from tests.unit.shared.compaction.conftest import H10, raw


def test_coverage_is_the_newest_compaction_commit_per_hour() -> None:
    first = commit_metadata("clickstream", H10, [raw(H10, "a.parquet")], [OffsetRange("t", 0, 0, 0, 9, 10)], 10)
    second = commit_metadata("clickstream", H10, [raw(H10, "a.parquet"), raw(H10, "b.parquet")], [], 20)
    history = [second, {"operation": "OPTIMIZE"}, {"streamingpoc.compaction": "not json"}, first]  # newest first
    assert coverage_from_history(history) == {H10: frozenset({raw(H10, "a.parquet"), raw(H10, "b.parquet")})}
