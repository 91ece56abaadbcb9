"""The compaction lag (what the compaction-lag alert reads) on a healthy run that compacts a late event.

The lag was now minus the end of the oldest closed hour holding an uncovered raw file, so one event that is
legitimately late (days old, within lineage's 7-day window) made a run that compacts it at once report a lag of
days, and the alert fired. It now counts from when the file landed (``LakeStore.list_modified``) when that is after
its hour's end.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from shared.compaction.job import compact, open_curated
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, context_for, records_for

GRACE = 15 * 60_000
LAG_ALERT_MINUTES_DEFAULT = 120  # terraform/variables.tf: compaction_lag_alert_minutes


def _compact(root: Path, now_ms: int, source: str):  # type: ignore[no-untyped-def]
    table = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(root)}), source)
    return compact(source, LocalLake(root), table, now_ms=now_ms, grace_ms=GRACE)


def _curated_offsets(root: Path, source: str) -> list[int]:
    from deltalake import DeltaTable, QueryBuilder

    location = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(root)}), source).location
    table = DeltaTable(location.uri, storage_options=location.storage_options)
    rows = QueryBuilder().register("t", table).execute("SELECT _offset FROM t").read_all()
    return sorted(rows.column("_offset").to_pylist())


def test_one_late_event_does_not_make_a_healthy_compaction_report_a_lag_past_the_alert(tmp_path: Path) -> None:
    """A mobile event 3 days old (a device offline for 3 days; lineage trusts event times up to 7 days before
    the Kafka timestamp) lands in its own, long-closed hour. The run that compacts it at once reports the lag
    of that hour (now - its end: 3 days), so the compaction-lag alert (max lag in an hour >
    compaction_lag_alert_minutes) fires although compaction is healthy and up to date."""
    source = SOURCES["mobile"]
    handle_batch(context_for(source, LocalLake(tmp_path)), records_for(source, 5))
    _compact(tmp_path, FIXED_NOW_MS + 3_600_000, "mobile")  # healthy: the current hour compacted
    (late,) = records_for(source, 1, first_offset=5, seed=11)
    assert late.value is not None
    value = orjson.loads(late.value)
    value["timestamp"] = "2026-11-21T10:00:00Z"  # 3 days before its Kafka timestamp
    late = KafkaRecord(late.topic, late.partition, late.offset, late.key, orjson.dumps(value), FIXED_NOW_MS + 3_600_000)
    handle_batch(context_for(source, LocalLake(tmp_path), now_ms=FIXED_NOW_MS + 3_600_000), [late])
    landed = LocalLake(tmp_path).list_paths("raw/mobile")
    assert any("date=2026-11-21" in path for path in landed)
    for path in landed:  # each file's time as written when it landed, not this machine's clock
        when = (FIXED_NOW_MS + 3_600_000 if "date=2026-11-21" in path else FIXED_NOW_MS) / 1000
        os.utime(tmp_path / path, (when, when))

    report = _compact(tmp_path, FIXED_NOW_MS + 3_600_000 + 15 * 60_000, "mobile")  # the next tick
    assert report.failed == {} and _curated_offsets(tmp_path, "mobile") == list(range(6)), "compaction is healthy"
    assert report.plan.lag_ms <= LAG_ALERT_MINUTES_DEFAULT * 60_000, (
        f"a healthy run that compacted everything reports lag {report.plan.lag_ms / 60_000:.0f} min"
    )
