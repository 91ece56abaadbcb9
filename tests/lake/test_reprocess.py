"""tools.reprocess: recompute curated hours from ``_received`` with changed code, show the diff
per hour (changed, removed, newly dead-lettered, dead letters now valid), and promote exactly the hours that
differ. Dead letters that pass now are left to tools.redrive, which lands them in raw/, state and curated alike."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from deltalake import DeltaTable

from shared import formats
from shared.batch import process_batch
from shared.compaction.coverage import METADATA_KEY
from shared.compaction.delta_table import CuratedTable
from shared.compaction.hours import Hour
from shared.compaction.job import compact
from shared.errors import LakeUnavailable
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS, land, plan_batch, plan_files
from shared.layout import batch_file_name
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.redrive import (
    ENTITY_REJECTED,
    STATE_RUN,
    DeadLetterEntry,
    RedriveTarget,
    read_dead_letters,
    redrive,
    redrive_log,
    take_lease,
    write_redrive_log,
)
from shared.reprocess import HourNotPromotable, NotReprocessable
from shared.settings import load_settings
from shared.source_model import Row, Source
from tests.conftest import FIXED_NOW_MS
from tests.lake.test_compaction import GRACE, H10, LATER, Lake, curated_rows, run
from tests.lake.test_drift import land_records, things
from tests.unit.shared.test_redrive import RecordingSender
from tests.unit.tools.no_settings import NO_SETTINGS
from tools.reprocess import EXIT_NOT_REPROCESSABLE, REPROCESS_KEY, promote, report, reprocess, shadow_location

H11 = Hour.of_ms(H10.end_ms)
WINDOW = (H10.start_ms, H11.end_ms)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalLake(tmp_path), load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}))


def _values(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "address": {"city": f"city-{i}"}} for i in ids]


def _land_two_hours(lake: Lake) -> Source:
    source = things()
    land_records(lake, source, _values(range(0, 6)), 0)  # H10 (FIXED_NOW_MS + i ms)
    shifted = [dict(v) for v in _values(range(6, 10))]
    batch_records = [
        {"value": value, "offset": 6 + index, "ts": H11.start_ms + index} for index, value in enumerate(shifted)
    ]
    from shared.batch import process_batch
    from shared.landing.files import land
    from shared.records import KafkaRecord

    records = [KafkaRecord("things", 0, r["offset"], None, orjson.dumps(r["value"]), r["ts"]) for r in batch_records]
    land(
        lake.store,
        plan_batch(
            process_batch(source, records, max_record_bytes=10_000), format_named("parquet"), now_ms=FIXED_NOW_MS
        ),
    )
    _dead_letter(lake, offset=20, value={"id": "twenty", "address": {"city": "x"}})  # fails today's model
    run(lake, "things")
    return source


def _dead_letter(lake: Lake, *, offset: int, value: dict[str, Any]) -> None:
    row = {
        "_topic": "things",
        "_partition": 0,
        "_offset": offset,
        "_key": None,
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "schema",
        "detail": "id: not an integer",
        "raw_base64": base64.b64encode(orjson.dumps(value)).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.store.write_atomic(
        f"deadletter/things/date={H10.date}/hour={H10.hour}/things+0+i0+{offset:020d}.jsonl.gz", data
    )


def _changed(source: Source) -> Source:
    """Today's code: cities upper-case for even ids, and odd ids above 2 refused."""

    def transform(event: Row) -> Row:
        row = source.transform(event)
        if row["id"] % 2 == 0:
            row["address_city"] = str(row["address_city"]).upper()
        return row

    class Model(source.model):  # type: ignore[name-defined,misc]
        @staticmethod
        def check_record(record: Row) -> Row:
            if record["id"] % 2 and record["id"] > 2:
                raise ValueError("odd ids above 2 are refused now")
            return record

    return dataclasses.replace(source, transform=transform, model=Model)


def _shadow(lake: Lake) -> CuratedTable:
    location = shadow_location(lake.table("things").location, "things")
    return CuratedTable(location, target_file_bytes=1 << 27)


def test_a_transform_change_shows_the_diff_then_promotes_exactly_the_changed_hours(lake: Lake) -> None:
    source = _land_two_hours(lake)
    curated = lake.table("things")
    history = len(lake.delta("things").history())
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    diffs = {str(r.diff.hour): r.diff for r in results}
    h10, h11 = diffs[str(H10)], diffs[str(H11)]
    assert (h10.rows, h10.changed, h10.now_valid, h10.removed, dict(h10.newly_dead)) == (6, 3, 0, 2, {"schema": 2})
    assert (h11.rows, h11.changed, h11.now_valid, h11.removed) == (4, 2, 0, 2)
    assert h10.columns == {"address_city": 3}
    assert len(lake.delta("things").history()) == history, "nothing in curated/ changes before --promote"
    text = report(source, results, WINDOW)
    assert f"{H10!s:<14}       6        3        2  2 schema                    0               0          0" in text, (
        text
    )

    promote(
        source,
        next(r for r in results if r.diff.hour == H10),
        lake=lake.store,
        curated=curated,
        run_id="t1",
        now_ms=FIXED_NOW_MS,
    )
    commits = lake.delta("things").history()
    assert len(commits) == history + 1 and json.loads(commits[0][REPROCESS_KEY])["changed"] == 3
    assert json.loads(commits[0][METADATA_KEY])["raw_files"], (
        "the hour's coverage is kept: compaction has nothing to redo"
    )
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert sorted(rows) == [0, 1, 2, 4] and rows[4]["address_city"] == "CITY-4" and rows[1]["address_city"] == "city-1"
    assert sorted(e.offset for e in read_dead_letters(lake.store, "things")) == [3, 5, 20], "removed rows: dead letters"
    assert run(lake, "things").hours == [], "a rerun of compaction finds nothing new in the promoted hour"


def test_a_model_fix_counts_a_dead_letter_as_now_valid_and_leaves_it_to_redrive(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Landing it in curated here would skip raw/ and keyed state, and marking it redriven before the hour's
    commit lost it when that commit failed: the one path that lands a dead letter is tools.redrive."""
    import tools.reprocess as command

    source = _land_two_hours(lake)
    lenient = dataclasses.replace(source, model=_lenient_model(source))
    (h10, *_) = reprocess(
        lenient,
        lake=lake.store,
        curated=lake.table("things"),
        shadow=_shadow(lake),
        window=WINDOW,
        max_record_bytes=10_000,
    )
    assert (h10.diff.now_valid, h10.diff.changed, h10.diff.removed, h10.diff.differs) == (1, 0, 0, False)
    assert 20 not in h10.table.column("_offset").to_pylist()
    assert "1 dead letter(s) pass now; not landed here: python -m tools.redrive things" in report(source, [h10], WINDOW)

    def failing_commit(*args: object, **kwargs: object) -> None:
        raise OSError("the hour's commit failed")

    monkeypatch.setattr(command, "replace_hour", failing_commit)
    with pytest.raises(OSError):  # a promotion whose commit fails leaves nothing marked redriven
        promote(lenient, h10, lake=lake.store, curated=lake.table("things"), run_id="t2", now_ms=FIXED_NOW_MS)
    assert redrive_log(lake.store, "things") == (set(), set()), "nothing counts as redriven: redrive sends it"
    sender = RecordingSender()
    summary = redrive(lenient, lake=lake.store, target=RedriveTarget("things", 10_000), sender=sender)
    assert (summary.sent, [m.entry.offset for m in sender.sent]) == (1, [20])


def _lenient_model(source: Source) -> Any:
    from typing import Annotated

    from pydantic import BeforeValidator, create_model

    fields = {name: (info.annotation, info) for name, info in source.model.model_fields.items()}
    fields["id"] = (Annotated[int, BeforeValidator(lambda v: 20 if v == "twenty" else v)], ...)
    return create_model("LenientThing", **fields)  # type: ignore[call-overload]


def test_the_command_promotes_only_the_hours_that_differ(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m tools.reprocess things --from --to --promote`` after a change that touches H11 only."""
    import tools.reprocess as command

    source = _land_two_hours(lake)

    def transform(event: Row) -> Row:
        row = source.transform(event)
        if row["id"] >= 6:  # the records of H11
            row["address_city"] = "moved"
        return row

    monkeypatch.setitem(command.SOURCES, "things", dataclasses.replace(source, transform=transform))
    commits = len(lake.delta("things").history())
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(lake.store.root)]
    assert command.main(["things", *window, "--settings", NO_SETTINGS]) == 0
    assert len(lake.delta("things").history()) == commits, "the diff alone changes nothing"
    assert command.main(["things", *window, "--settings", NO_SETTINGS, "--promote"]) == 0
    printed = capsys.readouterr().out
    assert "hours that differ: 1 of 2" in printed and f"promoted {H11}" in printed and f"promoted {H10}" not in printed
    history = lake.delta("things").history()
    assert len(history) == commits + 1 and json.loads(history[0][METADATA_KEY])["hour"] == H11.hour
    assert {row["address_city"] for row in curated_rows(lake, "things", H11)} == {"moved"}


def test_promoting_waits_for_a_redrive_of_the_source_and_holds_the_lease_while_it_runs(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One operator run of a source at a time: two promotions would write the leaving rows' dead letters twice."""
    import tools.reprocess as command

    source = _land_two_hours(lake)
    monkeypatch.setitem(command.SOURCES, "things", source)
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(lake.store.root)]
    held = take_lease(lake.store, "things", "a-redrive")
    commits = len(lake.delta("things").history())
    assert command.main(["things", *window, "--settings", NO_SETTINGS, "--promote"]) == 3
    assert "another redrive of things is running" in capsys.readouterr().err
    assert len(lake.delta("things").history()) == commits
    held.release()
    assert command.main(["things", *window, "--settings", NO_SETTINGS, "--promote"]) == 0
    take_lease(lake.store, "things", "the-next-redrive")  # released when the promotion ended


def test_rows_of_a_later_incarnation_leave_as_dead_letters_of_that_incarnation(lake: Lake) -> None:
    """A redrive identifies a dead letter by its incarnation: a reprocessed row keeps the life it landed in."""
    source = things()
    _land_life(lake, source, range(0, 6), incarnation=1)  # the topic was recreated once: its second life
    run(lake, "things")
    curated = lake.table("things")
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    (h10,) = [r for r in results if r.diff.hour == H10]
    assert h10.letter_incarnations == [1, 1]  # ids 3 and 5 are refused now
    promote(source, h10, lake=lake.store, curated=curated, run_id="t3", now_ms=FIXED_NOW_MS)
    letters = read_dead_letters(lake.store, "things")
    assert sorted((e.offset, e.incarnation) for e in letters) == [(3, 1), (5, 1)]
    assert all("+i1+" in path for path in lake.store.list_paths("deadletter/things"))


def test_an_hour_holding_two_lives_of_a_partition_is_recomputed_and_promoted_whole(lake: Lake) -> None:
    """The topic's offsets restarted within H10: offsets 0..5 hold a row of life 0 and a row of life 1 each."""
    source = things()
    _land_life(lake, source, range(0, 6), incarnation=0)
    _land_life(lake, source, range(10, 16), incarnation=1)
    run(lake, "things")
    curated = lake.table("things")
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    (h10,) = [r for r in results if r.diff.hour == H10]
    diff = h10.diff
    assert (diff.rows, diff.changed, diff.now_valid, diff.removed, dict(diff.newly_dead)) == (
        12,
        6,
        0,
        5,
        {"schema": 5},
    )
    promote(source, h10, lake=lake.store, curated=curated, run_id="t4", now_ms=FIXED_NOW_MS)
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert sorted(rows) == [0, 1, 2, 4, 10, 12, 14], "each life's rows, less the odd ids refused now"
    assert (rows[4]["_incarnation"], rows[10]["_incarnation"], rows[10]["address_city"]) == (0, 1, "CITY-10")
    letters = read_dead_letters(lake.store, "things")
    assert sorted((e.incarnation, e.offset) for e in letters) == [(0, 3), (0, 5), (1, 1), (1, 3), (1, 5)]


def _land_life(lake: Lake, source: Source, ids: range, *, incarnation: int) -> None:
    """Records of ``ids`` at offsets from 0 in H10, landed as the partition's life ``incarnation``."""
    records = [
        KafkaRecord("things", 0, offset, None, orjson.dumps(value), FIXED_NOW_MS + offset)
        for offset, value in enumerate(_values(ids))
    ]
    (part,) = process_batch(source, records, max_record_bytes=10_000)
    part.set_incarnation(incarnation)
    plan = plan_files(part, format_named("parquet"), now_ms=FIXED_NOW_MS, incarnation=incarnation)
    land(lake.store, plan.files)


def test_a_compaction_committed_between_reprocessing_and_promoting_is_not_undone(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promotion writes the rows read when reprocessing started; a late raw file compacted in between is
    not in them, and the promotion's commit replaces the hour whole: the late rows would leave curated until
    the next compaction merged them back. The promotion refuses an hour holding a raw file its rows were not read
    from (``check_promotable``), and, should it not see the file, looks for commits of the hour since the version
    the hour was read at (not since its own refresh of the table): it fails either way; a rerun promotes the hour
    with the late rows in it. An hour no commit touched since it was read is promoted as before."""
    import tools.reprocess as command

    source = _land_two_hours(lake)
    curated = lake.table("things")
    results = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    land_records(lake, source, _values(range(30, 32)), 30)  # a late file for H10, compacted meanwhile
    assert [h.hour for h in run(lake, "things").hours] == [H10]
    h10, h11 = (next(r for r in results if r.diff.hour == hour) for hour in (H10, H11))
    with pytest.raises(HourNotPromotable, match=f"{H10} holds raw files its rows were not read from"):
        promote(source, h10, lake=lake.store, curated=curated, run_id="t", now_ms=0)
    assert _reprocessed_files(lake) == [], "refused before anything is written"
    with monkeypatch.context() as patched:  # the commit's own check, alone
        patched.setattr(command, "check_promotable", lambda *args, **kwargs: None)
        with pytest.raises(LakeUnavailable, match="another writer committed the hour after it was read"):
            promote(source, h10, lake=lake.store, curated=curated, run_id="t", now_ms=0)
    assert {30, 31} <= {row["_offset"] for row in curated_rows(lake, "things", H10)}, "the compaction stands"
    promote(source, h11, lake=lake.store, curated=curated, run_id="t", now_ms=0)  # H10's commit is not H11's

    again = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    promote(
        source, next(r for r in again if r.diff.hour == H10), lake=lake.store, curated=curated, run_id="u", now_ms=0
    )
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4, 30]
    assert run(lake, "things").plan.tasks == ()


@pytest.mark.parametrize("resignalled_before", [False, True])
def test_a_row_an_earlier_promotion_removed_comes_back_when_it_passes_again(
    lake: Lake, resignalled_before: bool
) -> None:
    """Its record is still in raw/ (landed and counted in state once), so redrive would skip it as landed:
    the next promotion puts it back into its hour, once. Also when ``tools.redrive`` once re-signalled its
    refused state update (review 15: that run's log left it out of curated/ for good)."""
    source = _land_two_hours(lake)
    if resignalled_before:
        refused = DeadLetterEntry("things", 0, 0, 3, None, FIXED_NOW_MS, ENTITY_REJECTED, None, FIXED_NOW_MS)
        for kind in ("intent", "sent"):
            write_redrive_log(lake.store, "things", f"20261124T100000Z-abcd{STATE_RUN}", kind, [refused])
    curated = lake.table("things")
    bad = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    h10 = next(r for r in bad if r.diff.hour == H10)
    promote(_changed(source), h10, lake=lake.store, curated=curated, run_id="bad", now_ms=FIXED_NOW_MS)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4]
    fixed = reprocess(
        source, lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    h10 = next(r for r in fixed if r.diff.hour == H10)
    assert (h10.diff.restored, h10.diff.now_valid, h10.diff.differs) == (2, 0, True)
    promote(source, h10, lake=lake.store, curated=curated, run_id="fix", now_ms=FIXED_NOW_MS)
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 3, 4, 5]
    again = reprocess(
        source, lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    assert not any(r.diff.differs for r in again), "restored once: nothing differs after"


def _main(lake: Lake, monkeypatch: pytest.MonkeyPatch, source: Source, *extra: str) -> int:
    """``python -m tools.reprocess things --from 10:00 --to 12:00 --promote`` over the lake, with ``source``."""
    import tools.reprocess as command

    monkeypatch.setitem(command.SOURCES, "things", source)
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(lake.store.root)]
    return command.main(["things", *window, "--settings", NO_SETTINGS, "--promote", *extra])


def _reprocessed_files(lake: Lake) -> list[str]:
    return [path for path in lake.store.list_paths("deadletter/things") if ".reprocessed-" in path]


class _HookedLake:
    """The same lake; the first read of a path containing ``trigger`` runs ``hook`` first."""

    def __init__(self, inner: LocalLake, trigger: str, hook: Any) -> None:
        self.inner, self.trigger, self.hook, self.fired = inner, trigger, hook, False

    def read(self, path: str) -> bytes:
        if self.trigger in path and not self.fired:
            self.fired = True
            self.hook()
        return self.inner.read(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _HiddenFile:
    """The same lake, listed as it was before ``path`` landed."""

    def __init__(self, inner: LocalLake, path: str) -> None:
        self.inner, self.path = inner, path

    def list_paths(self, prefix: str) -> list[str]:
        return [path for path in self.inner.list_paths(prefix) if path != self.path]

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        return {path: when for path, when in self.inner.list_modified(prefix).items() if path != self.path}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_compaction_running_during_a_promotion_does_not_undo_it(lake: Lake) -> None:
    """Compaction read H10's curated rows, then the promotion committed H10 while compaction read a late raw
    file: compaction's commit would replace the promoted hour with the rows it read before. It fails instead,
    and the next run merges the late file into the promoted hour."""
    source = _land_two_hours(lake)
    results = reprocess(
        _changed(source), lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake), window=WINDOW,
        max_record_bytes=10_000,
    )  # fmt: skip
    h10 = next(r for r in results if r.diff.hour == H10)
    land_records(lake, source, _values(range(30, 32)), 30)  # a late raw file for H10 (the live processor)
    late = next(p for p in lake.store.list_paths("raw/things") if f"{30:020d}" in p)

    def operator_promotes() -> None:  # its check listed H10 before the late file landed (the seconds before a commit)
        before = _HiddenFile(lake.store, late)
        promote(source, h10, lake=before, curated=lake.table("things"), run_id="op", now_ms=0)  # type: ignore[arg-type]

    hooked = _HookedLake(lake.store, late.rsplit("/", 1)[1], operator_promotes)
    with pytest.raises(LakeUnavailable, match="another writer committed the hour after it was read"):
        compact("things", hooked, lake.table("things"), now_ms=LATER, grace_ms=GRACE)  # type: ignore[arg-type]
    assert hooked.fired
    run(lake, "things")  # the next tick
    rows = {row["id"]: row for row in curated_rows(lake, "things", H10)}
    assert sorted(rows) == [0, 1, 2, 4, 30, 31], "the promotion's rows, and the late file's"
    assert rows[4]["address_city"] == "CITY-4", "the promoted value stays"


def test_a_compaction_planned_before_another_writer_committed_a_later_hour_does_not_undo_it(lake: Lake) -> None:
    """A run plans H10 (a late file) and H11 (its first file) from the table's coverage. While it reads H10,
    another run of the timer (which listed before the late file landed) compacts H11 and the operator promotes
    H11, which removes ids 7 and 9. The run's H10 commit is fine; it then read H11 at the table's new version,
    the promoted rows, but its H11 task, planned before both, still held H11's raw file as new: merged again,
    it brought 7 and 9 back, and the check for other writers started from the version read. The H11 commit
    fails instead, as any commit of an hour another writer committed since the run read the table's coverage;
    the next run replans from the promoted hour."""
    source = things()
    land_records(lake, source, _values(range(0, 6)), 0)  # H10
    run(lake, "things")
    land_records(lake, source, _values(range(10, 12)), 10)  # a late file of H10
    records = [
        KafkaRecord("things", 0, 6 + index, None, orjson.dumps(value), H11.start_ms + index)
        for index, value in enumerate(_values(range(6, 10)))
    ]
    batch = process_batch(source, records, max_record_bytes=10_000)
    land(lake.store, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))
    late = next(path for path in lake.store.list_paths("raw/things") if f"{10:020d}" in path)

    def another_run_then_the_operator() -> None:
        before = _HiddenFile(lake.store, late)
        compact("things", before, lake.table("things"), now_ms=LATER, grace_ms=GRACE)  # type: ignore[arg-type]
        results = reprocess(
            _changed(source), lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake),
            window=(H11.start_ms, H11.end_ms), max_record_bytes=10_000,
        )  # fmt: skip
        h11 = next(result for result in results if result.diff.hour == H11)
        promote(source, h11, lake=lake.store, curated=lake.table("things"), run_id="op", now_ms=LATER)
        assert sorted(row["id"] for row in curated_rows(lake, "things", H11)) == [6, 8]

    hooked = _HookedLake(lake.store, late.rsplit("/", 1)[1], another_run_then_the_operator)
    with pytest.raises(LakeUnavailable, match="another writer committed the hour after it was read"):
        compact("things", hooked, lake.table("things"), now_ms=LATER, grace_ms=GRACE)  # type: ignore[arg-type]
    assert hooked.fired
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 3, 4, 5, 10, 11]
    run(lake, "things")  # the next tick
    assert sorted(row["id"] for row in curated_rows(lake, "things", H11)) == [6, 8], "the promotion stands"


def _refuses_h10_changes_h11(source: Source) -> Source:
    """Today's code: every row of H10 (ids below 6) is refused, H11's cities move."""

    def transform(event: Row) -> Row:
        row = source.transform(event)
        if row["id"] >= 6:
            row["address_city"] = "moved"
        return row

    class Model(source.model):  # type: ignore[name-defined,misc]
        @staticmethod
        def check_record(record: Row) -> Row:
            if record["id"] < 6:
                raise ValueError("ids below 6 are refused now")
            return record

    return dataclasses.replace(source, transform=transform, model=Model)


def test_an_hour_whose_every_row_leaves_is_emptied_and_the_later_hours_promoted(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _land_two_hours(lake)
    changed = _refuses_h10_changes_h11(source)
    shadow = _shadow(lake)
    reprocess(
        source, lake=lake.store, curated=lake.table("things"), shadow=shadow, window=WINDOW, max_record_bytes=10_000
    )
    assert shadow.read_hour(H10).num_rows == 6, "an earlier diff left a copy of H10 in shadow/"

    assert _main(lake, monkeypatch, changed) == 0
    printed = capsys.readouterr().out
    assert f"promoted {H10}" in printed and f"promoted {H11}" in printed
    assert curated_rows(lake, "things", H10) == [] and _shadow(lake).read_hour(H10).num_rows == 0
    assert {row["address_city"] for row in curated_rows(lake, "things", H11)} == {"moved"}
    assert sorted(e.offset for e in read_dead_letters(lake.store, "things")) == [0, 1, 2, 3, 4, 5, 20]
    assert run(lake, "things").plan.tasks == (), "the emptied hour keeps its coverage: compaction does not refill it"
    files = _reprocessed_files(lake)

    assert _main(lake, monkeypatch, changed) == 0
    assert "hours that differ: 0 of 2" in capsys.readouterr().out
    assert _reprocessed_files(lake) == files, "a rerun writes no dead letters again"


def test_a_promotion_rerun_after_its_commit_failed_writes_the_same_dead_letter_files(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leaving rows' dead letters are written before the hour's commit: a rerun replaces them, never adds."""
    import tools.reprocess as command

    source = _land_two_hours(lake)
    results = reprocess(
        _changed(source), lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake), window=WINDOW,
        max_record_bytes=10_000,
    )  # fmt: skip
    h10 = next(r for r in results if r.diff.hour == H10)

    def failing_commit(*args: object, **kwargs: object) -> None:
        raise LakeUnavailable("the hour's commit failed")

    with monkeypatch.context() as patched:
        patched.setattr(command, "replace_hour", failing_commit)
        with pytest.raises(LakeUnavailable):
            promote(source, h10, lake=lake.store, curated=lake.table("things"), run_id="first", now_ms=0)
    written = _reprocessed_files(lake)
    assert written
    promote(source, h10, lake=lake.store, curated=lake.table("things"), run_id="second", now_ms=1)
    assert _reprocessed_files(lake) == written
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4]


def test_a_compaction_committing_during_the_promotions_commit_is_named_and_the_command_fails(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timer tick commits H10 between the promotion's table refresh and its commit: the hour is not promoted,
    the command says so and exits 1; the other hour is promoted; a rerun promotes H10."""
    source = _land_two_hours(lake)
    create = DeltaTable.create_write_transaction
    ticks: list[Any] = []

    def compaction_first(self: DeltaTable, *args: Any, **kwargs: Any) -> Any:
        if not ticks and "curated" in self.table_uri:
            ticks.append("running")  # the tick's own commit goes straight through
            land_records(lake, source, _values(range(30, 32)), 30)  # a late raw file, after the promotion's check
            ticks[0] = run(lake, "things")
        return create(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(DeltaTable, "create_write_transaction", compaction_first)
        assert _main(lake, monkeypatch, _changed(source)) == 1
    assert [h.hour for h in ticks[0].hours] == [H10]
    captured = capsys.readouterr()
    assert f"{H10}: not promoted (" in captured.err and "run the command again for this hour" in captured.err
    assert f"promoted {H11}" in captured.out and f"promoted {H10}" not in captured.out
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 3, 4, 5, 30, 31]

    assert _main(lake, monkeypatch, _changed(source)) == 0
    assert sorted(row["id"] for row in curated_rows(lake, "things", H10)) == [0, 1, 2, 4, 30]


def test_reprocessing_an_hour_reads_no_raw_file_of_another_hour(lake: Lake) -> None:
    """A dead letter of every earlier hour (its batch's other records landed in raw/ there): none of them can
    be restored into the window, so none of those hours' raw files is read."""
    source = things()
    for index in range(1, 6):  # hours before H10, one batch each with one record that is not JSON
        moment = H10.start_ms - index * 3_600_000
        values = [orjson.dumps({"id": index * 10 + i, "address": {"city": "c"}}) for i in range(3)]
        batch = [KafkaRecord("things", 0, index * 10 + i, None, v, moment) for i, v in enumerate([*values, b"{"])]
        land(
            lake.store,
            plan_batch(process_batch(source, batch, max_record_bytes=10_000), format_named("parquet"), now_ms=moment),
        )
    _land_two_hours(lake)
    read: list[str] = []
    counting = _HookedLake(lake.store, "", lambda: None)
    counting.read = lambda path: read.append(path) or lake.store.read(path)  # type: ignore[method-assign]
    results = reprocess(
        _changed(source), lake=counting, curated=lake.table("things"), shadow=_shadow(lake),  # type: ignore[arg-type]
        window=(H10.start_ms, H10.end_ms), max_record_bytes=10_000,
    )  # fmt: skip
    assert [str(r.diff.hour) for r in results] == [str(H10)]
    assert len(read_dead_letters(lake.store, "things")) == 6
    assert [path for path in read if path.startswith("raw/")] == []


def test_the_window_reads_the_tables_coverage_once(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per hour it paged back through the log, for an hour with no data to the log's start."""
    source = _land_two_hours(lake)
    calls: list[int] = []
    coverage = CuratedTable.coverage

    def counting(self: CuratedTable, hours: Any, **kwargs: Any) -> Any:
        calls.append(len(hours))
        return coverage(self, hours, **kwargs)

    monkeypatch.setattr(CuratedTable, "coverage", counting)
    window = (H10.start_ms - 24 * 3_600_000, H11.end_ms)
    results = reprocess(
        _changed(source), lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake), window=window,
        max_record_bytes=10_000,
    )  # fmt: skip
    assert [r.diff.hour for r in results] == [H10, H11] and all(r.covered for r in results)
    assert calls == [26]


def test_an_avro_source_is_refused_and_nothing_of_its_lake_changes(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its rows landed resolved from the producer's schema, which the row does not name: recomputed as JSON they
    would leave curated as dead letters or change. The library refuses (no caller gets past it), the command too."""
    landed = _land_two_hours(lake)
    changed = reprocess(
        _changed(landed), lake=lake.store, curated=lake.table("things"), shadow=_shadow(lake), window=WINDOW,
        max_record_bytes=10_000,
    )  # fmt: skip
    h10 = next(r for r in changed if r.diff.hour == H10)
    assert h10.diff.removed, "a result that would remove rows, were it promoted"
    avro = dataclasses.replace(landed, value_format="avro")
    files = sorted(path for path in Path(lake.store.root).rglob("*"))
    history = len(lake.delta("things").history())

    untouched: Any = _Untouched()
    with pytest.raises(NotReprocessable, match="writer schema id"):  # before it reads the lake or a table
        reprocess(avro, lake=untouched, curated=untouched, shadow=untouched, window=WINDOW, max_record_bytes=10_000)
    with pytest.raises(NotReprocessable, match=r"python -m tools\.redrive things"):
        promote(avro, h10, lake=lake.store, curated=lake.table("things"), run_id="t", now_ms=FIXED_NOW_MS)
    assert _main(lake, monkeypatch, avro) == EXIT_NOT_REPROCESSABLE
    assert capsys.readouterr().err.startswith("not reprocessed: things is an Avro source")
    assert sorted(path for path in Path(lake.store.root).rglob("*")) == files, "no shadow, dead letter or lease file"
    assert len(lake.delta("things").history()) == history


class _Untouched:
    """A lake or table that must not be used at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was used")


@pytest.mark.parametrize("timestamp_ms", [10**17, -(10**17)])
def test_a_dead_letter_whose_timestamp_no_date_can_hold_is_filed_as_processing_files_it(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, timestamp_ms: int
) -> None:
    """Review 15: one such row anywhere in deadletter/ (foreign, or damaged) stopped every reprocess of the source
    with a traceback (year out of range). Processing files a record with such a timestamp at epoch 0; so does this."""
    source = _land_two_hours(lake)
    letter = {"_topic": "things", "_partition": 0, "_incarnation": 0, "_offset": 99, "_key": "k"}
    letter |= {"_kafka_timestamp": timestamp_ms, "reason": "schema", "detail": "x", "raw_base64": "e30="}
    name = batch_file_name(TopicPartition("things", 0), OffsetSpan(99, 99), 0, "jsonl.gz")
    lake.store.write_atomic(f"deadletter/things/date=1970-01-01/hour=00/{name}", gzip.compress(orjson.dumps(letter)))
    assert _main(lake, monkeypatch, source) == 0


def test_a_damaged_raw_file_holding_a_removed_row_stops_the_command_in_one_line(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 15: reading back a row an earlier promotion removed from a raw file that is damaged raised ArrowInvalid
    out of the command, a traceback; now the lake's exit code, the file named."""
    source = _land_two_hours(lake)
    curated = lake.table("things")
    bad = reprocess(
        _changed(source), lake=lake.store, curated=curated, shadow=_shadow(lake), window=WINDOW, max_record_bytes=10_000
    )
    promote(
        _changed(source),
        next(r for r in bad if r.diff.hour == H10),
        lake=lake.store,
        curated=curated,
        run_id="bad",
        now_ms=FIXED_NOW_MS,
    )
    damaged = f"raw/things/date={H10.date}/hour={H10.hour}/things+0+i0+{3:020d}+{3:020d}.parquet"
    lake.store.write_atomic(damaged, b"PAR1 and then nothing a reader takes")
    assert _main(lake, monkeypatch, source) == 5
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert damaged in line


def test_a_run_whose_shadow_hour_another_run_wrote_meanwhile_exits_3_not_as_a_lake_failure(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2026-12-07: a diff-only run beside a promotion failed one of them on the shadow table's commit, reported
    as "cannot use the lake" (exit 5). A diff-only run takes no lease (it never holds up a redrive); a shadow write
    that finds the table moved on under it is another run's doing: exit 3."""
    import tools.reprocess as command

    source = _land_two_hours(lake)
    monkeypatch.setitem(command.SOURCES, "things", source)
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(lake.store.root)]
    assert command.main(["things", *window, "--settings", NO_SETTINGS]) == 0
    take_lease(lake.store, "things", "a-redrive").release()  # a diff-only run held no lease
    replace = command._replace_hour

    def another_run_first(store: Any, table: Any, path: str, hour: Any, rows: Any, metadata: Any) -> None:
        other = command.CuratedTable(table.location, target_file_bytes=table.target_file_bytes)
        replace(store, other, path, hour, rows, metadata)  # the other run's write of the same hour
        replace(store, table, path, hour, rows, metadata)

    monkeypatch.setattr(command, "_replace_hour", another_run_first)
    capsys.readouterr()
    assert command.main(["things", *window, "--settings", NO_SETTINGS]) == 3
    assert "changed under this run" in capsys.readouterr().err


def test_a_shadow_write_the_lake_refuses_is_the_lakes_failure_whatever_else_committed(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second diff review: with the table's version moved by another run's commit of another hour, a write the
    lake itself refused was reported as another run's doing (exit 3). Only a lost race is ShadowTaken."""
    import tools.reprocess as command
    from shared.errors import LakeUnavailable

    source = _land_two_hours(lake)
    monkeypatch.setitem(command.SOURCES, "things", source)
    window = ["--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--lake", str(lake.store.root)]
    assert command.main(["things", *window, "--settings", NO_SETTINGS]) == 0
    replace, written = command._replace_hour, []

    def refused_after_another_run(store: Any, table: Any, path: str, hour: Any, rows: Any, metadata: Any) -> None:
        if not written:
            written.append((store, path, hour, rows, metadata))
            replace(store, table, path, hour, rows, metadata)
            return
        first_store, first_path, first_hour, first_rows, first_metadata = written[0]
        other = command.CuratedTable(table.location, target_file_bytes=table.target_file_bytes)
        replace(first_store, other, first_path, first_hour, first_rows, first_metadata)  # another run, another hour
        raise LakeUnavailable("cannot write shadow/things: 403 AuthorizationPermissionMismatch")

    monkeypatch.setattr(command, "_replace_hour", refused_after_another_run)
    capsys.readouterr()
    assert command.main(["things", *window, "--settings", NO_SETTINGS]) == command.EXIT_LAKE_UNAVAILABLE
    assert "cannot use the lake" in capsys.readouterr().err
