"""tools.reprocess with rows whose event hour is not their Kafka hour: a dead letter is filed by its Kafka hour,
but a row lives in its event hour, so a dead letter whose record is in raw/ too (refused by an entity, or removed
by a promotion) is recomputed in its raw row's hour: restored there, never doubled in another."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from shared.compaction.delta_table import CuratedTable
from shared.compaction.hours import Hour
from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.redrive import read_dead_letters
from shared.settings import load_settings
from shared.sources import SOURCES
from shared.state.buckets import bucket_for
from shared.state.lookups import StateJoiner
from tests.conftest import FIXED_NOW_MS, context_for, records_for
from tests.lake.test_compaction import H10, Lake, curated_rows, run
from tests.unit.shared.conftest import RecordingGateway
from tests.unit.tools.no_settings import NO_SETTINGS
from tools.reprocess import promote, reprocess, shadow_location

MOBILE = SOURCES["mobile"]
H11 = Hour.of_ms(H10.end_ms)
KAFKA_TS = H11.start_ms + 5 * 60_000  # 11:05: the broker's time; the events happened at ~10:30 (H10)


def _identities(lake: Lake, hour: Hour) -> list[tuple[object, ...]]:
    return [
        (r["_topic"], r["_partition"], r.get("_incarnation") or 0, r["_offset"])
        for r in curated_rows(lake, "mobile", hour)
    ]


def test_an_entity_rejected_row_stays_once_in_curated_in_its_event_hour(tmp_path: Path) -> None:
    lake = Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
    records = [dataclasses.replace(r, timestamp_ms=KAFKA_TS) for r in records_for(MOBILE, 30)]
    refused = bucket_for(records[0].key or "", 8)
    context = context_for(MOBILE, lake.store, settings={"STATE_BUCKETS": "8", "LAKE_LOCAL_ROOT": str(tmp_path)})
    outcome = asyncio.run(handle_batch_with_state(context, records, RecordingGateway(refuse=refused), StateJoiner()))
    assert outcome.landed == 30
    letters = read_dead_letters(lake.store, "mobile")
    assert letters and {e.reason for e in letters} == {"entity_rejected"}
    assert any(f"hour={H11.hour}" in p for p in lake.store.list_paths("deadletter/mobile"))
    assert any(f"hour={H10.hour}" in p for p in lake.store.list_paths("raw/mobile")), "rows land by event hour"

    run(lake, "mobile")
    before = Counter(_identities(lake, H10) + _identities(lake, H11))
    assert len(before) == 30 and max(before.values()) == 1

    curated = lake.table("mobile")
    shadow = CuratedTable(shadow_location(curated.location, "mobile"), target_file_bytes=1 << 27)
    results = reprocess(
        MOBILE,
        lake=lake.store,
        curated=curated,
        shadow=shadow,
        window=(H10.start_ms, H11.end_ms),
        max_record_bytes=1 << 20,
        keyed=True,
    )
    # Same code as landed them: nothing should differ.
    diffs = {
        str(r.diff.hour): (r.diff.changed, r.diff.removed, getattr(r.diff, "restored", None), r.diff.now_valid)
        for r in results
    }
    for result in results:
        if result.diff.differs:
            promote(MOBILE, result, lake=lake.store, curated=curated, run_id="r", now_ms=FIXED_NOW_MS)
    after = Counter(_identities(lake, H10) + _identities(lake, H11))
    doubled = sorted(i for i, n in after.items() if n > 1)
    assert not doubled, f"diffs={diffs}; {len(doubled)} rows now in curated twice (H10 and H11): {doubled[:3]}"


def test_a_row_removed_by_a_promotion_comes_back_in_its_event_hour(tmp_path: Path) -> None:
    """A bad promotion removes rows from H10 (their event hour) as .reprocessed dead letters filed in H11 (their
    Kafka hour); the fixed code's reprocess restores them into H10, where compaction and queries by event hour
    look."""
    import orjson

    lake = Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
    records = [dataclasses.replace(r, timestamp_ms=KAFKA_TS) for r in records_for(MOBILE, 30)]
    context = context_for(MOBILE, lake.store, settings={"LAKE_LOCAL_ROOT": str(tmp_path)})
    from tests.unit.shared.conftest import ApplyingGateway

    assert asyncio.run(handle_batch_with_state(context, records, ApplyingGateway(), StateJoiner())).landed == 30
    run(lake, "mobile")
    assert len(_identities(lake, H10)) == 30

    def bad_transform(event):  # type: ignore[no-untyped-def]
        if sum(orjson.dumps(event, default=str)) % 3 == 0:
            raise ValueError("a bug")
        return MOBILE.transform(event)

    broken = dataclasses.replace(MOBILE, transform=bad_transform)
    curated = lake.table("mobile")
    shadow = CuratedTable(shadow_location(curated.location, "mobile"), target_file_bytes=1 << 27)
    window = (H10.start_ms, H11.end_ms)
    for result in reprocess(
        broken, lake=lake.store, curated=curated, shadow=shadow, window=window, max_record_bytes=1 << 20
    ):
        if result.diff.differs:
            promote(broken, result, lake=lake.store, curated=curated, run_id="bad", now_ms=FIXED_NOW_MS)
    removed = 30 - len(_identities(lake, H10))
    assert 0 < removed < 30
    for result in reprocess(
        MOBILE, lake=lake.store, curated=curated, shadow=shadow, window=window, max_record_bytes=1 << 20
    ):
        if result.diff.differs:
            promote(MOBILE, result, lake=lake.store, curated=curated, run_id="fix", now_ms=FIXED_NOW_MS)
    h10, h11 = _identities(lake, H10), _identities(lake, H11)
    assert (len(h10), len(h11)) == (30, 0), (
        f"restored into H11 (Kafka hour) instead of H10 (event hour): {len(h10)}, {len(h11)}"
    )


def test_an_hour_compaction_has_not_reached_is_not_changed_nor_published_in_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The open hour: its rows are in raw/ only, some of them entity_rejected dead letters too. Those are not
    rows a promotion removed: restoring them published them alone, and compaction then took the hour as done.
    Nor are they dead letters that pass now: tools.redrive never sends them (it re-applies their state)."""
    import tools.reprocess as command

    lake = Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))
    records = records_for(MOBILE, 30)
    refused = bucket_for(records[0].key or "", 8)
    context = context_for(MOBILE, lake.store, settings={"STATE_BUCKETS": "8", "LAKE_LOCAL_ROOT": str(tmp_path)})
    asyncio.run(handle_batch_with_state(context, records, RecordingGateway(refuse=refused), StateJoiner()))
    assert {e.reason for e in read_dead_letters(lake.store, "mobile")} == {"entity_rejected"}
    curated = lake.table("mobile")
    shadow = CuratedTable(shadow_location(curated.location, "mobile"), target_file_bytes=1 << 27)
    window = (H10.start_ms, H10.end_ms)
    results = reprocess(
        MOBILE, lake=lake.store, curated=curated, shadow=shadow, window=window, max_record_bytes=1 << 20, keyed=True
    )
    assert not any(r.diff.differs or r.diff.now_valid for r in results), [r.diff for r in results]

    monkeypatch.setenv("STATE_BUCKETS", "8")
    monkeypatch.setenv("MOBILE_STATE_ENABLED", "true")
    argv = ["mobile", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T11:00Z", "--lake", str(tmp_path)]
    assert command.main([*argv, "--settings", NO_SETTINGS, "--promote"]) == 0
    assert "promoted" not in capsys.readouterr().out
    run(lake, "mobile")
    assert len(_identities(lake, H10)) == 30
