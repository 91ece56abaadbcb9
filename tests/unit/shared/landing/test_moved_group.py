"""A consumer group moved under a live process: the offsets it passed over are never taken for recordless.

A processor put out of its group (a batch retried past ``maxPollIntervalMs``) is no member while its process lives
on, so ``tools.reconcile --move-group-to-time --apply`` moves the group; when it rejoins, its next batch starts at
the offset moved to. ``shared.reconcile.mark_moves`` writes that offset into the ledger before the move
(``Ledger.moved_to``), so the offsets between its last batch and that one stay open, and a later rewind lands them
(docs/reliability.md, "Offsets that hold no record"). From a review: before, a rewind to them landed nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from shared.errors import UnreadableLakeFile, WriteConflict
from shared.lake import LocalLake
from shared.landing.guard import guard_for
from shared.landing.ledger import KEPT_MOVES, KEPT_PASSED_OVER, Ledger
from shared.layout import ledger_path
from shared.reconcile import MARK_ATTEMPTS, Move, mark_moves
from shared.records import TopicPartition
from shared.state.bucket_counts import RECORD_PATH
from tests.conftest import records_for
from tests.unit.shared.landing.conftest import CLICKS, land_clicks, landed_positions

pytestmark = pytest.mark.usefixtures("batch_form")
WHERE = TopicPartition("clickstream", 0)


def _move(lake: LocalLake, target: int, source: str = "clickstream", partition: int = 0) -> list[TopicPartition]:
    """What ``tools.reconcile --move-group-to-time --apply`` writes before it moves the group's offsets."""
    return mark_moves(lake, source, [Move(WHERE.topic, partition, None, target, "search")])


def _landed(lake: LocalLake) -> list[list[int]]:
    return guard_for(lake).partition("clickstream", WHERE).snapshot()["landed"]


def _stored(root: Path, source: str = "clickstream", partition: int = 0) -> dict[str, object]:
    return orjson.loads((root / ledger_path(source, TopicPartition(WHERE.topic, partition))).read_bytes())


@pytest.mark.parametrize(
    "memory",
    [
        "of a batch landed before the move",  # the mark's write makes it stale: its next write loses, it forgets
        "of a batch read before the move, landed after its mark",  # the retried batch: only the mark tells
        "of the partition's first batch, read before the move, landed after its mark",  # no ledger when marked
    ],
)
def test_a_group_moved_forward_under_a_live_process_then_rewound_lands_the_skipped_records(
    tmp_path: Path, memory: str
) -> None:
    records = records_for(CLICKS, 100)
    worker = LocalLake(tmp_path)  # one process, alive throughout
    if memory.startswith("of a batch landed before"):
        assert land_clicks(worker, records[:10]) == 10
        assert _move(LocalLake(tmp_path), 50) == [WHERE]
    elif memory.startswith("of a batch read before"):
        assert land_clicks(worker, records[:5]) == 5
        assert _move(LocalLake(tmp_path), 50) == [WHERE]
        assert land_clicks(worker, records[5:10]) == 5  # its retry, after the move: its memory is of 5-9
    else:
        LocalLake(tmp_path).write_if(RECORD_PATH, orjson.dumps({"buckets": {"clickstream": 64}}), None)
        assert _move(LocalLake(tmp_path), 50) == [WHERE]  # its N is recorded: an instance may be landing it
        assert land_clicks(worker, records[:10]) == 10
    assert land_clicks(worker, records[50:60]) == 10  # after rejoining: the group was moved forward to 50
    assert land_clicks(worker, records[60:70]) == 10
    assert _landed(worker) == [[0, 9], [50, 69]], "the offsets passed over by the move were taken for recordless"
    restarted = LocalLake(tmp_path)  # the rewind done properly: processor stopped, a new process
    assert land_clicks(restarted, records[10:50]) == 40, "the rewind to the skipped records landed nothing"
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(70)]


@pytest.mark.parametrize("rewound_by", ["the same process", "a new process"])
def test_offsets_a_live_process_jumped_over_without_a_mark_are_landed_by_a_rewind(
    tmp_path: Path, rewound_by: str
) -> None:
    """Review 17: a group moved by another tool (no mark), or a consumer's own offset reset after retention, looks to
    the live process like offsets with no record. Recorded as landed, a rewind to them landed nothing: the records
    were lost. They keep the ledger one range, but are ``passed_over``: holes for the entities, and a rewind lands
    them."""
    records = records_for(CLICKS, 100)
    worker = LocalLake(tmp_path)
    assert land_clicks(worker, records[:10]) == 10
    assert land_clicks(worker, records[50:60]) == 10  # moved to 50 by another tool while it lived on
    assert _landed(worker) == [[0, 59]]
    assert _stored(tmp_path)["passed_over"] == [[10, 49]]
    assert guard_for(worker).partition("clickstream", WHERE).holes(0) == [[10, 49]]
    rewinder = worker if rewound_by == "the same process" else LocalLake(tmp_path)
    assert land_clicks(rewinder, records[10:50]) == 40, "the rewind to the passed-over records landed nothing"
    assert land_clicks(rewinder, records[0:60]) == 0, "nothing twice"
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(60)]
    assert "passed_over" not in _stored(tmp_path), "landed now: passed over no more"


def test_commit_markers_passed_over_after_a_jump_do_not_push_it_out(tmp_path: Path) -> None:
    """Review 17: with a commit marker after each of 8 later transactions, the jump's range was the oldest of 9
    passed-over ranges and was dropped, so the rewind landed nothing. One-offset ranges (markers) go first."""
    records = records_for(CLICKS, 200)
    worker = LocalLake(tmp_path)
    assert land_clicks(worker, records[:10]) == 10
    assert land_clicks(worker, records[50:60]) == 10  # moved to 50 by another tool while it lived on
    offset = 61  # 60: a commit marker
    for _ in range(2 * KEPT_PASSED_OVER):
        assert land_clicks(worker, records[offset : offset + 5]) == 5
        offset += 6  # each transaction: 5 records and its marker
    assert _stored(tmp_path)["passed_over"][0] == [10, 49]
    assert land_clicks(LocalLake(tmp_path), records[10:50]) == 40, (
        "the rewind to the passed-over records landed nothing"
    )


def test_a_ledger_keeps_its_newest_passed_over_ranges_and_round_trips_them() -> None:
    ledger = Ledger(landed=[[0, 9]])
    assert "passed_over" not in ledger.to_json(), "none: written as before"
    for start in range(20, 20 + 20 * (KEPT_PASSED_OVER + 2), 20):
        ledger.pass_over(start - 10, start - 1, 0)
        ledger.mark_landed(start, start + 9)
    assert len(ledger.passed_over) == KEPT_PASSED_OVER and ledger.passed_over[-1] == [190, 199]
    assert ledger.landed == [[0, 209]] and not ledger.is_landed(195) and ledger.is_landed(205)
    again = Ledger.from_json(orjson.loads(orjson.dumps(ledger.to_json())))
    assert again == ledger
    with pytest.raises(ValueError, match="passed_over"):
        Ledger.from_json(ledger.to_json() | {"passed_over": [[5, 1]]})


def test_offsets_with_no_record_after_a_move_are_still_recorded_with_the_batch(tmp_path: Path) -> None:
    """Only a gap that reaches an offset moved to stays open: the batches read on from it keep one range."""
    records = records_for(CLICKS, 100)
    worker = LocalLake(tmp_path)
    assert land_clicks(worker, records[:10]) == 10
    _move(LocalLake(tmp_path), 50)
    assert land_clicks(worker, records[50:60]) == 10
    marker = [dataclasses.replace(record, offset=record.offset + 1) for record in records[60:70]]  # 60: no record
    assert land_clicks(worker, marker) == 10
    assert _landed(worker) == [[0, 9], [50, 70]]


def test_a_move_back_below_the_memory_leaves_later_gaps_recordless(tmp_path: Path) -> None:
    """A rewind's offset is below what the consumer reads next: no gap ends at it, and none is kept open for it."""
    records = records_for(CLICKS, 100)
    worker = LocalLake(tmp_path)
    assert land_clicks(worker, records[:20]) == 20
    _move(LocalLake(tmp_path), 10)
    assert land_clicks(worker, records[10:20]) == 0  # read again from 10: nothing twice
    shifted = [dataclasses.replace(record, offset=record.offset + 1) for record in records[20:30]]  # 20: no record
    assert land_clicks(worker, shifted) == 10
    assert _landed(worker) == [[0, 30]]
    assert _stored(tmp_path)["moved_to"] == [10]


def test_a_ledger_with_moves_round_trips_and_one_without_reads_as_before() -> None:
    ledger = Ledger(landed=[[0, 9]], fingerprints={9: "ab"})
    old = ledger.to_json()
    assert "moved_to" not in old, "a ledger never moved is written as older versions wrote it"
    assert Ledger.from_json(old) == ledger and Ledger.from_json(old).moved_to == []
    ledger.moved(50)
    ledger.moved(20)
    ledger.moved(50)  # the newest last, once
    assert ledger.moved_to == [20, 50]
    again = Ledger.from_json(orjson.loads(orjson.dumps(ledger.to_json())))
    assert again == ledger and again.moved_to == [20, 50]
    assert ledger.next_incarnation().moved_to == [20, 50], "a move is of the partition, whatever its life"
    for offset in range(100, 100 + 2 * KEPT_MOVES):
        ledger.moved(offset)
    assert ledger.moved_to == list(range(100 + KEPT_MOVES, 100 + 2 * KEPT_MOVES))


@pytest.mark.parametrize("moved_to", ["50", [True], [1.5], {"0": 1}])
def test_a_ledger_whose_moves_are_not_offsets_is_not_read(moved_to: object) -> None:
    with pytest.raises(ValueError, match="moved_to"):
        Ledger.from_json({"incarnation": 0, "moved_to": moved_to})


def test_between_an_offset_moved_to_and_a_batch() -> None:
    ledger = Ledger(moved_to=[50])
    assert ledger.moved_between(9, 50) and ledger.moved_between(9, 60) and ledger.moved_between(49, 51)
    assert not ledger.moved_between(50, 60) and not ledger.moved_between(9, 49)


def test_a_partition_with_no_ledger_gets_one_only_when_that_cannot_change_its_states_buckets(tmp_path: Path) -> None:
    """Nothing of a keyed source was processed while the lake's record of bucket counts does not name it: no
    instance holds a memory of it, and a ledger would make its state start in the old default's buckets."""
    lake = LocalLake(tmp_path)
    assert _move(lake, 50) == [] and not (tmp_path / "_landing").exists()
    assert _move(lake, 50, source="orders") == [WHERE], "a source without keyed state: nothing to change"
    assert _stored(tmp_path, "orders") == {**Ledger.first().to_json(), "moved_to": [50]}
    lake.write_if(RECORD_PATH, orjson.dumps({"buckets": {"users": 64}}), None)
    assert _move(lake, 50) == [], "the record names other sources only"
    lake.write_if(RECORD_PATH, orjson.dumps({"buckets": {"clickstream": 64}}), lake.read_versioned(RECORD_PATH)[1])
    assert _move(lake, 50) == [WHERE]
    (tmp_path / RECORD_PATH).unlink()
    assert _move(lake, 40, partition=1) == [TopicPartition(WHERE.topic, 1)], "another partition of it has a ledger"
    assert _stored(tmp_path)["moved_to"] == [50] and _stored(tmp_path, partition=1)["moved_to"] == [40]


def test_a_ledger_landing_writes_keep_changing_or_that_cannot_be_read_stops_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LocalLake(tmp_path)
    assert land_clicks(lake, records_for(CLICKS, 10)) == 10
    stored = _stored(tmp_path)
    calls = []

    def losing(path: str, data: bytes, version: str | None) -> str:
        calls.append(path)
        raise WriteConflict(path)

    monkeypatch.setattr(lake, "write_if", losing)
    with pytest.raises(WriteConflict):
        _move(lake, 50)
    assert len(calls) == MARK_ATTEMPTS and _stored(tmp_path) == stored
    monkeypatch.undo()
    (tmp_path / ledger_path("clickstream", WHERE)).write_bytes(b'{"incarnation": "0"}')
    with pytest.raises(UnreadableLakeFile):
        _move(lake, 50)


def test_a_mark_lost_to_a_landing_is_written_on_the_ledger_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark is conditional on the version read, like every ledger write: it never overwrites a landing's."""
    records = records_for(CLICKS, 20)
    lake = LocalLake(tmp_path)
    assert land_clicks(lake, records[:10]) == 10
    real = lake.write_if
    raced = []

    def landing_first(path: str, data: bytes, version: str | None) -> str:
        if not raced:
            raced.append(land_clicks(LocalLake(tmp_path), records[10:20]))  # another instance, between read and write
        return real(path, data, version)

    monkeypatch.setattr(lake, "write_if", landing_first)
    assert _move(lake, 50) == [WHERE]
    stored = _stored(tmp_path)
    assert raced == [10] and stored["moved_to"] == [50]
    assert stored["pending"]["low"] == 10, "the landing's write was kept"  # type: ignore[index]
