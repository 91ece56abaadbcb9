"""``tools.migrate_state`` carries what the old buckets owe (``_owed``: a refused ``apply``) into the new ones, by
``--to-buckets`` and by ``--export``/``--import``: the ``tools.redrive`` re-signal counts once after the move, a later
move, or 32 later ranges. Against the in-memory fakes of test_migrate_state (the app's own bucket code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.lake import LocalLake
from shared.landing.ledger import Ledger
from shared.layout import ledger_path
from shared.records import TopicPartition
from shared.state.aggregate import Signal, owing
from shared.state.bucket_counts import RECORD_PATH, BucketCounts
from shared.state.buckets import bucket_for, bucket_key
from shared.state.migration import export_bytes, parse_export
from tests.unit.tools.test_migrate_state import (
    DEVICE,
    KIND,
    DropsAfter,
    FakeEntityApi,
    Queues,
    _events,
    _main_argv,
    _use,
)
from tools import migrate_state


def _refused(api: FakeEntityApi, key: str, offset: int, buckets: int) -> None:
    """The entity API refused the ``apply`` of ``key``'s event at ``offset``: processing sent ``owing`` instead."""
    event = [offset, 1_700_000_000_000 + offset, *DEVICE]
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [offset, offset], "keys": {key: [event]}}
    api.signal(owing(Signal(KIND.name, bucket_for(key, buckets), "apply", {"parts": [part]})))


def _landed(lake: LocalLake, high: int) -> None:
    """The partition's landing ledger: every offset up to ``high`` landed (one consumer read on through)."""
    lake.write_atomic(
        ledger_path("mobile", TopicPartition("mobile", 0)), orjson.dumps(Ledger(landed=[[0, high]]).to_json())
    )


def _owing_deployment(tmp_path: Path, api: FakeEntityApi, monkeypatch: pytest.MonkeyPatch) -> LocalLake:
    """N=1 (recorded): device-7's event 0 applied, its event 1 refused (owed)."""
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 1}}))
    api.apply("~b0of1", {"device-7": [0]}, (0, 0))
    _refused(api, "device-7", 1, 1)
    assert api.states["~b0of1"]["_owed"] == {"mobile/0/0": [[1, 1]]}
    _use(monkeypatch, tmp_path, api)
    return lake


def test_an_owed_event_counts_once_when_redriven_after_two_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schedule (a), a review's: 1 -> 2, event 2 applied and 0 redelivered, 2 -> 3 (the ledger counts 0-2 landed),
    then the redrive: before, the second move closed the new bucket's gap at 1 and the re-signal was skipped."""
    api = FakeEntityApi()
    lake = _owing_deployment(tmp_path, api, monkeypatch)
    _landed(lake, 1)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "2")) == 0
    home = bucket_for("device-7", 2)
    api.apply(home, {"device-7": [2]}, (2, 2))
    api.apply(home, {"device-7": [0]}, (0, 0))  # redelivered: skipped
    _landed(lake, 2)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3
    for _ in range(2):  # tools.redrive, then again
        api.apply(bucket_for("device-7", 3), {"device-7": [1]}, (1, 1))
    assert _events(api, "device-7", 3) == 3
    owe = {home: api.states[home].get("_owed") for home in (bucket_key(index, 3) for index in range(3))}
    assert owe == {home: None if home == bucket_for("device-7", 3) else {"mobile/0/0": [[1, 1]]} for home in owe}


def test_an_owed_event_counts_once_when_redriven_after_a_move_and_more_than_32_later_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schedule (b): 1 -> 2, 0 redelivered, 40 sparse batches of device-7 (the new bucket closes its oldest gaps),
    then the redrive of 1."""
    api = FakeEntityApi()
    lake = _owing_deployment(tmp_path, api, monkeypatch)
    _landed(lake, 1)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "2")) == 0
    home = bucket_for("device-7", 2)
    api.apply(home, {"device-7": [0]}, (0, 0))
    for batch in range(2, 42):
        api.apply(home, {"device-7": [batch * 10]}, (batch * 10, batch * 10))
    api.apply(home, {"device-7": [1]}, (1, 1))
    assert _events(api, "device-7", 2) == 1 + 40 + 1


def test_a_move_interrupted_while_it_tells_the_new_buckets_what_they_owe_completes_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after the adopts and one owed ``apply`` (that bucket now refuses the run's adopts): the
    record still names 1; run again, the move completes and every new bucket owes the offset, once."""
    api = DropsAfter(ok=10_000)
    lake = _owing_deployment(tmp_path, api, monkeypatch)
    api.ok = 3 + 1  # one adopt per new bucket, then one owed apply
    with pytest.raises(ConnectionResetError):
        migrate_state.rebucket(api, "mobile", 1, 3, wait_seconds=0, lake=lake)  # type: ignore[arg-type]
    assert sum("_owed" in api.states.get(bucket_key(index, 3), {}) for index in range(3)) == 1
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 1
    api.ok = 10_000
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "3")) == 0
    assert all(api.states[bucket_key(index, 3)]["_owed"] == {"mobile/0/0": [[1, 1]]} for index in range(3))
    api.apply(bucket_for("device-7", 3), {"device-7": [1]}, (1, 1))
    api.apply(bucket_for("device-7", 3), {"device-7": [1]}, (1, 1))
    assert _events(api, "device-7", 3) == 2


class HoldsApplies(Queues):
    """While ``holding``, the adopts are applied and the ``apply`` operations wait in the queue (not applied yet)."""

    def signal(self, signal: Signal) -> None:
        if self.holding and signal.operation == "apply":
            self.queued.append(signal)
        else:
            FakeEntityApi.signal(self, signal)


def test_a_move_whose_new_buckets_do_not_owe_yet_is_incomplete_names_them_and_completes_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = HoldsApplies()
    _owing_deployment(tmp_path, api, monkeypatch)
    api.holding = True
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "2", "--wait", "0")) == 1
    assert "2 buckets do not owe yet the offsets the old buckets owed" in capsys.readouterr().out
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 1  # the record is unchanged
    assert {signal.key for signal in api.queued} == {bucket_key(0, 2), bucket_key(1, 2)}
    api.holding = False
    for signal in api.queued:  # the first run's, applied at last: the run again replaces the buckets all the same
        FakeEntityApi.signal(api, signal)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "2")) == 0
    assert all(api.states[bucket_key(index, 2)]["_owed"] == {"mobile/0/0": [[1, 1]]} for index in range(2))


@pytest.mark.parametrize("to_buckets", [["--to-buckets", "3"], []], ids=["another-n", "recorded-n"])
def test_an_export_carries_what_its_buckets_owe_into_the_imported_buckets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to_buckets: list[str]
) -> None:
    """The backend switch: the export names what each bucket owed; the import's buckets owe it (an import into the
    recorded N interrupted after an owed apply completes when run again: that bucket applied no event)."""
    old = FakeEntityApi()
    _owing_deployment(tmp_path, old, monkeypatch)
    export, *_ = migrate_state.export_state(old, "mobile", 1)  # type: ignore[arg-type]
    assert export.owed == {"~b0of1": {"mobile/0/0": [[1, 1]]}}
    path = tmp_path / "state.json"
    path.write_bytes(export_bytes({"mobile": export}))
    assert parse_export(path.read_bytes(), {"mobile": KIND.name})["mobile"].owed == export.owed
    new = FakeEntityApi()
    _use(monkeypatch, tmp_path, new)
    n = int(to_buckets[1]) if to_buckets else 1
    argv = _main_argv(tmp_path, "--import", str(path), *to_buckets)
    if not to_buckets:  # a run interrupted after its adopt and owed apply, before the record was written
        parsed = parse_export(path.read_bytes(), {"mobile": KIND.name})["mobile"]
        assert migrate_state.import_state(new, parsed, 1, wait_seconds=1).complete  # type: ignore[arg-type]
        assert new.states["~b0of1"]["_applied"] == {"mobile/0/0": [[1, 1]]}
    assert migrate_state.main(argv) == 0
    assert all(new.states[bucket_key(index, n)]["_owed"] == {"mobile/0/0": [[1, 1]]} for index in range(n))
    for _ in range(2):
        new.apply(bucket_for("device-7", n), {"device-7": [0, 1]}, (0, 1))  # a redelivery, then the redrive
    assert _events(new, "device-7", n) == 2


def test_an_export_file_without_owed_offsets_or_with_damaged_ones() -> None:
    part: dict[str, Any] = {"entity": KIND.name, "buckets": 1, "states": {}, "origins": {}}
    body = {"format": "streamingpoc-state-export/1", "sources": {"mobile": part}}
    assert parse_export(orjson.dumps(body), {"mobile": KIND.name})["mobile"].owed == {}
    part["owed"] = {"~b0of1": {"mobile/0/0": [[3, 1]]}}
    with pytest.raises(ValueError, match="'owed'"):
        parse_export(orjson.dumps(body), {"mobile": KIND.name})


def test_a_move_whose_new_bucket_would_owe_more_ranges_than_it_keeps_is_refused_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A review's case: N=2, each bucket owes 40 scattered offsets (within the 64 ranges a bucket keeps); a move to
    N=1 told the one new bucket to owe all 80, which it keeps only the newest 64 of: the oldest 16 counted as
    applied, and the redrive right after the move counted 32 of each device's 40 events. The move is refused whole
    (nothing sent, exit 1, the record unchanged) until tools.redrive has cleared what is owed."""
    from shared.state.bucket_state import KEPT_OWED

    api = FakeEntityApi()
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 2}}))
    devices = [next(f"{name}{i}" for i in range(1000) if bucket_for(f"{name}{i}", 2) == bucket_key(home, 2))
               for name, home in (("a", 0), ("b", 1))]  # fmt: skip
    for index in range(40):
        for shift, device in enumerate(devices):
            _refused(api, device, 4 * index + 2 * shift, 2)
    _use(monkeypatch, tmp_path, api)
    before = {home: dict(state) for home, state in api.states.items()}
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "1")) == 1
    out = capsys.readouterr().out
    assert f"refused, nothing sent: a new bucket would owe 80 ranges at mobile/0/0, over the {KEPT_OWED}" in out
    assert api.states == before and BucketCounts(LocalLake(tmp_path)).of("mobile") == 2
    for index in range(40):  # tools.redrive, then the move goes
        for shift, device in enumerate(devices):
            api.apply(bucket_for(device, 2), {device: [4 * index + 2 * shift]}, (4 * index + 2 * shift,) * 2)
    assert migrate_state.main(_main_argv(tmp_path, "--to-buckets", "1")) == 0
    assert [_events(api, device, 1) for device in devices] == [40, 40]
