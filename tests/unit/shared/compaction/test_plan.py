"""Planning compaction (pure): which hours are closed and hold raw files the table does not cover."""

from __future__ import annotations

from shared.compaction.coverage import OffsetRange, commit_metadata, coverage_from_history
from shared.compaction.hours import Hour, parse_raw_path
from shared.compaction.plan import plan_compaction

H10 = Hour("2026-11-24", "10")
H11 = Hour("2026-11-24", "11")
MINUTE = 60_000


def raw(hour: Hour, name: str) -> str:
    return f"raw/clickstream/date={hour.date}/hour={hour.hour}/{name}"


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
    ):
        assert parse_raw_path("clickstream", stray) is None, stray


def test_only_closed_hours_with_uncovered_files_are_due() -> None:
    listing = [raw(H10, "a.parquet"), raw(H10, "b.parquet"), raw(H11, "c.parquet")]
    now = H11.start_ms + 20 * MINUTE  # H10 closed 20 min ago; grace 15 min
    plan = plan_compaction("clickstream", listing, {}, now_ms=now, grace_ms=15 * MINUTE)
    assert [t.hour for t in plan.tasks] == [H10]
    assert [f.path for f in plan.tasks[0].new_files] == listing[:2]
    assert plan.lag_ms == 20 * MINUTE and plan.waiting_hours == 1


def test_grace_holds_a_just_closed_hour_back() -> None:
    plan = plan_compaction(
        "clickstream", [raw(H10, "a.parquet")], {}, now_ms=H11.start_ms + MINUTE, grace_ms=15 * MINUTE
    )
    assert plan.tasks == () and plan.waiting_hours == 1 and plan.lag_ms == 0


def test_open_hours_are_compacted_when_allowed() -> None:
    plan = plan_compaction(
        "clickstream", [raw(H11, "c.parquet")], {}, now_ms=H11.start_ms + MINUTE, grace_ms=0, include_open=True
    )
    assert [t.hour for t in plan.tasks] == [H11] and plan.lag_ms == 0


def test_covered_hours_are_skipped_and_late_files_make_them_due_again() -> None:
    covered = {H10: frozenset({raw(H10, "a.parquet")})}
    now = H11.end_ms
    assert plan_compaction("clickstream", [raw(H10, "a.parquet")], covered, now_ms=now, grace_ms=0).tasks == ()
    late = plan_compaction(
        "clickstream", [raw(H10, "a.parquet"), raw(H10, "z.parquet")], covered, now_ms=now, grace_ms=0
    )
    (task,) = late.tasks
    assert [f.path for f in task.new_files] == [raw(H10, "z.parquet")]
    assert task.covered_files == (raw(H10, "a.parquet"),)


def test_raw_files_deleted_by_the_lifecycle_rule_do_not_make_an_hour_due() -> None:
    covered = {H10: frozenset({raw(H10, "a.parquet"), raw(H10, "b.parquet")})}
    plan = plan_compaction("clickstream", [raw(H10, "b.parquet")], covered, now_ms=H11.end_ms, grace_ms=0)
    assert plan.tasks == () and plan.lag_ms == 0


def test_stray_paths_are_reported_not_read() -> None:
    plan = plan_compaction("clickstream", [raw(H10, ".tmp-x.part")], {}, now_ms=H11.end_ms, grace_ms=0)
    assert plan.tasks == () and plan.ignored == (raw(H10, ".tmp-x.part"),)


def test_coverage_is_the_newest_compaction_commit_per_hour() -> None:
    first = commit_metadata("clickstream", H10, [raw(H10, "a.parquet")], [OffsetRange("t", 0, 0, 0, 9, 10)], 10)
    second = commit_metadata("clickstream", H10, [raw(H10, "a.parquet"), raw(H10, "b.parquet")], [], 20)
    history = [second, {"operation": "OPTIMIZE"}, {"streamingpoc.compaction": "not json"}, first]  # newest first
    assert coverage_from_history(history) == {H10: frozenset({raw(H10, "a.parquet"), raw(H10, "b.parquet")})}
