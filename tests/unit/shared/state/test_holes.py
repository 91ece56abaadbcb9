"""Offsets a consumer group was moved over count once when a rewind lands them, however long after.

A bucket keeps at most ``KEPT_RANGES`` applied ranges per partition and closes its oldest gaps first. The offsets a
move of the group passed over are such a gap; closed, the events a later rewind lands there would be dropped. Each
part carries its ledger's holes (``Ledger.holes``), and a bucket never closes a gap that meets one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.landing.ledger import KEPT_HOLES, Ledger
from shared.offset_ranges import add
from shared.records import KafkaRecord
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.buckets import bucket_index, bucket_key
from shared.state.lookups import StateJoiner
from shared.state.offsets import APPLIED, KEPT_RANGES
from tests.conftest import context_for
from tests.unit.shared.conftest import ApplyingGateway, device_events, device_tap

SETTINGS = {"STATE_BUCKETS": "2"}
SPARSE, BUSY = "device-0", "device-1"  # buckets 0 and 1 of 2


def _deliver(lake: LocalLake, gateway: ApplyingGateway, records: list[KafkaRecord]) -> int:
    context = context_for(SOURCES["mobile"], lake, settings=SETTINGS)
    return asyncio.run(handle_batch_with_state(context, records, gateway, StateJoiner())).landed


def _moved_over_then_sparse(tmp_path: Path, gateway: ApplyingGateway, rounds: int) -> int:
    """Offsets 0..9 land (the sparse device at 5); a new worker starts at 100 (10..99 passed over), and the sparse
    device's bucket is signalled every other batch, ``rounds`` times, each time with a gap. Returns rows landed."""
    assert bucket_index(SPARSE, 2) != bucket_index(BUSY, 2)
    landed = _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE if o == 5 else BUSY) for o in range(10)])
    worker, offset = LocalLake(tmp_path), 100
    for _ in range(rounds):
        landed += _deliver(worker, gateway, [device_tap(offset, SPARSE), device_tap(offset + 1, BUSY)])
        landed += _deliver(worker, gateway, [device_tap(offset + 2, BUSY), device_tap(offset + 3, BUSY)])
        offset += 4
    return landed


@pytest.mark.parametrize("rounds", [KEPT_RANGES + 8, 3 * KEPT_RANGES])
def test_events_a_group_move_passed_over_count_once_when_a_rewind_lands_them(tmp_path: Path, rounds: int) -> None:
    gateway = ApplyingGateway()
    _moved_over_then_sparse(tmp_path, gateway, rounds)
    assert _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE) for o in range(10, 100)]) == 90  # never landed
    assert device_events(gateway)[SPARSE] == 1 + rounds + 90
    assert _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE) for o in range(10, 100)]) == 0  # redelivered
    assert device_events(gateway)[SPARSE] == 1 + rounds + 90, "a redelivery of the rewind counts nothing again"


def test_a_gap_never_rewound_stays_open_and_the_buckets_ranges_stay_bounded(tmp_path: Path) -> None:
    gateway = ApplyingGateway()
    _moved_over_then_sparse(tmp_path, gateway, 3 * KEPT_RANGES)
    for text in gateway.states.values():
        (ranges,) = orjson.loads(text)[APPLIED].values()
        assert ranges[:2] == [[0, 9], [100, ranges[1][1]]], "the moved-over gap 10..99 is still open"
        assert len(ranges) <= KEPT_RANGES + KEPT_HOLES


def test_a_gap_that_meets_a_hole_stays_open_and_the_others_close_oldest_first() -> None:
    ranges = [[0, 0], [2, 2], [4, 4], [6, 6]]
    assert add(ranges, 8, 8, limit=3) == [[0, 4], [6, 6], [8, 8]]
    assert add(ranges, 8, 8, limit=3, keep_open=[[1, 1]]) == [[0, 0], [2, 4], [6, 6], [8, 8]]
    # the kept gap takes no newer gap's place: without keep_open only the oldest gap (1) closes, with it none
    assert add(ranges, 8, 8, limit=4) == [[0, 2], [4, 4], [6, 6], [8, 8]]
    assert add(ranges, 8, 8, limit=4, keep_open=[[1, 1]]) == [*ranges, [8, 8]]
    assert add(ranges, 8, 8, limit=3, keep_open=[[1, 1], [3, 3], [5, 5], [7, 7]]) == [*ranges, [8, 8]]


def test_a_ledgers_holes_are_the_newest_gaps_between_its_landed_ranges() -> None:
    ledger = Ledger()
    for low in range(0, 40, 4):
        ledger.mark_landed(low, low + 1)
    assert ledger.holes(0) == [[low + 2, low + 3] for low in range(0, 36, 4)][-KEPT_HOLES:]
    ledger.mark_landed(2, 39)
    assert ledger.holes(0) == []


def test_a_stored_ledgers_pending_landing_counts_as_landed_for_its_holes() -> None:
    """A stored ledger names its last batch as pending until the partition's next ``begin``: the gap below it is a
    hole already."""
    from shared.landing.ledger import Pending

    ledger = Ledger()
    ledger.mark_landed(0, 2)
    ledger.pending = Pending(100, 102, [], "owner", 0, incarnation=0)
    assert ledger.holes(0) == [[3, 99]]
    assert ledger.holes(1) == []


class HoldingGateway(ApplyingGateway):
    """Applies signals at once, but keeps those of ``holding`` (a bucket key) back: Durable does not order
    signals, so one may reach its bucket after later ones."""

    def __init__(self) -> None:
        super().__init__()
        self.holding: str | None = None
        self.held: list[Signal] = []

    async def signal(self, signal: Signal) -> None:
        if signal.key == self.holding:
            self.held.append(signal)
            return
        await super().signal(signal)


def test_a_signal_overtaken_by_fewer_than_kept_ranges_signals_counts_with_a_hole_open(tmp_path: Path) -> None:
    """Offsets 0..9 land; the group moves on to 100 (10..99: a hole every part carries). The sparse device's
    signal of offset 104 reaches its bucket after 31 later signals of it (fewer than KEPT_RANGES): the bucket
    holds 33 ranges then. The kept hole must not take the place of the gap holding 104 (a review proved it did)."""
    assert bucket_index(SPARSE, 2) != bucket_index(BUSY, 2)
    gateway = HoldingGateway()
    _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE if o == 5 else BUSY) for o in range(10)])
    worker = LocalLake(tmp_path)
    _deliver(worker, gateway, [device_tap(100, SPARSE), device_tap(101, BUSY)])
    _deliver(worker, gateway, [device_tap(102, BUSY), device_tap(103, BUSY)])
    gateway.holding = bucket_key(bucket_index(SPARSE, 2), 2)
    _deliver(worker, gateway, [device_tap(104, SPARSE), device_tap(105, BUSY)])  # its signal is late
    gateway.holding = None
    assert len(gateway.held) == 1
    offset, later = 106, KEPT_RANGES - 1
    for _ in range(later):
        _deliver(worker, gateway, [device_tap(offset, BUSY), device_tap(offset + 1, BUSY)])
        _deliver(worker, gateway, [device_tap(offset + 2, SPARSE), device_tap(offset + 3, BUSY)])
        offset += 4
    asyncio.run(ApplyingGateway.signal(gateway, gateway.held[0]))  # the late signal arrives
    assert device_events(gateway)[SPARSE] == 1 + 1 + later + 1, "the late signal's event (offset 104) was dropped"


def test_commit_markers_a_consumer_passes_over_do_not_crowd_a_moves_hole_out_of_the_signals(tmp_path: Path) -> None:
    """Review 17: the offsets one consumer passes over (``passed_over``: a transaction's commit marker after each
    batch) shared the newest ``KEPT_HOLES`` slots with the ledger's gaps, so after eight batches a group move's hole
    was no longer signalled, the bucket closed it, and a rewind's events landed in raw/ but were never counted."""
    gateway = ApplyingGateway()
    _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE if o == 5 else BUSY) for o in range(10)])
    worker, offset, rounds = LocalLake(tmp_path), 100, KEPT_RANGES + 8  # a new worker at 100: 10..99 a hole
    for _ in range(rounds):  # each batch followed by a commit marker
        _deliver(worker, gateway, [device_tap(offset, SPARSE), device_tap(offset + 1, BUSY)])
        _deliver(worker, gateway, [device_tap(offset + 3, BUSY), device_tap(offset + 4, BUSY)])
        offset += 6
    assert _deliver(LocalLake(tmp_path), gateway, [device_tap(o, SPARSE) for o in range(10, 100)]) == 90
    assert device_events(gateway)[SPARSE] == 1 + rounds + 90
