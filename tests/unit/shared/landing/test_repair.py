"""An unfinished landing repaired by the next attempt holds each record once: only the offsets it was begun
with are planned again, and only files planned with the same records in each are completed; otherwise the
landing is removed and landed again (after its holder's lease), never completed with files that disagree."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from shared.batch import process_batch
from shared.errors import LakeUnavailable
from shared.formats import decode
from shared.lake import LocalLake
from shared.landing.files import LandingReport
from shared.landing.guard import LandingGuard, land_partition
from shared.landing.partition import DEFAULT_LEASE_SECONDS, PartitionWaiting
from shared.layout import ledger_path
from shared.records import KafkaRecord, TopicPartition
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.landing.conftest import CLICKS, PARQUET


class FailingLake(LocalLake):
    """A worker's lake client whose create fails once, after ``fail_after`` creates (an outage)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail_after: int | None = None

    def create(self, path: str, data: bytes) -> bool:
        if self.fail_after == 0:
            self.fail_after = None
            raise LakeUnavailable("outage")
        if self.fail_after is not None:
            self.fail_after -= 1
        return super().create(path, data)


def _clicks(count: int, not_json: set[int] = frozenset()) -> list[KafkaRecord]:  # type: ignore[assignment]
    records = records_for(CLICKS, count, seed=1)
    for record in records:
        record.timestamp_ms = FIXED_NOW_MS
        if record.offset in not_json:
            record.value = b"{not json"
    return records


def _land(guard: LandingGuard, records: list[KafkaRecord], max_record_bytes: int = 1 << 20) -> LandingReport:
    (part,) = process_batch(CLICKS, records, max_record_bytes=max_record_bytes)
    return land_partition(guard.partition(CLICKS.name, part.topic_partition), part, PARQUET, FIXED_NOW_MS)


def _copies(root: Path) -> Counter[tuple[int, int]]:
    """How often each (incarnation, offset) is in raw/ or deadletter/."""
    files = [*root.glob("raw/**/*.parquet"), *root.glob("deadletter/**/[!.]*.gz")]
    fmt = {".parquet": "parquet", ".gz": "jsonl"}
    rows = [row for path in files for row in decode(fmt[path.suffix], path.read_bytes())]  # type: ignore[arg-type]
    return Counter((row["_incarnation"], row["_offset"]) for row in rows)


def test_a_landing_repaired_across_a_range_landed_before_does_not_land_that_range_again(tmp_path: Path) -> None:
    """The group was first placed at offset 5 (moved forward), then back to 0: the batch 0-20 has 5-9 landed."""
    records, clock = _clicks(21), [1_000_000.0]
    lake = FailingLake(tmp_path)
    guard = LandingGuard(lake, clock=lambda: clock[0])
    _land(guard, records[5:10])
    lake.fail_after = 0  # the first data file fails: the trigger retries the batch as it is
    with pytest.raises(LakeUnavailable):
        _land(guard, records)
    clock[0] += 1
    _land(guard, records)
    assert _copies(tmp_path) == Counter({(0, offset): 1 for offset in range(21)})


@pytest.mark.parametrize(("first", "second"), [(300, 1 << 20), (1 << 20, 300)], ids=["now-landed", "now-oversized"])
def test_a_landing_whose_records_are_classified_otherwise_on_repair_is_landed_again_whole(
    tmp_path: Path, first: int, second: int
) -> None:
    """A's raw file is written, its dead-letter file is not; B (other settings: MAX_RECORD_BYTES) plans the
    same paths with some records moved between them. Completing would lose or double them: B waits for
    A's lease, then removes A's files and lands the batch as it classifies it."""
    records, clock = _clicks(10, not_json={3}), [1_000_000.0]
    sizes = sorted(len(record.value or b"") for record in records if record.offset != 3)
    assert sizes[0] <= 300 < sizes[-1]  # some records are oversized at 300 bytes, none at 1 MiB
    a = FailingLake(tmp_path)
    a.fail_after = 1
    with pytest.raises(LakeUnavailable):
        _land(LandingGuard(a, clock=lambda: clock[0]), records, first)
    clock[0] += 1
    b = LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0])
    with pytest.raises(PartitionWaiting):
        _land(b, records, second)
    clock[0] += DEFAULT_LEASE_SECONDS
    _land(b, records, second)
    assert _copies(tmp_path) == Counter({(0, record.offset): 1 for record in records})


def _life(count: int, seed: int, shift_ms: int) -> list[KafkaRecord]:
    records = records_for(CLICKS, count, seed=seed)
    for record in records:
        record.timestamp_ms = FIXED_NOW_MS + shift_ms
    return records


def test_a_new_life_below_the_old_lifes_first_offset_redelivered_across_the_restart_lands_once(
    tmp_path: Path,
) -> None:
    """The old topic's log started at 5; the topic is recreated: 0-2 touch no fingerprint and land as the old
    life, 3-7 meet offset 5 and start the new one; a batch 0-7 redelivered must not land 0-2 again."""
    guard = LandingGuard(LocalLake(tmp_path), clock=lambda: 1_000_000.0)
    old, new = _life(10, seed=1, shift_ms=0), _life(10, seed=2, shift_ms=5000)
    for batch in (old[5:10], new[0:3], new[3:8], new[0:8]):
        _land(guard, batch)
    copies = _copies(tmp_path)
    assert sorted(offset for (_, offset), count in copies.items() for _ in range(count)) == sorted(
        [*range(8), *range(5, 10)]
    )


def test_a_new_life_read_from_later_on_still_lands_its_first_records_when_they_come(tmp_path: Path) -> None:
    """The counterpart: the new life's 0-2 were never read before its restart was seen (its group started at
    3). They match no fingerprint of the old life, which landed 0-9: they land, in the new life."""
    guard = LandingGuard(LocalLake(tmp_path), clock=lambda: 1_000_000.0)
    old, new = _life(10, seed=1, shift_ms=0), _life(10, seed=2, shift_ms=5000)
    for batch in (old[0:10], new[3:8], new[0:8]):
        _land(guard, batch)
    assert _copies(tmp_path) == Counter({**{(0, o): 1 for o in range(10)}, **{(1, o): 1 for o in range(8)}})


def test_a_landing_of_an_earlier_life_repaired_after_a_restart_is_recorded_in_that_life(tmp_path: Path) -> None:
    """A lands the old life's 0-19; the topic is recreated and B lands the new life's 0-9. A's held batch of the
    old life, 15-29 (it matches the old life's fingerprint at 19), lands 20-29 there, but its first file fails;
    A's retry completes the landing. Recorded as landed in the current life instead, 20-29 of the new life would
    be skipped as landed when B's next batch brings them: in no file."""
    clock = [1_000_000.0]
    old, new = _life(30, seed=1, shift_ms=0), _life(30, seed=2, shift_ms=5000)
    lake_a = FailingLake(tmp_path)
    a = LandingGuard(lake_a, clock=lambda: clock[0])
    b = LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0])
    _land(a, old[0:10])
    _land(a, old[10:20])
    _land(b, new[0:10])
    lake_a.fail_after = 0
    with pytest.raises(LakeUnavailable):
        _land(a, old[15:30])
    clock[0] += 1
    _land(a, old[15:30])  # the trigger's retry repairs the landing it began
    _land(b, new[10:30])
    assert _copies(tmp_path) == Counter({**{(0, o): 1 for o in range(30)}, **{(1, o): 1 for o in range(30)}})


def test_the_last_landing_before_an_idle_spell_keeps_its_dead_letters_after_raw_retention(tmp_path: Path) -> None:
    """``finish`` leaves the last landing pending; the lake's lifecycle deletes its raw file after
    raw_retention_days; the next batch, days later, must count it as landed, not delete its dead letters."""
    records, clock = _clicks(10, not_json={3}), [1_000_000.0]
    guard = LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0])
    _land(guard, records[0:5])
    for raw in tmp_path.glob("raw/**/*.parquet"):
        raw.unlink()  # the lifecycle rule
    clock[0] += 2 * 86_400
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), records[5:10])
    assert _copies(tmp_path) == Counter({(0, 3): 1, **{(0, offset): 1 for offset in range(5, 10)}})


def test_a_repaired_landing_reports_every_row_of_it_landed(tmp_path: Path) -> None:
    """The attempt that wrote part of a landing raised, so it reported nothing; its retry (the same instance)
    reported only the rows of the files it wrote, and the rest were counted by no one (a review's case: 66 of 300
    landed, every row in raw/). It reports the whole landing's rows and dead letters; the files are those it wrote.
    (Another instance completing a landing whose holder may still be writing reports only its own files.)"""
    records, clock = _clicks(6, not_json={5}), [1_000_000.0]
    for record in records:
        record.timestamp_ms = FIXED_NOW_MS - record.offset * 3_600_000  # hours apart: a file an hour
    lake = FailingLake(tmp_path)
    guard = LandingGuard(lake, clock=lambda: clock[0])
    lake.fail_after = 2  # two files written, then an outage: the trigger retries the batch as it is
    with pytest.raises(LakeUnavailable):
        _land(guard, records)
    clock[0] += 1
    report = _land(guard, records)
    assert (report.row_count, report.dead_letter_count) == (5, 1)
    assert len(report.files) == 3  # of the four raw files (two records share an hour) and the dead letters
    assert _copies(tmp_path) == Counter({(0, offset): 1 for offset in range(6)})


class AnswerLostLake(LocalLake):
    """A worker's lake client whose create after ``lose_after`` creates is written but its answer lost (an outage
    after the service committed it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lose_after: int | None = None

    def create(self, path: str, data: bytes) -> bool:
        written = super().create(path, data)
        if self.lose_after == 0:
            self.lose_after = None
            raise LakeUnavailable("the answer was lost")
        if self.lose_after is not None:
            self.lose_after -= 1
        return written


def test_a_landing_whose_every_file_was_written_before_its_attempt_raised_reports_every_row(tmp_path: Path) -> None:
    """Review 15: the attempt wrote every file, then lost the last answer and raised, so it reported nothing; its
    retry found no file missing and reported nothing either: the rows were counted by no one as landed."""
    records, clock = _clicks(6, not_json={5}), [1_000_000.0]
    lake = AnswerLostLake(tmp_path)
    guard = LandingGuard(lake, clock=lambda: clock[0])
    lake.lose_after = 1  # the raw file, then the dead letters' file: written, its answer lost
    with pytest.raises(LakeUnavailable):
        _land(guard, records)
    clock[0] += 1
    report = _land(guard, records)
    assert (report.row_count, report.dead_letter_count, report.files) == (5, 1, ())
    assert _copies(tmp_path) == Counter({(0, offset): 1 for offset in range(6)})


def test_a_landing_being_removed_whose_raw_files_are_gone_is_not_counted_landed(tmp_path: Path) -> None:
    """A remover deleted the raw file of a pending landing, then died before its dead letters: that landing's rows
    are in no raw file, so its redelivery must land them again, once."""
    records, clock = _clicks(10, not_json={3}), [1_000_000.0]
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), records[0:5])
    lake = LocalLake(tmp_path)
    path = ledger_path(CLICKS.name, TopicPartition(records[0].topic, 0))
    ledger = orjson.loads(lake.read(path))
    ledger["pending"]["removing"] = True
    lake.write_atomic(path, orjson.dumps(ledger))
    for raw in tmp_path.glob("raw/**/*.parquet"):
        raw.unlink()
    clock[0] += 3600  # the remover's lease is long gone
    guard = LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0])
    _land(guard, records[5:10])
    _land(guard, records[0:10])  # the redelivery brings 0..4 again
    assert _copies(tmp_path) == Counter({(0, offset): 1 for offset in range(10)})
