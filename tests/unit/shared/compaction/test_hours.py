"""The unit of compaction: an event hour, its bounds and predicate, and the raw paths that belong to it."""

from __future__ import annotations

from shared.compaction.hours import Hour, parse_raw_path
from tests.unit.shared.compaction.conftest import H10, MINUTE, raw


def test_hour_bounds_and_predicate() -> None:
    assert H10.end_ms - H10.start_ms == 3_600_000
    assert Hour.of_ms(H10.start_ms + 59 * MINUTE) == H10
    assert H10.predicate == "date = '2026-11-24' AND hour = '10'"


def test_raw_paths_are_read_by_directory_and_extension_only() -> None:
    parsed = parse_raw_path("clickstream", raw(H10, "any-name-the-landing-likes.jsonl.gz"))
    assert parsed is not None and (parsed.hour, parsed.format) == (H10, "jsonl")
    for stray in (
        raw(H10, ".tmp-123.part"),
        raw(H10, "notes.txt"),
        "raw/clickstream/date=2026-13-40/hour=99/a.parquet",
        "raw/clickstreamx/date=2026-11-24/hour=10/a.parquet",
        "raw/clickstream/date=2026-11-24/hour=10/sub/a.parquet",
        raw(H10, "a.parquet\n"),  # the whole name, not up to a final newline
    ):
        assert parse_raw_path("clickstream", stray) is None, stray
