"""Windows of the landing across a topic restart (incarnations) a review proved on 2026-12-06: a loss and two
doubles, each failing before the ledger stored where the restart showed and what the new life adopted
(``Ledger.seen_at``, ``Ledger.adopted``). Without a restart, the review's enumeration of faults and interleavings
found nothing (tests/faults/test_lake_call_faults.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from shared.layout import ledger_path
from shared.records import TopicPartition
from tests.unit.shared.landing.fault_world import World, check, life

OLD = life(40, seed=3, first_offset=20)  # the old life: offsets 20..59 (its log started at 20)
NEW = life(60, seed=4, shift_ms=1000)  # the topic re-created: offsets 0..59, other records


def test_a_removed_first_landing_of_a_new_life_hides_the_redelivery_above_the_restart(tmp_path: Path) -> None:
    """Removing the landing that first saw the restart forgets the new life's only fingerprints; the redelivery,
    matching the old life's fingerprint below the restart, was admitted whole as the old life (its records above
    the restart skipped as landed there: lost). It contradicts that life above the match, so it is not of it."""
    world = World(tmp_path)
    first = world.instance()
    world.deliver(first, OLD)
    world.deliver(first, NEW[0:15])  # below the old life's first offset: lands as the old life (documented)
    first.arm(fail_at=2, kind="transient")  # NEW[15:40] meets 20: restart seen, ledger names the files; then dies
    with contextlib.suppress(Exception):
        world.deliver_once(first, NEW[15:40])
    first.disarm()
    second = world.instance()  # the partition's next owner, from the committed offset 0 (commits lag landings)
    world.deliver(second, NEW[0:30])  # below the pending 15..39: waits out the dead holder's lease, removes it
    world.deliver(second, NEW[30:60])
    check(world, [OLD, NEW], "a removed first landing of a new life")


def test_a_redelivery_inside_a_new_life_landing_below_the_restart_lands_once(tmp_path: Path) -> None:
    """It touches no kept fingerprint, so it had no proof it landed before and landed again in the current life;
    the instance that saw the restart had read on from 0, so the new life adopted 0..18 then."""
    world = World(tmp_path)
    lake = world.instance()
    world.deliver(lake, OLD)
    world.deliver(lake, NEW[0:19])  # 0..18: below the old life's first offset, lands as the old life (documented)
    world.deliver(lake, NEW[19:40])  # meets 20: the restart is seen; 19..39 land in life 1
    other = world.instance()  # a rebalance: from the committed offset 0, the first batch cut shorter
    world.deliver(other, NEW[0:12])  # matches the old life's fingerprint at 0: skipped; offset 12 committed
    third = world.instance()  # another rebalance: from the committed offset 12, a batch of what was fetched
    world.deliver(third, NEW[12:18])  # 12..17: no fingerprint there
    check(world, [OLD, NEW[0:40]], "a redelivery inside a landing below the restart")


def test_fresh_records_below_before_seen_are_recorded_as_landed(tmp_path: Path) -> None:
    """``finish`` marked only [max(before_seen)+1, high] landed, so the fresh records below landed again."""
    world = World(tmp_path)
    lake = world.instance()
    world.deliver(lake, OLD)
    world.deliver(lake, NEW[5:15])  # the new life's group starts at 5 (moved): lands as the old life (documented)
    world.deliver(lake, NEW[15:40])  # meets the old life at 20: the restart is seen, lands as life 1
    world.deliver(lake, NEW[0:30])  # rewound to 0: 5..14 skipped (before_seen), 0..4 land in life 1
    world.deliver(lake, NEW[2:30])  # redelivered from a committed offset 2: 2..4 land again
    check(world, [OLD, NEW[0:40]], "fresh records below before_seen")


def test_a_ledger_written_before_the_restart_point_was_stored_keeps_its_inferred_point(tmp_path: Path) -> None:
    """As above, on a ledger the previous version wrote (no ``seen_at``, no ``adopted``): the point is inferred from
    the life's first landed range, then stored before records below it land in the life."""
    world = World(tmp_path)
    lake = world.instance()
    world.deliver(lake, OLD)
    world.deliver(lake, NEW[5:15])
    world.deliver(lake, NEW[15:40])
    ledger_file = tmp_path / ledger_path("mobile", TopicPartition("mobile", 0))
    stored = orjson.loads(ledger_file.read_bytes())
    assert (stored.pop("seen_at"), stored.pop("adopted")) == (15, [[5, 14]])
    ledger_file.write_bytes(orjson.dumps(stored))
    upgraded = world.instance()
    world.deliver(upgraded, NEW[0:30])
    assert orjson.loads(ledger_file.read_bytes())["seen_at"] == 15
    world.deliver(world.instance(), NEW[2:30])
    check(world, [OLD, NEW[0:40]], "an upgraded ledger across a restart")
