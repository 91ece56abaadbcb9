"""The move to another bucket count rewrites the lake's record only when every key arrived and the old
buckets held still: against an in-memory stand-in for the Durable entity HTTP API (a fake, named as such:
the real API is exercised on the local host in tests/integration/test_devhost_state.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.lake import LocalLake
from shared.landing.ledger import Ledger
from shared.layout import ledger_path
from shared.records import TopicPartition
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.bucket_counts import RECORD_PATH, BucketCounts, record_migrated
from shared.state.bucket_state import key_state, operate
from shared.state.buckets import bucket_for, bucket_key
from shared.state.keys import encode_key
from shared.state.migration import ExportError, export_bytes, keys_of, parse_export
from shared.state.registry import ENTITY_KINDS
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import migrate_state

KIND = ENTITY_KINDS["mobile"]
DEVICE = ["login", "home", "1.0", "ios"]  # event_type, screen, app_version, os


class FakeEntityApi:
    """Entities in memory, operated on by the app's own bucket code. With ``late_signal`` one more signal
    reaches an old bucket just after the migration first reads it (the entities were not drained)."""

    def __init__(self, late_signal: bool = False) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.late_signal = late_signal

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        state = self.states.get(key)
        copy = orjson.loads(orjson.dumps(state)) if state is not None else None
        if self.late_signal and key == bucket_for("device-1", 4):
            self.late_signal = False
            self.apply(key, {"device-1": [50]}, (50, 50))
        return copy

    def signal(self, signal: Signal) -> None:
        state = self.states.setdefault(signal.key, {})
        operate(KIND.fold, KIND.reduce, signal.key, state, signal.operation, signal.payload)

    def apply(self, home: str, keys: dict[str, list[int]], span: tuple[int, int]) -> None:
        events = {
            key: [[offset, 1_700_000_000_000 + offset, *DEVICE] for offset in offsets] for key, offsets in keys.items()
        }
        part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": list(span), "keys": events}
        operate(KIND.fold, KIND.reduce, home, self.states.setdefault(home, {}), "apply", {"parts": [part]})


def _deployment(tmp_path: Path, api: FakeEntityApi) -> LocalLake:
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    keys = [f"device-{i}" for i in range(10)]
    for home in {bucket_for(key, 4) for key in keys}:
        api.apply(home, {key: [i] for i, key in enumerate(keys) if bucket_for(key, 4) == home}, (0, 9))
    return lake


def _export_text(
    buckets: int = 4, states: dict[str, Any] | None = None, origins: dict[str, Any] | None = None
) -> bytes:
    part = {"entity": KIND.name, "buckets": buckets, "states": states or {}, "origins": origins or {}}
    return orjson.dumps({"format": "streamingpoc-state-export/1", "sources": {"mobile": part}})


def test_every_key_moves_and_the_record_can_name_the_new_count(tmp_path: Path) -> None:
    api = FakeEntityApi()
    lake = _deployment(tmp_path, api)
    outcome = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert outcome.complete and len(outcome.moved) == 10
    assert record_migrated(lake, "mobile", 3, 4) is None
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3


def test_old_buckets_that_change_during_the_move_make_it_incomplete(tmp_path: Path) -> None:
    api = FakeEntityApi(late_signal=True)
    lake = _deployment(tmp_path, api)
    outcome = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert outcome.source_changed and not outcome.complete and not outcome.missing and not outcome.conflicts


def test_moved_keys_arrive_in_todays_state_form_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    api = FakeEntityApi()
    lake = _deployment(tmp_path, api)
    old_form = {"start": 1, "end": 2, "events": 1, "last": "home"}
    for bucket in api.states.values():  # as an earlier version stored them: sessions as objects, ten kept
        for key, text in bucket["keys"].items():
            state = orjson.loads(text)
            bucket["keys"][key] = orjson.dumps(
                state | {"session": old_form, "closed_sessions": [old_form] * 10}
            ).decode()
    first = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert first.complete
    for index in range(3):
        for text in api.states[bucket_key(index, 3)]["keys"].values():
            moved = orjson.loads(text)
            assert moved["session"] == [1, 2, 1, "home"] and moved["closed_sessions"] == [[1, 2, 1, "home"]] * 3
    again = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert again.complete and not again.conflicts


def _events(api: FakeEntityApi, key: str, buckets: int) -> int | None:
    state = key_state(api.states.get(bucket_for(key, buckets)), key)
    return None if state is None else state["events"]


def test_state_exported_from_one_backend_and_imported_into_another_counts_each_offset_once(tmp_path: Path) -> None:
    """The backend switch: every key arrives in the new (empty) backend; a batch redelivered after the switch
    does not count again, at the same N or another, and a new offset still counts."""
    old = FakeEntityApi()
    _deployment(tmp_path, old)
    export, changed, not_upgraded, _, left = migrate_state.export_state(old, "mobile", 4)  # type: ignore[arg-type]
    assert not changed and not not_upgraded and not left and len(export.states) == 10
    data = export_bytes({"mobile": export})
    for buckets in (4, 3):
        new = FakeEntityApi()
        parsed = parse_export(data, {"mobile": KIND.name})["mobile"]
        outcome = migrate_state.import_state(new, parsed, buckets, wait_seconds=1)  # type: ignore[arg-type]
        assert outcome.complete and len(outcome.moved) == 10
        assert all(_events(new, f"device-{i}", buckets) == 1 for i in range(10))
        home = bucket_for("device-3", buckets)
        new.apply(home, {"device-3": [3, 11]}, (3, 11))  # offset 3 applied in the old backend, 11 is new
        assert _events(new, "device-3", buckets) == 2
        again = migrate_state.import_state(new, parsed, buckets, wait_seconds=1)  # type: ignore[arg-type]
        assert again.conflicts == ["device-3"] and len(again.moved) == 9  # counted since: kept, reported


def test_an_export_is_refused_when_the_buckets_change_while_they_are_read(tmp_path: Path) -> None:
    api = FakeEntityApi(late_signal=True)
    _deployment(tmp_path, api)
    _, changed, *_ = migrate_state.export_state(api, "mobile", 4)  # type: ignore[arg-type]
    assert changed


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"{not json", "not JSON"),
        (b'{"format": "something-else/1", "sources": {}}', "its format"),
        (b'{"format": "streamingpoc-state-export/1", "sources": {"orders": {}}}', "no keyed source"),
        (b'{"format": "streamingpoc-state-export/1", "sources": {"mobile": {"entity": "x"}}}', "its entity"),
        (_export_text(buckets=0), "'buckets'"),
        (_export_text(origins={"~b0of4": {"mobile/0/0": [[5, 1]]}}), "offset ranges"),
        (_export_text(states={"k": {"events": 1, "_moved_from": "~b9of4"}}), "name no origin"),
        (_export_text(states={"k": {"events": 1, "_moved_from": [1]}}), "name no origin"),
        (_export_text(states={"k": {"events": 1}}), "name no origin"),
        (_export_text(states={"k": 7}), "'states'"),  # not as a move carries a damaged state (``as_stored``)
    ],
)
def test_an_export_file_that_is_not_one_is_refused_with_its_reason(data: bytes, complaint: str) -> None:
    with pytest.raises(ExportError, match=complaint):
        parse_export(data, {"mobile": KIND.name})


class NoPerKeyEntities:
    """The entity HTTP API with no per-key entity at all (a fake, as above)."""

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        return None

    def signal(self, signal: Signal) -> None:
        raise AssertionError("nothing to move")


def test_a_landed_key_no_entity_can_take_is_skipped_not_fatal() -> None:
    """A sensor id of 128 CJK characters lands when the source's state is off, but encodes past 400 characters."""
    rows = [{"sensor_id": "ams-1-temp-001"}, {"sensor_id": "\u6e29" * 128}]
    keys = keys_of(SOURCES["sensors"].entity_key, rows)
    outcome = migrate_state.migrate(NoPerKeyEntities(), "sensors", keys, 512, wait_seconds=0)  # type: ignore[arg-type]
    assert outcome.complete


class DropsAfter(FakeEntityApi):
    """The connection to the entity API drops after ``ok`` signals: the run is interrupted part way."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def signal(self, signal: Signal) -> None:
        if self.ok <= 0:
            raise ConnectionResetError("connection reset by peer")
        self.ok -= 1
        super().signal(signal)


def test_a_move_interrupted_then_run_again_after_processing_resumed_completes_with_the_new_events(
    tmp_path: Path,
) -> None:
    """The record still names 4 after the interrupted run, so processing rightly goes on in the 4 buckets; what
    the first run left in the 3 buckets is stale and is replaced, not a conflict that blocks every later run."""
    api = DropsAfter(ok=1)
    lake = _deployment(tmp_path, api)
    with pytest.raises(ConnectionResetError):
        migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=0, lake=lake)  # type: ignore[arg-type]
    moved = [f"device-{i}" for i in range(10) if _events(api, f"device-{i}", 3) is not None]
    assert moved, "the first run moved some keys before it was interrupted"
    api.apply(bucket_for(moved[0], 4), {moved[0]: [20]}, (20, 20))  # one more event, in the layout recorded
    api.ok = 10_000
    outcome = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert outcome.complete and len(outcome.moved) == 10
    assert _events(api, moved[0], 3) == 2, "the event counted after the interrupted run moved too"


def test_moving_back_to_an_earlier_bucket_count_replaces_what_those_buckets_held_before(tmp_path: Path) -> None:
    api = FakeEntityApi()
    lake = _deployment(tmp_path, api)
    assert migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake).complete  # type: ignore[arg-type]
    assert record_migrated(lake, "mobile", 3, 4) is None
    api.apply(bucket_for("device-3", 3), {"device-3": [11]}, (11, 11))  # processing on 3 buckets
    back = migrate_state.rebucket(api, "mobile", 3, 4, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert back.complete and len(back.moved) == 10
    assert (_events(api, "device-3", 4), _events(api, "device-4", 4)) == (2, 1)


def test_a_key_whose_state_cannot_be_upgraded_moves_as_stored_the_others_move_and_the_run_names_it_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    home = bucket_for("device-3", 4)
    stored = orjson.loads(api.states[home]["keys"]["device-3"]) | {"session": {"start": 1}}  # no release wrote it
    api.states[home]["keys"]["device-3"] = orjson.dumps(stored).decode()
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    argv = ["--settings", NO_SETTINGS, "--sources", "mobile", "--to-buckets", "3", "--wait", "1"]
    assert migrate_state.main(argv) == 1
    moved = key_state(api.states[bucket_for("device-3", 3)], "device-3") or {}
    assert moved["session"] == {"start": 1} and _events(api, "device-3", 3) == 1  # as stored
    assert all(_events(api, f"device-{i}", 3) == 1 for i in range(10))
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3  # every key is in its new bucket: the move completed
    assert "1 keys kept as stored, not upgraded (see above): ['device-3']" in capsys.readouterr().out


class PerKeySensors:
    """Per-key sensor entities of the previous layout (a fake, as above), then buckets."""

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states
        self.buckets: dict[str, dict[str, Any]] = {}

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        return self.buckets.get(key) if key.startswith("~b") else self.states.get(key)

    def signal(self, signal: Signal) -> None:
        kind = ENTITY_KINDS["sensors"]
        operate(kind.fold, kind.reduce, signal.key, self.buckets.setdefault(signal.key, {}), "adopt", signal.payload)


def test_first_release_sensor_state_moves_upgraded_and_a_damaged_one_as_stored() -> None:
    first_release = {"count": 2, "windows": [{"start": 60_000, "count": 2, "min": 1.0, "max": 2.0, "sum": 3.0}]}
    damaged = {"count": 1, "windows": [[60_000, 1]]}
    api = PerKeySensors({"s1": first_release, "s2": damaged})
    outcome = migrate_state.migrate(api, "sensors", {"s1", "s2"}, 1, wait_seconds=0)  # type: ignore[arg-type]
    assert outcome.complete and list(outcome.not_upgraded) == ["s2"]
    assert key_state(api.buckets["~b0of1"], "s1") == {"count": 2, "minutes": [[1, 1.0, 2.0]]}
    assert key_state(api.buckets["~b0of1"], "s2") == damaged


def test_a_move_back_to_an_earlier_n_empties_its_buckets_so_a_key_evicted_meanwhile_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 -> 1, where device-1 is evicted, then back to 4: device-1's N=4 bucket held its state from before the
    first move; the move back empties every N=4 bucket, those no moved key goes to included."""
    from shared.state import bucket_state

    api = FakeEntityApi()
    lake = _deployment(tmp_path, api)
    assert migrate_state.rebucket(api, "mobile", 4, 1, wait_seconds=1, lake=lake).complete  # type: ignore[arg-type]
    monkeypatch.setattr(bucket_state, "MAX_BUCKET_BYTES", 2_500)
    monkeypatch.setattr(bucket_state, "KEEP_BUCKET_BYTES", 2_000)
    for first in range(20, 84, 8):  # a record counts for one key: each key its own offset
        api.apply("~b0of1", {f"device-{i}": [first + i - 2] for i in range(2, 10)}, (first, first + 7))
    monkeypatch.undo()
    assert _events(api, "device-1", 1) is None and _events(api, "device-0", 1) is None  # evicted
    assert _events(api, "device-1", 4) == 1  # the stale state the earlier N still holds
    back = migrate_state.rebucket(api, "mobile", 1, 4, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert back.complete and len(back.moved) == 8 and not back.not_emptied
    assert _events(api, "device-1", 4) is None and _events(api, "device-0", 4) is None
    assert all(_events(api, f"device-{i}", 4) == 9 for i in range(2, 10))
    api.apply(bucket_for("device-1", 4), {"device-1": [40]}, (40, 40))
    assert _events(api, "device-1", 4) == 1  # afresh, not 2


class Queues(FakeEntityApi):
    """Signals wait in a queue while ``holding`` (the entities have not applied them yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.queued: list[Signal] = []

    def signal(self, signal: Signal) -> None:
        if self.holding:
            self.queued.append(signal)
        else:
            super().signal(signal)


def test_an_adopt_of_an_earlier_run_applied_after_a_later_run_completed_changes_nothing(tmp_path: Path) -> None:
    api = Queues()
    lake = _deployment(tmp_path, api)
    stale = {"keys": {"device-gone": '{"events":7}'}, "_replaced": 2**62}  # a run named by a clock far ahead
    api.states["~b2of3"] = stale
    api.holding = True
    first = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=0, lake=lake)  # type: ignore[arg-type]
    assert not first.complete and first.not_emptied and first.missing  # its adopts are still queued
    api.holding = False
    again = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert again.complete and len(again.moved) == 10 and key_state(api.states["~b2of3"], "device-gone") is None
    after = orjson.loads(orjson.dumps(api.states))
    for signal in api.queued:  # the first run's adopts reach the buckets at last
        outcome = operate(KIND.fold, KIND.reduce, signal.key, api.states[signal.key], "adopt", signal.payload)
        assert outcome.refused is not None and "superseded" in outcome.refused
    assert api.states == after


def _main_argv(tmp_path: Path, *more: str) -> list[str]:
    return ["--settings", NO_SETTINGS, "--sources", "mobile", "--wait", "1", *more]


def test_a_run_again_once_the_record_names_the_new_n_replaces_nothing_processing_counted_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3
    api.apply(bucket_for("device-3", 3), {"device-3": [11]}, (11, 11))  # processing resumed on 3 buckets
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
    assert "already in 3 buckets" in capsys.readouterr().out
    assert _events(api, "device-3", 3) == 2


def test_a_bucket_over_80_percent_of_its_bound_after_the_move_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.state import migration

    api = FakeEntityApi()
    _deployment(tmp_path, api)
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setattr(migration, "NEAR_CAPACITY", 0.001)  # over it, within the bound itself
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "1")) == 0  # a warning, not a failure
    assert "warning: bucket ~b0of1 holds" in capsys.readouterr().out


def test_a_move_into_buckets_too_small_for_their_keys_is_refused_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A move into too few buckets built buckets past MAX_BUCKET_BYTES (600 KB in a review's case), named only
    after the move: the first apply then evicted most of their keys, their state dropped. Into empty buckets the
    size is known before sending: refused whole, nothing sent."""
    from shared.state import bucket_state

    api = FakeEntityApi()
    _deployment(tmp_path, api)
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    before = orjson.dumps(api.states, option=orjson.OPT_SORT_KEYS)
    monkeypatch.setattr(bucket_state, "MAX_BUCKET_BYTES", 2_000)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "1")) == 1
    assert "refused, nothing sent: bucket ~b0of1 would hold" in capsys.readouterr().out
    assert orjson.dumps(api.states, option=orjson.OPT_SORT_KEYS) == before, "no adopt was sent"


def _moved_over_deployment(tmp_path: Path, api: FakeEntityApi, ledger: bytes | None) -> LocalLake:
    """N=4: device-a's events at 5, 55 and 205 (batches 0-9, 50-59, 200-209), other batches 10-49 and 60-150 of
    another bucket's key; the group was moved from 151 to 200 (tools.reconcile --move-group-to-time), so 151-199
    never landed. ``ledger``: the partition's landing ledger as stored (None: there is none)."""
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    other = next(f"device-{i}" for i in range(100) if bucket_for(f"device-{i}", 4) != bucket_for("device-a", 4))
    for key, offset, span in (
        ("device-a", 5, (0, 9)),
        (other, 20, (10, 49)),
        ("device-a", 55, (50, 59)),
        (other, 100, (60, 150)),
        ("device-a", 205, (200, 209)),
    ):
        api.apply(bucket_for(key, 4), {key: [offset]}, span)
    if ledger is not None:
        lake.create(ledger_path("mobile", TopicPartition("mobile", 0)), ledger)
    return lake


def _landed_ledger() -> bytes:
    """The ledger the landing wrote: 0-150 one consumer read on through, the marker of the move to 200, 200-209."""
    ledger = Ledger(landed=[[0, 150], [200, 209]])
    ledger.moved(200)
    return orjson.dumps(ledger.to_json())


def test_a_move_closes_the_gaps_the_landing_ledger_counts_landed_and_an_event_moved_over_counts_after_it(
    tmp_path: Path,
) -> None:
    """device-a's old bucket applied 0-9, 50-59, 200-209: 10-49 landed (signalled to another bucket), closed in
    its origin; 60-199 reaches the offsets the group was moved over, kept open. A rewind to 100 lands the event
    at 150 that never reached a bucket: it counts once in the new bucket, 205 not again."""
    api = FakeEntityApi()
    lake = _moved_over_deployment(tmp_path, api, _landed_ledger())
    outcome = migrate_state.rebucket(api, "mobile", 4, 2, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert outcome.complete and not outcome.gaps_kept
    home = bucket_for("device-a", 2)
    assert api.states[home]["_origins"][bucket_for("device-a", 4)] == {"mobile/0/0": [[0, 59], [200, 209]]}
    api.apply(home, {"device-a": [150, 205]}, (100, 209))  # the rewind to 100
    assert _events(api, "device-a", 2) == 4


@pytest.mark.parametrize(
    ("ledger", "why"),
    [(None, "no landing ledger"), (b"{not json", "landing ledger unreadable")],
    ids=["missing", "unreadable"],
)
def test_without_a_readable_ledger_a_move_keeps_the_gaps_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ledger: bytes | None,
    why: str,
) -> None:
    api = FakeEntityApi()
    _moved_over_deployment(tmp_path, api, ledger)
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "2")) == 0  # gaps kept is exact: not a failure
    out = capsys.readouterr().out
    assert "1 positions keep their gaps" in out and f"mobile/0/0: {why}" in out
    home = bucket_for("device-a", 2)
    assert api.states[home]["_origins"][bucket_for("device-a", 4)] == {"mobile/0/0": [[0, 9], [50, 59], [200, 209]]}
    api.apply(home, {"device-a": [5, 150, 205]}, (0, 209))  # a rewind to 0
    assert _events(api, "device-a", 2) == 4


def test_an_export_closes_the_gaps_its_ledgers_count_landed(tmp_path: Path) -> None:
    api = FakeEntityApi()
    lake = _moved_over_deployment(tmp_path, api, _landed_ledger())
    export, changed, _, gaps_kept, _ = migrate_state.export_state(api, "mobile", 4, lake=lake)  # type: ignore[arg-type]
    assert not changed and not gaps_kept
    assert export.origins[bucket_for("device-a", 4)] == {"mobile/0/0": [[0, 59], [200, 209]]}


def test_an_unreachable_durable_api_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """No app listening at --durable-url: the tool names it in one line and exits 2, no traceback."""
    import socket
    import subprocess
    import sys

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(tmp_path / "lake")}}))
    (tmp_path / "lake").mkdir()
    url = f"http://127.0.0.1:{port}/runtime/webhooks/durabletask"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.migrate_state",
            "--durable-url",
            url,
            "--settings",
            str(settings),
            "--export",
            str(tmp_path / "x.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "did not answer" in result.stderr


def _use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: Any) -> None:
    monkeypatch.setattr(migrate_state, "DurableHttp", lambda *args: api)
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))


def test_queued_adopts_of_a_run_from_a_clock_ahead_change_nothing_after_a_later_run_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 (machine A, clock 10 s ahead) is interrupted with its adopts still queued in the backend. Run 2
    (machine B) reads the target buckets: none names run 1 yet, but the lake's counter does, so run 2's token is
    above run 1's whatever B's clock says. Run 2 completes, the record names 3, processing counts device-3's next
    event there; run 1's queued adopts arrive at last and are refused as superseded. (review 3, defect 1)"""
    from shared.state import bucket_counts

    api = Queues()
    lake = _deployment(tmp_path, api)
    _use(monkeypatch, tmp_path, api)
    now = 1_800_000_000_000_000_000
    monkeypatch.setattr(bucket_counts.time, "time_ns", lambda: now + 10_000_000_000)  # machine A
    api.holding = True
    first = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=0, lake=lake)  # type: ignore[arg-type]
    assert not first.complete  # interrupted: its adopts are queued, none applied
    api.holding = False
    monkeypatch.setattr(bucket_counts.time, "time_ns", lambda: now)  # machine B, 10 s behind A
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3
    api.apply(bucket_for("device-3", 3), {"device-3": [11]}, (11, 11))  # processing resumed on the recorded N
    assert _events(api, "device-3", 3) == 2
    for signal in api.queued:  # run 1's adopts reach the buckets at last
        operate(KIND.fold, KIND.reduce, signal.key, api.states[signal.key], "adopt", signal.payload)
    assert _events(api, "device-3", 3) == 2, "a live bucket of the recorded N was emptied by an older run"


def _recording_signals(api: Any) -> list[Signal]:
    """The signals ``api`` is sent from now on, in order (each still applied as before)."""
    sent: list[Signal] = []
    real = api.signal

    def record(signal: Signal) -> None:
        sent.append(signal)
        real(signal)

    api.signal = record
    return sent


def test_a_duplicate_of_the_completed_runs_own_adopt_changes_nothing_processing_counted_since(
    tmp_path: Path,
) -> None:
    """One of the run's adopts delivered again (at-least-once) after the move completed and processing resumed
    is refused whole: the bucket has applied events since its run emptied it. (review 3, defect 3)"""
    api = Queues()
    lake = _deployment(tmp_path, api)
    sent = _recording_signals(api)
    outcome = migrate_state.rebucket(api, "mobile", 4, 3, wait_seconds=1, lake=lake)  # type: ignore[arg-type]
    assert outcome.complete
    assert record_migrated(lake, "mobile", 3, 4, run=outcome.run) is None
    home = bucket_for("device-3", 3)
    api.apply(home, {"device-3": [11]}, (11, 11))
    duplicate = next(s for s in sent if s.key == home and "device-3" in s.payload["states"])
    late = operate(KIND.fold, KIND.reduce, home, api.states[home], "adopt", duplicate.payload)
    assert late.refused is not None and "duplicate" in late.refused
    assert _events(api, "device-3", 3) == 2, "a replayed adopt of the finished run overwrote live state"


class RacesAnotherRun(FakeEntityApi):
    """While run 1 (4 -> 5) reads its target buckets, run 2 (4 -> 3) runs to completion, the record names 3 and
    processing counts device-3's next event in its N=3 bucket."""

    def __init__(self, race: Any) -> None:
        super().__init__()
        self.race = race

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        if self.race is not None and key.endswith("of5"):
            race, self.race = self.race, None
            race()
        return super().read(entity, key)


def test_a_run_that_completes_after_another_run_moved_the_source_leaves_the_record_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """(review 3, defect 2) The record is rewritten only if it still names the N the run moved from."""

    def other_run() -> None:
        assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
        api.apply(bucket_for("device-3", 3), {"device-3": [11]}, (11, 11))

    api = RacesAnotherRun(other_run)
    _deployment(tmp_path, api)
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "5")) == 1
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3
    assert _events(api, "device-3", 3) == 2
    assert "the record names 3 buckets, not the N this run moved from" in capsys.readouterr().out


def _export_file(tmp_path: Path) -> Path:
    old = FakeEntityApi()
    _deployment(tmp_path, old)
    export, *_ = migrate_state.export_state(old, "mobile", 4)  # type: ignore[arg-type]
    path = tmp_path / "state.json"
    path.write_bytes(export_bytes({"mobile": export}))
    return path


@pytest.mark.parametrize("to_buckets", [["--to-buckets", "1"], []], ids=["another-n", "recorded-n"])
def test_an_import_run_again_after_it_completed_is_already_imported_and_brings_back_no_evicted_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], to_buckets: list[str]
) -> None:
    """Export at N=4, import (into 1, or the recorded 4). Processing: device-1 evicted. The same import run again
    (a retry) does nothing: the lake recorded the export as imported. (review 3, defect 4)"""
    path = _export_file(tmp_path)
    new = FakeEntityApi()
    _use(monkeypatch, tmp_path, new)
    n = int(to_buckets[1]) if to_buckets else 4
    argv = _main_argv(tmp_path, "--import", str(path), *to_buckets)
    assert migrate_state.main(argv) == 0
    home = bucket_for("device-1", n)
    new.apply(home, {"device-new": [20]}, (20, 20))  # processing resumed
    del new.states[home]["keys"]["device-1"]  # then evicted it (as ``_within_capacity`` does)
    assert _events(new, "device-1", n) is None  # evicted
    capsys.readouterr()
    assert migrate_state.main(argv) == 0
    assert "already imported" in capsys.readouterr().out
    assert _events(new, "device-1", n) is None, "an evicted key came back with its export-time state"


def test_an_import_into_the_recorded_n_whose_buckets_hold_other_state_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _export_file(tmp_path)
    new = FakeEntityApi()
    _use(monkeypatch, tmp_path, new)
    new.apply(bucket_for("device-3", 4), {"device-3": [11], "device-new": [12]}, (11, 12))  # processing ran
    assert migrate_state.main(_main_argv(tmp_path, "--import", str(path))) == 1
    out = capsys.readouterr().out
    assert "nothing imported" in out and "device-new" in out and "device-3" in out
    assert _events(new, "device-0", 4) is None  # nothing adopted


def test_an_interrupted_import_into_the_recorded_n_completes_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _export_file(tmp_path)
    new = DropsAfter(ok=1)
    _use(monkeypatch, tmp_path, new)
    argv = _main_argv(tmp_path, "--import", str(path))
    with pytest.raises(ConnectionResetError):
        migrate_state.main(argv)
    assert any(_events(new, f"device-{i}", 4) == 1 for i in range(10))  # some keys adopted before the drop
    new.ok = 10_000
    assert migrate_state.main(argv) == 0
    assert all(_events(new, f"device-{i}", 4) == 1 for i in range(10))


def test_a_durable_url_that_is_not_https_is_one_line_and_exit_2_for_a_bad_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 says a key is missing or conflicts; a refused ``--durable-url`` is a bad argument (2), named in one
    line, and nothing is read."""
    argv = ["--settings", NO_SETTINGS, "--export", str(tmp_path / "state.json")]
    code = migrate_state.cli([*argv, "--durable-url", "http://example.com/runtime/webhooks/durabletask"])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith("migrate_state: --durable-url must be https://"), line
    assert not (tmp_path / "state.json").exists()


def test_invalid_settings_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every tool says it (``tools.cli.settings_error_line``): ``invalid settings:`` once, the problem after it."""
    monkeypatch.setenv("LAKE_KIND", "bogus")
    code = migrate_state.cli(["--settings", NO_SETTINGS, "--export", str(tmp_path / "state.json")])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "migrate_state: invalid settings: LAKE_KIND: Input should be 'local', 'blob' or 'adls' (got 'bogus')"
    ]


def _per_key_part(offsets: list[int]) -> dict[str, Any]:
    events = [[offset, 1_700_000_000_000 + offset, *DEVICE] for offset in offsets]
    return {
        "topic": "mobile",
        "partition": 0,
        "incarnation": 0,
        "range": [min(offsets), max(offsets)],
        "events": events,
    }


class PerKeyApi:
    """Per-key entities of the previous layout, then buckets, in memory (a fake, as above), run by the app's own
    entity code. A signal still ``queued`` for a per-key entity when the tool reads it is applied just after the
    read (the entities were not drained)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.queued: dict[str, dict[str, Any]] = {}

    def apply_per_key(self, key: str, offsets: list[int]) -> None:
        entity = encode_key(key)
        self.states[entity] = KIND.reduce(self.states.get(entity, {}), "apply", _per_key_part(offsets))

    def read(self, entity: str, key: str) -> dict[str, Any] | None:
        state = self.states.get(key)
        copy = orjson.loads(orjson.dumps(state)) if state is not None else None
        if key in self.queued:  # the queued signal is applied right after this read
            self.states[key] = KIND.reduce(self.states[key], "apply", self.queued.pop(key))
        return copy

    def signal(self, signal: Signal) -> None:
        state = self.states.setdefault(signal.key, {})
        operate(KIND.fold, KIND.reduce, signal.key, state, signal.operation, signal.payload)


def _per_key_deployment() -> PerKeyApi:
    api = PerKeyApi()
    for i in range(4):
        api.apply_per_key(f"device-{i}", [i])
    api.queued[encode_key("device-1")] = _per_key_part([10])  # sent before the upgrade, applied during the move
    return api


def test_a_per_key_entity_that_changes_during_the_move_from_per_key_makes_it_incomplete(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A review's case: the move from per-key entities read each once and never again, so an event a queued per-key
    signal applied after the read stayed in the per-key entity only (GET /api/state reads the bucket), and the run
    reported complete (exit 0). The move to another N and --export both read their source again; so does this."""
    api = _per_key_deployment()
    outcome = migrate_state.migrate(api, "mobile", {f"device-{i}" for i in range(4)}, 4, wait_seconds=1)  # type: ignore[arg-type]
    in_bucket = key_state(api.states[bucket_for("device-1", 4)], "device-1")
    per_key = api.states[encode_key("device-1")]
    assert in_bucket is not None and per_key["events"] == 2 and in_bucket["events"] == 1  # offset 10 left behind
    assert not outcome.complete and outcome.source_changed and outcome.changed == ["device-1"]
    assert not outcome.missing and not outcome.conflicts
    assert migrate_state._report("mobile", "4 keys in the lake", 4, outcome)  # failed: exit 1
    assert (
        "changed during the move (processing running, or signals still queued), 1 entities" in capsys.readouterr().out
    )


def test_a_move_from_per_key_run_again_once_drained_moves_again_what_changed_during_the_first_run() -> None:
    """The first run adopted device-1 as first read; its per-key entity applied one more event after. Run again
    (drained), the bucket holds device-1 as the first run moved it and has applied nothing since (processing
    stopped), and the per-key state applied every offset that one did, and more: it replaces it, complete."""
    api = _per_key_deployment()
    keys = {f"device-{i}" for i in range(4)}
    assert not migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1).complete  # type: ignore[arg-type]
    outcome = migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1)  # type: ignore[arg-type]
    assert outcome.complete and outcome.renewed == ["device-1"] and not outcome.conflicts
    assert (key_state(api.states[bucket_for("device-1", 4)], "device-1") or {})["events"] == 2
    again = migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1)  # type: ignore[arg-type]
    assert again.complete and not again.renewed  # nothing moved twice


def test_a_move_from_per_key_run_again_after_processing_ran_leaves_a_changed_key_a_conflict() -> None:
    """Once its bucket applied events (processing resumed before the run again), what it holds for the key may
    hold them: it is a conflict, left as the bucket has it (its per-key entity is never deleted)."""
    api = _per_key_deployment()
    keys = {f"device-{i}" for i in range(4)}
    assert not migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1).complete  # type: ignore[arg-type]
    home = bucket_for("device-1", 4)
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [20, 20], "keys": {}}
    operate(KIND.fold, KIND.reduce, home, api.states[home], "apply", {"parts": [part]})  # processing ran there
    outcome = migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=0)  # type: ignore[arg-type]
    assert not outcome.complete and outcome.conflicts == ["device-1"] and not outcome.renewed
    assert (key_state(api.states[home], "device-1") or {})["events"] == 1


def test_a_renewing_adopt_delivered_again_after_processing_resumed_changes_nothing_counted_since() -> None:
    """The second run's adopt of device-1 replaces what its bucket holds (``replace`` true, ``moved_on``); delivered
    again (at-least-once) once processing counted device-1's next events in the bucket, it replaced them too, and
    those offsets were applied, so no redelivery could bring them back (a review's case). The entity refuses a
    replacing adopt once its bucket has applied events, as it refuses a completed run's duplicate."""
    api = _per_key_deployment()
    sent = _recording_signals(api)
    keys = {f"device-{i}" for i in range(4)}
    assert not migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1).complete  # type: ignore[arg-type]
    assert migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1).renewed == ["device-1"]  # type: ignore[arg-type]
    renewing = next(s for s in sent if s.payload.get("replace") is True and "device-1" in s.payload["states"])
    home = bucket_for("device-1", 4)
    events = [[offset, 1_700_000_000_000 + offset, *DEVICE] for offset in range(20, 23)]
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [20, 22], "keys": {"device-1": events}}
    operate(KIND.fold, KIND.reduce, home, api.states[home], "apply", {"parts": [part]})  # processing resumed
    assert (key_state(api.states[home], "device-1") or {})["events"] == 5
    late = operate(KIND.fold, KIND.reduce, home, api.states[home], "adopt", renewing.payload)
    assert late.refused is not None and "applied events" in late.refused
    assert (key_state(api.states[home], "device-1") or {})["events"] == 5, "a replayed renew overwrote live state"


def test_a_lake_local_root_that_does_not_exist_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped lake was opened as an empty one: no keys found, its counter record written there."""
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path / "lkae"))
    argv = ["--settings", NO_SETTINGS, "--export", str(tmp_path / "state.json")]
    assert migrate_state.cli([*argv, "--durable-url", "http://127.0.0.1:1/runtime/webhooks/durabletask"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("migrate_state: invalid settings: LAKE_LOCAL_ROOT: the local lake "), line
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_move_keeps_open_the_offsets_a_consumer_passed_over(tmp_path: Path) -> None:
    """Review 17: offsets a live consumer jumped over (``passed_over``: a group moved by another tool, an offset reset)
    are in the ledger's landed range for its shape, but a rewind lands their records. The move closed a bucket's
    gap over them (it read ``landed_in``), so the moved keys' origins skipped the rewound events."""
    from shared.state.migration import origin_ranges
    from shared.state.offsets import APPLIED, partition_id

    where = TopicPartition("clickstream", 0)
    ledger = Ledger(landed=[[0, 59]], passed_over=[[10, 49]])
    LocalLake(tmp_path).write_if(ledger_path("clickstream", where), orjson.dumps(ledger.to_json()), None)
    position = partition_id(where.topic, where.partition, 0)
    landed, kept = migrate_state.landed_offsets(LocalLake(tmp_path), "clickstream", {position})
    assert landed == {position: [[0, 9], [50, 59]]} and not kept
    assert origin_ranges({APPLIED: {position: [[0, 9], [50, 59]]}}, landed)[position] == [[0, 9], [50, 59]]
