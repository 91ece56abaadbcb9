"""Planning compaction (pure): which hours are closed and hold raw files the table does not cover."""

from __future__ import annotations

import dataclasses

from shared.compaction.hours import Hour
from shared.compaction.plan import AHEAD_LEAD_MS, plan_compaction
from tests.unit.shared.compaction.conftest import H10, MINUTE, raw

H11 = Hour("2026-11-24", "11")


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


def test_a_file_whose_name_the_lake_refuses_is_ignored_not_planned() -> None:
    """An operator's copy (``x (1).parquet``) matches the raw layout but no store would read it: planned, it
    failed its hour on every run (``UnsafePath``) and held back the hour's other files."""
    listing = [raw(H10, "a.parquet"), raw(H10, "x (1).parquet"), raw(H11, "copy of b.parquet")]
    plan = plan_compaction("clickstream", listing, {}, now_ms=H11.end_ms, grace_ms=0)
    assert [(t.hour, [f.path for f in t.new_files]) for t in plan.tasks] == [(H10, [raw(H10, "a.parquet")])]
    assert plan.ignored == (raw(H10, "x (1).parquet"), raw(H11, "copy of b.parquet"))


def test_a_task_carries_the_rows_its_hours_latest_commit_wrote() -> None:
    listing = [raw(H10, "z.parquet"), raw(H11, "c.parquet")]
    covered = {H10: frozenset({raw(H10, "a.parquet")})}
    plan = plan_compaction("clickstream", listing, covered, now_ms=H11.end_ms, grace_ms=0, committed_rows={H10: 7})
    assert [(task.hour, task.committed_rows) for task in plan.tasks] == [(H10, 7), (H11, None)]


def test_an_hours_commit_covers_its_raw_files_but_those_left_out() -> None:
    """A file the run left out (unusable, its landing still pending: ``job.compact_hour``) is never recorded as
    covered, even were it still among the task's new files: the next plan has it new again."""
    a, b, c = raw(H10, "a.parquet"), raw(H10, "b.parquet"), raw(H10, "c.parquet")
    (task,) = plan_compaction("clickstream", [a, b, c], {H10: frozenset({a})}, now_ms=H11.end_ms, grace_ms=0).tasks
    assert task.covered_files == (a,) and task.covers == [a, b, c]
    left = dataclasses.replace(task, left_out=(b,))
    assert left.covers == [a, c]
    (again,) = plan_compaction(
        "clickstream", [a, b, c], {H10: frozenset(left.covers)}, now_ms=H11.end_ms, grace_ms=0
    ).tasks
    assert [raw_file.path for raw_file in again.new_files] == [b]


BATCH = "clickstream+0+i0+00000000000000000000+00000000000000000009.parquet"


def test_a_file_named_as_a_landed_batch_that_is_not_planned_counts_in_the_lag() -> None:
    """A stray is reported; a file named as a landed batch where compaction does not read it (a directory further
    down, an extension it does not read, a name the lake refuses) holds rows that are nowhere else: it counts in
    the lag from its hour's end, and ``unplanned`` names it (the run then fails: ``job.run_compaction``)."""
    nested, copy = raw(H10, f"retry/{BATCH}"), raw(H10, BATCH.replace("clickstream", "click stream"))
    outside = f"raw/clickstream/{BATCH}"
    listing = [raw(H10, ".tmp-x.part"), nested, copy, raw(H11, BATCH + ".bak"), outside, raw(H11, "notes.txt")]
    plan = plan_compaction("clickstream", listing, {}, now_ms=H11.end_ms + 5 * MINUTE, grace_ms=15 * MINUTE)
    assert plan.tasks == () and plan.ignored == tuple(listing)
    assert plan.unplanned == (nested, copy, raw(H11, BATCH + ".bak"), outside)
    assert plan.lag_ms == H11.end_ms + 5 * MINUTE - H10.end_ms, "H10 is closed; H11 is not, and the last has no hour"


def test_a_dot_file_is_a_raw_file_like_any_other() -> None:
    """Files landed for a topic named ``.orders`` (settings refuse it now; an earlier deployment took it)."""
    dotted = raw(H10, "." + BATCH)
    plan = plan_compaction("clickstream", [dotted], {}, now_ms=H11.end_ms, grace_ms=0)
    assert [[f.path for f in t.new_files] for t in plan.tasks] == [[dotted]] and plan.ignored == ()


def test_an_hour_starting_more_than_the_lead_ahead_is_due_at_once_and_again_with_late_files() -> None:
    """A producer's clock 40 days ahead: waiting for the hour to close would outlast its raw files (the lifecycle
    rule deletes them after at most 29 days). The next hour, and one starting exactly the lead ahead, wait."""
    now = H10.start_ms + 20 * MINUTE
    ahead = Hour.of_ms(now + 40 * 24 * 60 * MINUTE)
    next_hour, at_the_lead = H11, Hour.of_ms(H11.start_ms + AHEAD_LEAD_MS)
    assert at_the_lead.start_ms == now - 20 * MINUTE + 2 * 60 * MINUTE and at_the_lead.start_ms > now + AHEAD_LEAD_MS
    listing = [raw(hour, "a.parquet") for hour in (H10, next_hour, ahead)]
    plan = plan_compaction("clickstream", listing, {}, now_ms=now, grace_ms=15 * MINUTE)
    assert [t.hour for t in plan.tasks] == [ahead] and (plan.ahead_hours, plan.waiting_hours, plan.lag_ms) == (1, 2, 0)

    edge = plan_compaction(
        "clickstream", [raw(at_the_lead, "a.parquet")], {}, now_ms=at_the_lead.start_ms - AHEAD_LEAD_MS, grace_ms=0
    )
    assert (edge.tasks, edge.waiting_hours) == ((), 1), "an hour starting exactly the lead ahead waits"

    covered = {ahead: frozenset({raw(ahead, "a.parquet")})}
    assert plan_compaction("clickstream", [raw(ahead, "a.parquet")], covered, now_ms=now, grace_ms=0).tasks == ()
    late = plan_compaction(
        "clickstream", [raw(ahead, "a.parquet"), raw(ahead, "b.parquet")], covered, now_ms=now, grace_ms=0
    )
    (task,) = late.tasks
    assert [f.path for f in task.new_files] == [raw(ahead, "b.parquet")] and late.ahead_hours == 1


def test_the_lag_counts_from_when_a_file_landed_when_that_is_after_its_hours_end() -> None:
    """A late event's file lands in an hour long closed: it has waited since it landed, not since the hour ended
    (the compaction-lag alert fired on one late event). A file that landed before its hour ended, or whose time
    the store does not give, waits since the hour's end, as before; one that stays uncovered waits longer each run.
    A file due ahead of its hour, or named as a landed batch in no hour, waits since it landed."""
    old = Hour.of_ms(H10.start_ms - 3 * 24 * 60 * MINUTE)
    late, on_time = raw(old, "late.parquet"), raw(H10, "a.parquet")
    landed_at = H11.end_ms
    now = landed_at + 5 * MINUTE

    def lag(listing: list[str], landed: dict[str, int | None], now_ms: int = now) -> int:
        return plan_compaction("clickstream", listing, {}, now_ms=now_ms, grace_ms=15 * MINUTE, landed_ms=landed).lag_ms

    assert lag([late], {late: landed_at}) == 5 * MINUTE
    assert lag([late], {late: landed_at}, now_ms=landed_at + 3 * 60 * MINUTE) == 3 * 60 * MINUTE, "still waiting"
    assert lag([late], {late: None}) == now - old.end_ms, "no time from the store: since the hour's end"
    assert lag([late], {}) == now - old.end_ms
    assert lag([late], {late: now + MINUTE}) == now - old.end_ms, "a time after now (clocks apart) is not trusted"
    assert lag([on_time], {on_time: H10.end_ms - MINUTE}) == now - H10.end_ms, "landed in its hour"
    assert lag([late, on_time], {late: landed_at, on_time: H10.end_ms - MINUTE}) == now - H10.end_ms, "the oldest"

    ahead = raw(Hour.of_ms(now + 40 * 24 * 60 * MINUTE), "a.parquet")
    assert lag([ahead], {ahead: now - 2 * 60 * MINUTE}) == 2 * 60 * MINUTE
    assert lag([ahead], {}) == 0, "no time: an hour ahead has no end to count from"
    outside = f"raw/clickstream/{BATCH}"
    assert lag([outside], {outside: now - 90 * MINUTE}) == 90 * MINUTE
