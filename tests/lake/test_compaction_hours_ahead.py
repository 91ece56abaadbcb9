"""An hour far ahead of now (a producer's clock ahead, its rows filed under their Kafka time) is compacted at once,
and again as more files come: waiting for it to close could outlast its raw files (``plan.AHEAD_LEAD_MS``).

Each test lands through the real processing path into a real local lake and runs the real compaction.
"""

from __future__ import annotations

from pathlib import Path

from shared.compaction.hours import parse_raw_path
from shared.compaction.job import compact, open_curated
from shared.compaction.plan import AHEAD_LEAD_MS
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, context_for, records_for

GRACE = 15 * 60_000
HOUR = 3_600_000
DAY = 24 * HOUR
RAW_RETENTION_DAYS_MAX = 29  # terraform/variables.tf: raw_retention_days is at most 29
LAG_ALERT_MINUTES_DEFAULT = 120  # terraform/variables.tf: compaction_lag_alert_minutes


def _compact(root: Path, now_ms: int, source: str = "orders"):  # type: ignore[no-untyped-def]
    lake = LocalLake(root)
    table = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(root)}), source)
    return compact(source, lake, table, now_ms=now_ms, grace_ms=GRACE)


def _curated_offsets(root: Path, source: str = "orders") -> list[int]:
    from deltalake import DeltaTable, QueryBuilder

    location = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(root)}), source).location
    try:
        table = DeltaTable(location.uri, storage_options=location.storage_options)
    except Exception:
        return []
    rows = QueryBuilder().register("t", table).execute("SELECT _offset FROM t").read_all()
    return sorted(rows.column("_offset").to_pylist())


def _land_ahead(root: Path, ahead_ms: int, offsets: range) -> list[str]:
    source = SOURCES["orders"]
    good = records_for(source, len(offsets), first_offset=offsets.start)
    records = [KafkaRecord(r.topic, r.partition, r.offset, r.key, r.value, FIXED_NOW_MS + ahead_ms) for r in good]
    handle_batch(context_for(source, LocalLake(root)), records)
    return LocalLake(root).list_paths("raw/orders")


def test_a_row_in_an_hour_further_ahead_than_raw_retention_is_compacted(tmp_path: Path) -> None:
    """A producer whose clock (the Kafka CreateTime) is 40 days ahead: lineage keeps the row's time (the event's
    own time is outside the trusted window around that Kafka timestamp, so the Kafka time counts: docs/reliability.md
    'A clock ahead'). Its raw hour is not closed for 40 days: every run left it waiting (``plan.waiting_hours``,
    reported nowhere) with a lag of 0, while the lifecycle rule deletes the raw file after at most 29 days."""
    landed = _land_ahead(tmp_path, 40 * DAY, range(5))
    assert landed and all("date=2027-01-03" in path for path in landed), landed

    # Every tick until the lifecycle rule deletes the file (raw_retention_days at most 29).
    last_tick = FIXED_NOW_MS + RAW_RETENTION_DAYS_MAX * DAY
    report = _compact(tmp_path, last_tick)
    compacted = _curated_offsets(tmp_path)
    alerted = report.plan.lag_ms > LAG_ALERT_MINUTES_DEFAULT * 60_000
    assert compacted == list(range(5)) or alerted, (
        f"day {RAW_RETENTION_DAYS_MAX}: curated {compacted}, lag_ms {report.plan.lag_ms}, "
        f"waiting_hours {report.plan.waiting_hours}: the raw file is deleted next, its rows never curated"
    )


def test_an_hour_ahead_is_compacted_by_the_first_run_and_again_when_a_file_comes(tmp_path: Path) -> None:
    _land_ahead(tmp_path, 40 * DAY, range(5))
    _land_ahead(tmp_path, 0, range(100, 103))  # the current hour
    first = _compact(tmp_path, FIXED_NOW_MS + 15 * 60_000)
    assert (first.plan.ahead_hours, first.plan.waiting_hours, first.rows) == (1, 1, 5), "the current hour waits"
    assert _curated_offsets(tmp_path) == list(range(5))
    assert _compact(tmp_path, FIXED_NOW_MS + 16 * 60_000).plan.ahead_hours == 0, "covered: nothing to redo"

    _land_ahead(tmp_path, 40 * DAY, range(5, 8))  # more of the same clock, a batch later
    again = _compact(tmp_path, FIXED_NOW_MS + 20 * 60_000)  # the current hour still open
    assert (again.plan.ahead_hours, [task.hour for task in again.plan.tasks]) == (1, [first.plan.tasks[0].hour])
    assert [raw.path for raw in again.plan.tasks[0].new_files] == [
        path for path in LocalLake(tmp_path).list_paths("raw/orders") if f"{5:020d}" in path
    ], "the hour's new file only: the others are covered"
    assert _curated_offsets(tmp_path) == list(range(8))


def test_an_hour_within_the_lead_waits_to_close(tmp_path: Path) -> None:
    """A clock a little ahead files rows under the next hour, which closes soon: it waits, as the current hour
    does, rather than being recompacted as it fills."""
    _land_ahead(tmp_path, AHEAD_LEAD_MS, range(5))  # the next hour
    report = _compact(tmp_path, FIXED_NOW_MS)
    assert (report.plan.tasks, report.plan.waiting_hours, report.plan.ahead_hours) == ((), 1, 0)


def test_the_commit_of_an_hour_compacted_ahead_is_found_whatever_hours_are_asked_about(tmp_path: Path) -> None:
    """Its commit is older than the hour's start, so a lookup that stopped at commits older than the start of the
    hours it still missed did not find it once newer commits filled its first page: ``tools.reprocess``, which asks
    about its window's hours only, then refused to promote the hour for good (its raw files "not read from"),
    while compaction, asking about every hour with raw files, found it. The hour's files, written when it was
    compacted, tell how far back its commit can be."""
    _land_ahead(tmp_path, 40 * DAY, range(5))
    first = _compact(tmp_path, FIXED_NOW_MS)
    (ahead,) = [task.hour for task in first.plan.tasks]
    for back in range(1, 5):  # then four other hours, one commit each
        _land_ahead(tmp_path, -back * HOUR, range(10 * back, 10 * back + 2))
    assert len(_compact(tmp_path, FIXED_NOW_MS + HOUR).plan.tasks) == 4

    table = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}), "orders")
    listing = LocalLake(tmp_path).list_paths("raw/orders")
    asked_alone = table.hour_coverage({ahead}, first_page=1)  # one page: the two newest commits, other hours'
    as_compaction_asks = table.hour_coverage({raw.hour for path in listing if (raw := parse_raw_path("orders", path))})
    assert ahead in asked_alone and asked_alone[ahead] == as_compaction_asks[ahead]
    assert asked_alone[ahead].raw_files == frozenset(
        path for path in listing if f"date={ahead.date}/hour={ahead.hour}/" in path
    )
