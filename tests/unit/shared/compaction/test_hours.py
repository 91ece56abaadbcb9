"""The unit of compaction: an event hour, its bounds and predicate, and the raw paths that belong to it."""

from __future__ import annotations

from shared.compaction.hours import Hour, hour_of_raw_path, parse_raw_path
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


def test_a_dot_file_is_a_raw_file_and_any_path_in_an_hour_directory_has_that_hour() -> None:
    name = ".orders+0+i0+00000000000000000000+00000000000000000009.parquet"
    parsed = parse_raw_path("clickstream", raw(H10, name))
    assert parsed is not None and parsed.hour == H10
    assert hour_of_raw_path("clickstream", raw(H10, f"sub/{name}")) == H10
    for outside in (f"raw/clickstream/{name}", "raw/clickstream/date=2026-13-40/hour=99/a", "raw/other/date=x/a"):
        assert hour_of_raw_path("clickstream", outside) is None, outside
