"""Windows of the landing across a topic restart (incarnations). A review on 2026-12-06 proved a loss and two
doubles, before the ledger stored where the restart showed and what the new life adopted (``Ledger.seen_at``,
``Ledger.adopted``); one double stays open (strict xfail). A review of that change proved two losses its first
version added (a third life; a skipped batch adopted). Without a restart, the review's enumeration of faults and
interleavings found nothing (tests/faults/test_lake_call_faults.py)."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from shared.layout import ledger_path
from shared.records import KafkaRecord, TopicPartition
from tests.unit.shared.landing.fault_world import FaultLake, World, check, life

OLD = life(40, seed=3, first_offset=20)  # the old life: offsets 20..59 (its log started at 20)
NEW = life(60, seed=4, shift_ms=1000)  # the topic re-created: offsets 0..59, other records


def deliver_all(world: World, lake: FaultLake, *batches: list[KafkaRecord]) -> None:
    for batch in batches:
        world.deliver(lake, batch)


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


@pytest.mark.xfail(strict=True, reason="open: a redelivery with no evidence of its life lands (docs/reliability.md)")
def test_a_redelivery_inside_a_new_life_landing_below_the_restart_lands_once(tmp_path: Path) -> None:
    """It touches no kept fingerprint and follows no batch of its instance, so nothing says which life it is: the
    new life adopted 0..18 (the instance that saw the restart had read on from 0), but skipping it on that guess
    would lose a life not seen yet (``test_a_third_life_below_where_the_second_showed_lands``). It lands again."""
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


def test_a_redelivery_below_the_restart_after_many_small_landings_lands_once(tmp_path: Path) -> None:
    """The new life's first records land as the old life in small batches, each taking a fingerprint, more than
    the ledger keeps of a life (``KEPT_PREVIOUS_FINGERPRINTS``). When the restart shows, every fingerprint below it
    must be kept with the old life: the first offset of each of those batches may be redelivered alone, and only
    its fingerprint proves it landed. Keeping only the usual few landed offset 1 twice (a mutation run's gap,
    found by a fuzz of 1,500 schedules: 14 doubled)."""
    world = World(tmp_path)
    lake = world.instance()
    world.deliver(lake, OLD)
    for first, end in ((0, 1), (1, 3), (3, 4), (4, 6), (6, 7), (7, 8), (8, 9), (9, 11), (11, 12), (12, 16)):
        world.deliver(lake, NEW[first:end])  # below the old life's first offset: lands as the old life (documented)
    world.deliver(lake, NEW[12:21])  # redelivered from 12, meets 20: the restart is seen
    world.deliver(lake, NEW[1:2])  # the group rewound to 1
    check(world, [OLD, NEW[0:21]], "a redelivery below the restart after many small landings")


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


def test_an_older_peers_rewrite_without_the_restart_point_does_not_land_records_twice(tmp_path: Path) -> None:
    """A version from before ``seen_at`` (a peer during a rolling deploy) rewrites the ledger with its own fields: no
    ``seen_at``, ``adopted``, ``timestamps_ms`` or ``format``, ``previous`` as stored. Inferred from what landed since,
    the restart point was 0 and 5..14 landed again; the life before's ``next_life`` copy restores it."""
    world = World(tmp_path)
    lake = world.instance()
    deliver_all(world, lake, OLD, NEW[5:15], NEW[15:40], NEW[0:30])
    ledger_file = tmp_path / ledger_path("mobile", TopicPartition("mobile", 0))
    stored = orjson.loads(ledger_file.read_bytes())
    old_version = {name: value for name, value in stored.items() if name not in OLD_VERSION_DROPS}
    assert set(stored) - set(old_version) == OLD_VERSION_DROPS
    ledger_file.write_bytes(orjson.dumps(old_version))
    world.deliver(world.instance(), NEW[2:30])
    check(world, [OLD, NEW[0:40]], "an older peer's rewrite")


OLD_VERSION_DROPS = {"seen_at", "adopted", "timestamps_ms", "format"}


def test_a_ledger_written_before_the_restart_point_was_stored_keeps_its_inferred_point(tmp_path: Path) -> None:
    """As above, on a ledger the previous version wrote (no ``seen_at``, no ``adopted``): the point is inferred from
    the life's first landed range, then stored before records below it land in the life."""
    world = World(tmp_path)
    lake = world.instance()
    deliver_all(world, lake, OLD, NEW[5:15], NEW[15:40])
    ledger_file = tmp_path / ledger_path("mobile", TopicPartition("mobile", 0))
    stored = orjson.loads(ledger_file.read_bytes())
    assert (stored.pop("seen_at"), stored.pop("adopted")) == (15, [[5, 14]])
    assert stored["previous"][-1].pop("next_life") == {"incarnation": 1, "seen_at": 15, "adopted": [[5, 14]]}
    ledger_file.write_bytes(orjson.dumps(stored))
    upgraded = world.instance()
    world.deliver(upgraded, NEW[0:30])
    assert orjson.loads(ledger_file.read_bytes())["seen_at"] == 15
    world.deliver(world.instance(), NEW[2:30])
    check(world, [OLD, NEW[0:40]], "an upgraded ledger across a restart")


THIRD = life(30, seed=5, shift_ms=2000)  # the topic re-created again: offsets 0..29


def test_a_third_life_below_where_the_second_showed_lands(tmp_path: Path) -> None:
    """Life 1 adopted 0..14; the topic is recreated again. Life 2's first batch touches none of life 1's own
    fingerprints but contradicts life 1's record at 0 (adopted: life 0's fingerprint there is life 1's): it is a
    new life, not life 1's adopted records skipped as landed (lost)."""
    world = World(tmp_path)
    lake = world.instance()
    deliver_all(world, lake, OLD, NEW[0:15], NEW[15:40])
    world.deliver(lake, THIRD[0:10])
    world.deliver(lake, THIRD[10:30])
    check(world, [OLD, NEW[0:40], THIRD], "a third life")


def test_a_batch_found_landed_is_not_adopted_by_the_life_that_shows_next(tmp_path: Path) -> None:
    """The new life's group starts at 25: [25..34] touch no fingerprint and are taken for the old life, whose
    records there are landed: skipped. The restart shows at 59. The new life adopts only what the instance's
    batches landed, not what they found landed, so the rewind to 25 lands its records (adopted, they were lost).
    Counted twice in state: the skipped batch's signal counted them under the old life (docs/reliability.md)."""
    world = World(tmp_path)
    lake = world.instance()
    deliver_all(world, lake, OLD, NEW[25:35], NEW[35:60])
    world.deliver(world.instance(), NEW[25:35])
    check(world, [OLD, NEW[25:60]], "a batch found landed", counts=False)


def test_a_later_life_taken_for_the_current_one_below_where_it_showed_is_no_evidence_of_it(tmp_path: Path) -> None:
    """Life 1 adopted 0..14. The topic is recreated again and life 2's [5..9] touch no fingerprint: taken for life 1
    (nothing tells them apart), they land there. A batch matching those records is no evidence of life 1 for its
    adopted offsets: [6..11] and [0..7] land their records, none skipped as adopted (seeds of a review's sweep
    lost them so)."""
    world = World(tmp_path)
    lake = world.instance()
    deliver_all(world, lake, OLD, NEW[0:15], NEW[15:40])
    world.deliver(world.instance(), THIRD[5:10])
    world.deliver(world.instance(), THIRD[6:12])
    world.deliver(world.instance(), THIRD[0:8])
    world.deliver(world.instance(), THIRD[8:30])
    check(world, [OLD, NEW[0:40], THIRD], "a later life taken for the current one")


def test_a_new_life_starting_inside_the_old_lives_landed_offsets_at_no_fingerprint_lands(tmp_path: Path) -> None:
    """The topic re-created, its new consumer group starts at 30 (its log's first records gone by retention): 30..37
    touch neither of the old life's kept fingerprints (20 and 59), so they were taken for the old life and skipped
    as landed there (lost). Newer than every record the old life landed, they are not what landed there."""
    world = World(tmp_path)
    world.deliver(world.instance(), OLD)
    reader = world.instance()  # the new life's consumer
    deliver_all(world, reader, NEW[30:38], NEW[38:50], NEW[50:60])
    check(world, [OLD, NEW[30:60]], "a new life starting inside the old life's landed offsets")


LATER = life(100, seed=13, shift_ms=2000)  # re-created once more: offsets 0..99, other records, newer still


def test_a_batch_held_across_two_re_creations_is_not_taken_for_the_life_between(tmp_path: Path) -> None:
    """A holds a batch of the first life (a commit marker at 34) across two re-creations; the third life landed
    0..34. Older than every record the third life landed, it is not that life's, but nothing says it is the
    second's (older than that life's too): taken for the second, which landed 0..59, it was skipped whole (a
    review of the first version of the rule). It is taken for the current life, as before the rule: its records
    above 34 land; those below, at the third life's landed offsets, stay the documented open window."""
    world = World(tmp_path)
    holder, other = world.instance(), world.instance()
    world.deliver(holder, OLD[0:10])  # offsets 20..29
    deliver_all(world, other, NEW, LATER[0:35])
    held = [record for record in OLD[10:40] if record.offset != 34]
    world.deliver(holder, held)
    landed = {(row["_offset"], row["_kafka_timestamp"]) for row in world.raw()}
    above = {(r.offset, r.timestamp_ms) for r in held if r.offset > 34 and r.value != b"{not json"}
    assert above and above <= landed, f"lost {sorted(above - landed)}"


def _ticking(records: list[KafkaRecord]) -> list[KafkaRecord]:
    """A producer's clock moving on within a life: a later offset, a later timestamp."""
    for record in records:
        record.timestamp_ms = (record.timestamp_ms or 0) + record.offset
    return records


def _rows_once_in_lives(world: World, lives: int) -> None:
    """No record in raw/ twice, and no life the topic did not have (the weakest a window left open must keep)."""
    identities = Counter((row["_partition"], row["_offset"], row["_kafka_timestamp"]) for row in world.raw())
    assert not [identity for identity, count in identities.items() if count > 1], "records in raw/ twice"
    ledger = orjson.loads((world.root / ledger_path("mobile", TopicPartition("mobile", 0))).read_bytes())
    assert ledger["incarnation"] == lives - 1, f"a life the topic did not have: {ledger['incarnation']}"


@pytest.mark.parametrize("ticking", [False, True])
def test_a_held_batch_newer_than_the_next_life_with_clocks_gone_back_starts_no_life(
    tmp_path: Path, ticking: bool
) -> None:
    """The re-created topic's timestamps are older than the first life's (records replayed with their original
    times, a producer's clock behind). A batch of the first life held across the re-creation is newer than every
    record the second life landed. Taken for a next life (the rule's first two versions, in reviews), it started a
    life that does not exist and a redelivery of the second life landed twice. The lives' clocks out of order, the
    timestamps prove nothing: it is taken for the current life, as before them (its records lost: the window
    docs/reliability.md keeps open)."""
    first, second = life(30, seed=21, shift_ms=5000), life(40, seed=22)
    if ticking:
        first, second = _ticking(first), _ticking(second)
    world = World(tmp_path)
    holder, other = world.instance(), world.instance()
    world.deliver(holder, first[0:10])
    world.deliver(other, second[0:20])  # the restart is seen at 0
    world.deliver(holder, first[10:15])  # held across the re-creation
    world.deliver(other, second[20:30])
    world.deliver(world.instance(), second[5:26])  # a rebalance: redelivered from an earlier committed offset
    _rows_once_in_lives(world, 2)


def test_a_held_batch_newer_than_a_life_whose_life_before_landed_before_the_upgrade_starts_no_life(
    tmp_path: Path,
) -> None:
    """As above, with the first life landed by a version that kept no timestamps (a review's case): the second
    life's are kept, the first's are not known, so nothing is proved."""
    first, second = life(30, seed=21, shift_ms=5000), life(40, seed=22)
    world = World(tmp_path)
    holder, other = world.instance(), world.instance()
    world.deliver(holder, first[0:10])
    _as_written_by_a_version_without_timestamps(world)
    world.deliver(other, second[0:20])
    world.deliver(holder, first[10:15])
    world.deliver(other, second[20:30])
    world.deliver(world.instance(), second[5:26])
    _rows_once_in_lives(world, 2)


def _as_written_by_a_version_without_timestamps(world: World) -> None:
    """Such a version reads a ledger ignoring top-level fields it does not know, and writes those it knows."""
    path = world.root / ledger_path("mobile", TopicPartition("mobile", 0))
    stored = orjson.loads(path.read_bytes())
    stored.pop("timestamps_ms", None)
    path.write_bytes(orjson.dumps(stored))


def test_a_batch_held_across_two_re_creations_newer_than_the_current_life_starts_no_life(tmp_path: Path) -> None:
    """Lives at T, T+2s and T-1s (a clock back at the second re-creation). A batch of the first life held across
    both, newer than the third life, was taken for a fourth (a review); its landed variant, the retry of what had
    landed, lost nothing before the rule and landed twice with it."""
    lives = life(30, seed=61), life(30, seed=62, shift_ms=2000), life(40, seed=63, shift_ms=-1000)
    for retried in (slice(20, 30), slice(12, 19)):
        world = World(tmp_path / str(retried.start))
        holder, other = world.instance(), world.instance()
        world.deliver(holder, lives[0][0:20])
        deliver_all(world, other, lives[1], lives[2][0:35])  # two restarts, each seen at 0
        world.deliver(holder, lives[0][retried])  # held across both re-creations: no kept fingerprint touched
        world.deliver(world.instance(), lives[2][10:28])  # a rebalance: the third life redelivered
        _rows_once_in_lives(world, 3)


def test_a_rolling_upgrade_back_and_forth_starts_no_life(tmp_path: Path) -> None:
    """Lives at T, T+2s and T-1s; while the second is current an instance of the version before writes the ledger
    (its timestamps dropped; the next restart drops the entries' too). A redelivery of the second life, already
    landed, newer than the third's: its life before's timestamps are not known, so nothing is proved (a review
    found it starting a fourth life with the rule's second version)."""
    lives = life(30, seed=71), life(30, seed=72, shift_ms=2000), life(30, seed=73, shift_ms=-1000)
    world = World(tmp_path)
    world.deliver(world.instance(), lives[0][0:20])
    world.deliver(world.instance(), lives[1])
    world.deliver(world.instance(), lives[1][0:10])
    _as_written_by_a_version_without_timestamps(world)
    world.deliver(world.instance(), lives[2])
    world.deliver(world.instance(), lives[1][12:18])  # the second life redelivered (a commit lost), landed
    world.deliver(world.instance(), lives[2][5:21])
    check(world, [lives[0][0:20], *lives[1:]], "a rolling upgrade back and forth", counts=False)


def test_a_third_life_between_the_first_twos_clocks_is_not_taken_for_the_first(tmp_path: Path) -> None:
    """Lives at T, T+2s and T+1s; the third's consumer starts at 20, its batch missing the second life's kept
    fingerprint at 29 (a commit marker). Older than the second life, it was taken for the first (a review) and
    skipped where that life landed, and its consumer's next batch with it. Nothing tells: the current life, as
    before, so what the second life never landed (30 on) lands."""
    lives = life(60, seed=41), life(30, seed=42, shift_ms=2000), life(60, seed=43, shift_ms=1000)
    world = World(tmp_path)
    world.deliver(world.instance(), lives[0])
    world.deliver(world.instance(), lives[1])
    reader = world.instance()
    world.deliver(reader, [record for record in lives[2][20:36] if record.offset != 29])
    world.deliver(reader, lives[2][36:50])
    landed = {(row["_offset"], row["_kafka_timestamp"]) for row in world.raw()}
    wanted = {(r.offset, r.timestamp_ms) for r in lives[2][30:50] if r.offset != 29 and r.value != b"{not json"}
    assert wanted <= landed, f"lost {sorted(wanted - landed)}"


def test_a_held_batch_of_a_life_two_back_with_clocks_back_then_on_starts_no_life(tmp_path: Path) -> None:
    """Lives at T+5s, T and T+2s (a clock back at the first re-creation, on at the second: a sweep's seed). A batch
    of the first life, landed, retried in the third: newer than the third life's records, and the second life's
    are older than the third's, but the first life's are newer than the second's. Checking the last two lives
    alone took it for a fourth life and landed it twice; every kept life's order is checked, so nothing is
    proved and it is skipped as landed, as before the rule."""
    first = life(23, seed=81, first_offset=29, shift_ms=5000)
    second, third = life(63, seed=82), life(82, seed=83, shift_ms=2000)
    world = World(tmp_path)
    holder = world.instance()
    world.deliver(holder, first)
    other = world.instance()
    deliver_all(world, other, second[0:3], second[3:63])  # 0..2 land as the first life; the restart shows at 29
    world.deliver(world.instance(), third)  # the restart shows at 0
    world.deliver(holder, first[7:17])  # 36..45, landed in the first life, retried
    _rows_once_in_lives(world, 3)
    check(world, [first, second, third], "a held batch of a life two back", counts=False)


def test_a_held_unlanded_tail_of_the_first_life_newer_than_the_second_starts_no_life(tmp_path: Path) -> None:
    """The first life's timestamps run 100 ms an offset past the second life's (event times, a clock a little
    behind): what the first life landed is older than the second's, but its held, never landed tail is newer.
    Taken for a next life (a review of d781616), it started one, and a redelivery of the second life started
    another and landed twice. It sits at no offset the first life landed, so nothing proves it is not that
    life's: the current life, as before the rule (its records lost: the documented window)."""
    first, second = life(30, seed=21), life(40, seed=22, shift_ms=1000)
    for record in first:
        record.timestamp_ms = (record.timestamp_ms or 0) + 100 * record.offset
    world = World(tmp_path)
    holder, other = world.instance(), world.instance()
    world.deliver(holder, first[0:10])
    world.deliver(other, second[0:20])  # the restart is seen at 0
    world.deliver(holder, first[11:15])  # held across the re-creation: newer than all the second life landed
    world.deliver(other, second[20:30])
    world.deliver(world.instance(), second[10:18])  # a rebalance: redelivered
    _rows_once_in_lives(world, 2)


@pytest.mark.parametrize("seed", [*range(20), 154, 211, 392])  # the last three doubled records before 6537c16's rule
def test_any_schedule_of_a_new_life_starting_below_the_old_one_lands_each_record_once(
    tmp_path: Path, seed: int
) -> None:
    """A property over random schedules: the new life's first records, below the old life's first offset, land one
    or two at a time as the old life (documented), by one to three instances; then batches cut anywhere, each
    following the last or redelivered from an earlier start, up to offset 18, 29, 39 or 59 (all but the first past
    the restart, which shows at 20); then, mostly, a new instance redelivers from one of those starts. Every record
    lands once and the entities count each once.
    1,500 seeds of this landed each record once (2026-12-07; 400 checked with counts too); without the rule of the
    test above, 14 of the 1,500 doubled a record."""
    rng = random.Random(seed)
    world = World(tmp_path)
    instances = [world.instance() for _ in range(rng.randint(1, 3))]
    world.deliver(instances[0], OLD)
    top, below = rng.choice([19, 30, 40, 60]), rng.randint(9, 19)
    starts, first = [0], 0
    while first < below:
        end = min(below, first + rng.randint(1, 2))
        world.deliver(rng.choice(instances), NEW[first:end])
        starts.append(first)
        first = end
    delivered = below - 1
    for _ in range(60):
        if delivered >= top - 1:
            break
        first = delivered + 1 if rng.random() < 0.6 else rng.choice(starts)
        last = min(top - 1, first + rng.randint(0, 12))
        starts.append(first)
        world.deliver(rng.choice(instances), NEW[first : last + 1])
        delivered = max(delivered, last)
    if rng.random() < 0.7:
        world.deliver(world.instance(), NEW[rng.choice(starts) : top])
    check(world, [OLD, NEW[0:top]], f"schedule {seed}")


@pytest.mark.xfail(strict=True, reason="open: a batch held across a restart takes the current life (reliability)")
def test_a_batch_held_across_a_restart_does_not_double_the_new_life_below_it(tmp_path: Path) -> None:
    """A fuzz's witness (2026-12-07: 11 of 500 schedules with a held old-life batch doubled records, 11 lost some).
    The held batch (38..41 of the old life) follows its instance's last batch, but another instance wrote the ledger
    since, so it takes the current life and lands there. The new life's own 38..39 then contradict it and start a
    third life, and a redelivery from 0 lands the valid records of 0..12 again: they landed as the old life and were
    adopted by the second, and nothing of the third life's ledger proves them landed. Telling the held batch from the
    new life needs the landed records' content (``test_races.py``, a batch held across a restart)."""
    world = World(tmp_path)
    holder, other = world.instance(), world.instance()
    world.deliver(holder, OLD[0:18])  # 20..37
    deliver_all(world, other, NEW[0:13], NEW[13:22], NEW[22:32])  # the restart is seen at 20
    world.deliver(holder, OLD[18:22])  # 38..41, held across the re-creation
    deliver_all(world, other, NEW[0:4], NEW[32:40])
    world.deliver(world.instance(), NEW[0:40])  # a rebalance: redelivered from 0
    check(world, [OLD[0:22], NEW[0:40]], "a batch held across a restart, then a redelivery", counts=False)
