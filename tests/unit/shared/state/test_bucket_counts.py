"""Bucket counts (N per keyed source) come from the lake's record: a new deployment records its kinds' N, an
older one keeps the N its state is in, concurrent workers agree, and processing signals the recorded buckets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from shared.errors import LakeError
from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.sources import SOURCES
from shared.state import bucket_counts as bucket_counts_module
from shared.state.bucket_counts import (
    BEFORE_THE_RECORD,
    RECORD_PATH,
    BucketCounts,
    RecordLost,
    bucket_counts,
    next_run,
    record_migrated,
)
from shared.state.lookups import StateJoiner
from shared.state.registry import ENTITY_KINDS
from tests.conftest import context_for, records_for
from tests.unit.shared.conftest import RecordingGateway


def _record(lake: LocalLake) -> dict[str, int]:
    return dict(orjson.loads(lake.read(RECORD_PATH))["buckets"])


def test_a_new_lake_records_each_kinds_own_count_and_later_workers_read_it(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    assert BucketCounts(lake).resolve(list(ENTITY_KINDS)) == {
        source: kind.buckets for source, kind in ENTITY_KINDS.items()
    }
    assert _record(lake) == {source: kind.buckets for source, kind in ENTITY_KINDS.items()}
    assert {kind.buckets for kind in ENTITY_KINDS.values()} == {256, 512}
    assert BucketCounts(lake, override=64).resolve(["mobile", "users"]) == {"mobile": 512, "users": 256}


def test_state_buckets_sets_every_sources_count_of_a_new_deployment(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    assert BucketCounts(lake, override=64).resolve(list(ENTITY_KINDS)) == dict.fromkeys(ENTITY_KINDS, 64)


def test_the_new_source_default_applies_to_new_sources_only(tmp_path: Path) -> None:
    """What Terraform sets on Azure Storage (8,192) must not move a source that landed before the record."""
    lake = LocalLake(tmp_path)
    lake.create("_landing/mobile/mobile+0.json", b"{}")
    counts = BucketCounts(lake, new_sources=8192).resolve(["mobile", "sensors"])
    assert counts == {"mobile": BEFORE_THE_RECORD, "sensors": 8192}
    assert BucketCounts(LocalLake(tmp_path), override=64, new_sources=8192).of("users") == 64


@pytest.mark.parametrize(("override", "expected"), [(None, BEFORE_THE_RECORD), (16, 16)])
def test_a_source_that_landed_before_the_record_keeps_the_count_its_state_is_in(
    tmp_path: Path, override: int | None, expected: int
) -> None:
    lake = LocalLake(tmp_path)
    lake.create("_landing/mobile/mobile+0.json", b"{}")
    lake.create("_landing/orders/orders+0.json", b"{}")
    counts = BucketCounts(lake, override).resolve(["mobile", "users"])
    assert counts == {"mobile": expected, "users": override or 256}  # users never landed: it is new
    assert _record(lake) == counts


def test_a_keyed_sources_count_is_recorded_before_its_first_landing_even_with_state_off(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    context = context_for(SOURCES["mobile"], lake, settings={"MOBILE_STATE_ENABLED": "false"})
    outcome = asyncio.run(handle_batch_with_state(context, records_for(SOURCES["mobile"], 20), None, StateJoiner()))
    assert outcome.landed == 20 and lake.list_paths("_landing/mobile")
    assert _record(lake) == {"mobile": 512}  # so turning state on later does not take it for older state
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 512


def test_a_source_the_record_does_not_name_is_added_and_the_others_are_left_as_recorded(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 1024}}))
    assert BucketCounts(lake).resolve(["mobile", "users"]) == {"mobile": 1024, "users": 256}
    assert _record(lake) == {"mobile": 1024, "users": 256}


def test_workers_racing_to_record_agree_on_the_first_record_written(tmp_path: Path) -> None:
    class Racing(LocalLake):
        """Another worker (STATE_BUCKETS=8) writes its record between this worker's read and write."""

        raced = False

        def write_if(self, path: str, data: bytes, version: str | None) -> str:
            if not self.raced:
                self.raced = True
                BucketCounts(LocalLake(tmp_path), override=8).of("mobile")
            return super().write_if(path, data, version)

    lake = Racing(tmp_path)
    assert lake.raced is False
    assert BucketCounts(lake).of("mobile") == 8
    assert lake.raced and _record(lake) == {"mobile": 8}


def test_a_damaged_record_is_a_clear_error_not_a_new_layout(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, b'{"buckets": {"mobile": "many"}}')
    with pytest.raises(LakeError, match="not a record of bucket counts"):
        BucketCounts(lake).of("mobile")
    assert lake.read(RECORD_PATH) == b'{"buckets": {"mobile": "many"}}'


def test_a_worker_reads_a_full_record_once_per_lake(tmp_path: Path) -> None:
    class Counting(LocalLake):
        reads = 0

        def read_versioned(self, path: str) -> tuple[bytes, str] | None:
            self.reads += 1
            return super().read_versioned(path)

    BucketCounts(LocalLake(tmp_path)).resolve(list(ENTITY_KINDS))
    lake = Counting(tmp_path)
    counts = bucket_counts(lake)
    assert [counts.of("mobile"), counts.of("users"), bucket_counts(lake).of("sensors")] == [512, 256, 512]
    assert lake.reads == 1 and bucket_counts(lake) is counts


def test_processing_signals_the_buckets_the_lake_records(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 16}}))

    gateway = RecordingGateway()
    context = context_for(SOURCES["mobile"], lake)
    asyncio.run(handle_batch_with_state(context, records_for(SOURCES["mobile"], 200), gateway, StateJoiner()))
    assert gateway.signalled and all(key.endswith("of16") for key in gateway.signalled)
    assert len(gateway.signalled) <= 16


def test_a_migration_is_recorded_only_over_the_n_it_moved_from(tmp_path: Path) -> None:
    from shared.state.bucket_counts import record_migrated

    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4, "users": 256}}))
    assert record_migrated(lake, "mobile", 3, 4) is None and _record(lake)["mobile"] == 3
    assert record_migrated(lake, "mobile", 5, 4) == 3  # another run moved it from 4 first: left as it is
    assert record_migrated(lake, "clickstream", 8, 4) == 0  # the record names no N for it
    assert _record(lake) == {"mobile": 3, "users": 256}


def test_run_tokens_grow_across_machines_whatever_their_clocks_and_stay_above_a_completed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.state import bucket_counts as counts
    from shared.state.bucket_counts import RUNS_PATH, next_run, record_migrated

    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    monkeypatch.setattr(counts.time, "time_ns", lambda: 2_000)  # a clock ahead
    first = next_run(lake)
    monkeypatch.setattr(counts.time, "time_ns", lambda: 1_000)  # another machine, behind
    second = next_run(lake)
    assert first == 2_000 and second == 2_001
    assert next_run(lake, after=5_000) == 5_001  # above what the target buckets name
    assert record_migrated(lake, "mobile", 3, 4, run=9_000) is None  # a run recorded complete
    assert next_run(lake) == 9_001
    assert orjson.loads(lake.read(RUNS_PATH))["completed"] == {"mobile": 9_000}


@pytest.mark.parametrize("new_sources", [None, 8192])
def test_a_lost_record_does_not_silently_move_a_source_that_landed_to_other_buckets(
    tmp_path: Path, new_sources: int | None
) -> None:
    """A review's case: a lake whose record is absent but which has landing ledgers was taken for one from before
    the record and given 1,024 buckets (or STATE_BUCKETS), written as the record, although its state was in the N
    the lost record named (here 4,096, after a move): every key 404'd and counts restarted. The runs record shows a
    record existed, so the source is refused, naming the file and what to do, and nothing is written."""
    from shared.errors import ConfigurationError
    from shared.state.bucket_counts import RUNS_PATH, record_migrated

    lake = LocalLake(tmp_path)
    recorded = BucketCounts(lake, new_sources=new_sources).of("users")  # recorded before the first landing
    lake.create("_landing/users/users+0.json", b"{}")  # ... which then landed (its ledger)
    assert record_migrated(lake, "users", 4096, recorded) is None  # and was moved to 4,096 later (docs/scale.md)
    lake.delete(RECORD_PATH)  # the record is lost (a restore of the lake without it, an operator's delete)
    with pytest.raises(ConfigurationError, match=r"_state/buckets\.json is absent, but this lake had one") as refused:
        BucketCounts(LocalLake(tmp_path), new_sources=new_sources).of("users")
    assert RUNS_PATH in str(refused.value) and 'docs/scale.md, "If the record is lost"' in str(refused.value)
    assert isinstance(refused.value, LakeError)  # reported as a damaged record is: processing waits, the API 503s
    assert not lake.exists(RECORD_PATH), "nothing recorded: no N taken for users"
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"users": 4096}}))  # what the operator restores
    assert BucketCounts(LocalLake(tmp_path), new_sources=new_sources).of("users") == 4096


def test_a_lost_record_still_gives_a_source_that_never_landed_its_own_count(tmp_path: Path) -> None:
    """Only a source that landed has state in some N: one that never landed is new wherever the record went."""
    from shared.state.bucket_counts import RUNS_PATH, next_run

    lake = LocalLake(tmp_path)
    next_run(lake)  # a migration ran: the runs record exists
    assert lake.exists(RUNS_PATH) and not lake.exists(RECORD_PATH)
    assert BucketCounts(lake).of("users") == 256


def test_a_lost_record_still_refuses_a_landed_source_after_a_new_source_settled_first(tmp_path: Path) -> None:
    """A review's case: ``RecordLost`` was checked only while the record was empty. After the loss, the first
    source to settle was one that never landed (a new source's first batch, ``GET /api/state`` for it): it wrote a
    record naming itself alone, and a source that landed then took 1,024 silently, its state in the lost N."""
    from shared.errors import ConfigurationError
    from shared.state.bucket_counts import record_migrated

    lake = LocalLake(tmp_path)
    recorded = BucketCounts(lake).of("users")  # recorded before the first landing
    lake.create("_landing/users/users+0.json", b"{}")  # users landed
    assert record_migrated(lake, "users", 4096, recorded) is None  # moved to 4,096 (writes the runs record)
    lake.delete(RECORD_PATH)  # the record is lost

    # After the restart, the first worker to settle is a source that never landed (its own N: correct).
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 512
    # Then users' worker: its state is in 4,096 buckets; the lost record must still be reported.
    with pytest.raises(ConfigurationError, match="is absent, but this lake had one"):
        BucketCounts(LocalLake(tmp_path)).of("users")


def test_a_record_written_after_a_loss_keeps_refusing_every_landed_source_it_does_not_name(tmp_path: Path) -> None:
    """Users never moved (the runs record does not name it), so what shows its record was lost is the record a new
    source wrote in the lake that had lost one: it keeps saying so (``lost``), through other sources' writes and
    moves, until a person writes the record."""
    from shared.state.bucket_counts import LOST, RUNS_PATH, RecordLost, record_migrated

    lake = LocalLake(tmp_path)
    assert BucketCounts(lake).resolve(["mobile", "users"]) == {"mobile": 512, "users": 256}
    lake.create("_landing/mobile/mobile+0.json", b"{}")
    lake.create("_landing/users/users+0.json", b"{}")
    assert record_migrated(lake, "mobile", 1024, 512, run=7) is None  # mobile moved: the runs record names it only
    lake.delete(RECORD_PATH)

    assert BucketCounts(LocalLake(tmp_path)).of("sensors") == 512  # never landed: new, wherever the record went
    assert orjson.loads(lake.read(RECORD_PATH)) == {"buckets": {"sensors": 512}, LOST: [RUNS_PATH]}
    assert BucketCounts(LocalLake(tmp_path)).of("clickstream") == 256  # another new one: the mark is kept
    assert record_migrated(lake, "sensors", 1024, 512) is None  # and so it is by a move
    assert orjson.loads(lake.read(RECORD_PATH))[LOST] == [RUNS_PATH]
    for landed in ("users", "mobile"):
        with pytest.raises(RecordLost, match=rf"the _state/buckets\.json that named {landed} is absent") as refused:
            BucketCounts(LocalLake(tmp_path)).of(landed)
        assert "names ['clickstream', 'sensors']" in str(refused.value)
    assert _record(lake) == {"sensors": 1024, "clickstream": 256}, "nothing recorded for a landed source"

    restored = {"mobile": 1024, "users": 256, "sensors": 1024, "clickstream": 256}
    lake.write_if(RECORD_PATH, orjson.dumps({"buckets": restored}), lake.read_versioned(RECORD_PATH)[1])
    assert BucketCounts(LocalLake(tmp_path)).resolve(list(restored)) == restored


def test_a_record_that_does_not_name_a_source_a_migration_moved_refuses_it(tmp_path: Path) -> None:
    """The runs record names the sources migrations moved, which only a record naming them allows: a record without
    one of them (written by hand, or by a version that did not mark a record written after a loss) lost it."""
    from shared.state.bucket_counts import RecordLost, record_migrated

    lake = LocalLake(tmp_path)
    BucketCounts(lake).of("users")
    lake.create("_landing/users/users+0.json", b"{}")
    assert record_migrated(lake, "users", 4096, 256, run=3) is None
    lake.write_if(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 512}}), lake.read_versioned(RECORD_PATH)[1])
    with pytest.raises(RecordLost, match=r"_state/migration_runs\.json names users: a migration moved it"):
        BucketCounts(LocalLake(tmp_path)).of("users")


def test_a_source_that_landed_before_the_record_is_not_taken_for_lost_once_another_source_moved(
    tmp_path: Path,
) -> None:
    """The documented upgrade: a lake from before the record (ledgers, nothing under ``_state/``) records N as each
    source first settles. A move of one of them writes the runs record; one that settles only later (its processing
    idle until then) still has its state in the old default's buckets, and takes them."""
    from shared.state.bucket_counts import RUNS_PATH, record_migrated

    lake = LocalLake(tmp_path)
    lake.create("_landing/mobile/mobile+0.json", b"{}")
    lake.create("_landing/users/users+0.json", b"{}")
    assert BucketCounts(lake).of("mobile") == BEFORE_THE_RECORD
    assert record_migrated(lake, "mobile", 512, BEFORE_THE_RECORD, run=5) is None and lake.exists(RUNS_PATH)
    assert BucketCounts(LocalLake(tmp_path)).of("users") == BEFORE_THE_RECORD
    assert orjson.loads(lake.read(RECORD_PATH)) == {"buckets": {"mobile": 512, "users": BEFORE_THE_RECORD}}


def test_a_migration_record_whose_write_answer_was_lost_counts_as_recorded_with_its_run(tmp_path: Path) -> None:
    """A review's case: the record's conditional write took effect, its answer was lost, and the SDK's retry got 412
    (WriteConflict); read again, the record named the new N (its own write), which was taken for another run's
    move: the tool reported the move incomplete (exit 1) and the run and the export's digest were never recorded, so
    the same export could be imported again."""
    from shared.state.bucket_counts import RUNS_PATH, imported, record_migrated
    from tests.unit.shared.landing.fault_world import FaultLake

    lake = FaultLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"sensors": 4}}))
    write = 2  # read the record, then write it
    lake.arm(fail_at=write, kind="lost_conflict")
    assert record_migrated(lake, "sensors", 8, 4, run=7_000, export="digest-1") is None
    assert lake.calls[write - 1][0] == "write_if" and _record(lake) == {"sensors": 8}
    lake.disarm()
    assert orjson.loads(lake.read(RUNS_PATH))["completed"] == {"sensors": 7_000}
    assert imported(lake, "sensors", "digest-1")


def test_a_source_an_import_moved_is_refused_when_the_record_loses_it(tmp_path: Path) -> None:
    """A record rewritten without a source an import moved would give that source the default N silently: its
    state would start over."""
    lake = LocalLake(tmp_path)
    n = BucketCounts(lake).of("users")
    lake.create("_landing/users/users+0.json", b"{}")
    assert record_migrated(lake, "users", n * 2, n, export="digest") is None
    found = lake.read_versioned(RECORD_PATH)
    assert found is not None
    lake.write_if(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 512}}), found[1])
    with pytest.raises(RecordLost):
        BucketCounts(LocalLake(tmp_path)).of("users")


def test_a_run_completed_below_the_last_token_does_not_lower_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run tokens come from the clock: one behind must still get a token above every one handed out."""
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    monkeypatch.setattr(bucket_counts_module.time, "time_ns", lambda: 1_000)
    assert next_run(lake) == 1_000
    assert record_migrated(lake, "mobile", 3, 4, run=5) is None
    monkeypatch.setattr(bucket_counts_module.time, "time_ns", lambda: 0)
    assert next_run(lake) > 1_000
