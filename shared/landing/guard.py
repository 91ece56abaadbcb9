"""Exactly once per offset in the raw lake: each batch lands only what its partitions' ledgers lack.

One guard per lake client (so per worker process) keeps a ``PartitionLanding`` per partition
(``shared.landing.partition``: the protocol, its fencing and its lease). ``land_once`` lands a
batch one partition at a time, each through a ``PartitionLander``: admit, plan the fresh records'
files and begin (the one conditional ledger write), write, finish. A ledger write that loses to
another instance (a rebalance moved the partition, or a stale snapshot) drops the snapshot and the
partition is admitted again. Nothing is merged back into the batch: the report says what the
invocation's entity signals must make of records raw/ does not hold as this delivery sees them: rows no
encoder takes (``unencodable``) and rows an earlier delivery dead-lettered (``dead_lettered_before``) are left
out; records this delivery rejects that an earlier one landed as rows (``rejected_in_raw``) count as raw/ holds
them (``shared.landing.raw_rows``).
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TypeVar

import pyarrow.compute as pc

from shared.batch import PartitionBatch, ProcessedBatch
from shared.dead_letters import DeadLetter
from shared.errors import ConfigurationError, WriteConflict
from shared.formats import Format
from shared.lake.base import LakeStore
from shared.landing.files import DEADLETTER_FORMAT, LandingReport, LedgerHoles, PlannedFile, plan_files
from shared.landing.partition import (
    DEFAULT_LEASE_SECONDS,
    Admission,
    Begun,
    PartitionLanding,
    PartitionWaiting,
    Written,
    minimum_lease_seconds,
    new_owner,
    wall_clock,
)
from shared.layout import (
    DEADLETTER_AREA,
    HOUR_MS,
    batch_file_name,
    hour_directory,
    hour_start_ms,
    parse_batch_file_name,
)
from shared.records import KafkaRecord, OffsetSpan, TopicPartition

T = TypeVar("T")
log = logging.getLogger("streamingpoc.landing")
__all__ = ["DEFAULT_LEASE_SECONDS", "LandingGuard", "PartitionWaiting", "guard_for", "land_once"]
ATTEMPTS = 3  # a batch admitted again after a lost ledger write; more conflicts fail it and the trigger retries
# What one landing's records may carry (their values' bytes), so its data files stay small enough that each is
# written in one short request (docs/reliability.md: the lease bounds a holder's requests). Kafka batches of the
# usual record sizes stay far below it; a batch of large records lands in parts.
LANDING_MAX_BYTES = 32 * 1024 * 1024
# How many files one landing may write: it names them in the ledger and sends them one request at a time within its
# lease, and a retry checks each is there before it writes on. A batch whose rows fall in many hours (a backfill,
# producer clocks far apart: 10,000 records, 10,000 hourly files) lands in parts of at most this many, so each part's
# requests fit in a lease; in one landing, a retry's checks alone outlasted the lease and the partition stalled.
LANDING_MAX_FILES = 64


class LandingGuard:
    """The partition landings of one lake client; their ledgers outlive invocations."""

    def __init__(
        self, lake: LakeStore, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, clock: Callable[[], float] = wall_clock
    ) -> None:
        if lease_seconds < minimum_lease_seconds(lake):
            raise ConfigurationError(
                f"LANDING_LEASE_SECONDS={lease_seconds:g} is shorter than this lake allows: at least "
                f"{minimum_lease_seconds(lake):g} s (two of its longest requests, {lake.max_request_seconds:g} s "
                "each with retries, and the clock skew allowed between instances)"
            )
        self.lake = lake
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.owner = new_owner()
        self._partitions: dict[tuple[str, TopicPartition], PartitionLanding] = {}

    def partition(self, source: str, where: TopicPartition) -> PartitionLanding:
        landing = self._partitions.get((source, where))
        if landing is None:
            landing = self._partitions[(source, where)] = PartitionLanding(
                self.lake, source, where, owner=self.owner, lease_seconds=self.lease_seconds
            )
            landing.clock = lambda: self.clock()
        return landing


_guards: weakref.WeakKeyDictionary[LakeStore, LandingGuard] = weakref.WeakKeyDictionary()


def guard_for(lake: LakeStore, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> LandingGuard:
    """The guard of ``lake``: one per lake client, so its ledgers outlive invocations."""
    guard = _guards.get(lake)
    if guard is None:
        guard = _guards[lake] = LandingGuard(lake, lease_seconds=lease_seconds)
    return guard


def land_once(
    lake: LakeStore,
    batch: ProcessedBatch,
    fmt: Format,
    *,
    now_ms: int,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> LandingReport:
    """Land what of ``batch`` the lake does not hold yet, one partition at a time."""
    guard = guard_for(lake, lease_seconds)
    report = LandingReport()
    for part in batch:
        report += land_partition(guard.partition(part.source.name, part.topic_partition), part, fmt, now_ms)
    return report


def land_partition(landing: PartitionLanding, part: PartitionBatch, fmt: Format, now_ms: int) -> LandingReport:
    """Land one partition's batch; admitted again when another instance moved its ledger. A batch that crosses
    the point where the partition's offsets restarted lands as two, each in its own life; so does a batch whose
    values carry more than ``LANDING_MAX_BYTES``, or whose files would be more than ``LANDING_MAX_FILES``, halves
    landed one after the other, until each is small."""
    cut = size_cut(part.records)
    if cut is None:
        cut = files_cut(part)
    if cut is not None:
        return _land_split(landing, part, cut, fmt, now_ms)
    for attempt in range(ATTEMPTS):
        split = landing.split_at(part.records)  # on every attempt: a lost write means the ledger moved
        if split is not None:
            return _land_split(landing, part, split, fmt, now_ms)
        lander = PartitionLander(landing, part, fmt, now_ms)
        try:
            lander.admit()
            lander.begin()
            lander.write()
            return lander.finish()
        except WriteConflict:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _land_split(landing: PartitionLanding, part: PartitionBatch, cut: int, fmt: Format, now_ms: int) -> LandingReport:
    """Land ``part`` below offset ``cut``, then from it; ``part`` takes the lives its two parts landed in."""
    below = part.select({record.offset for record in part.records if record.offset < cut})
    above = part.select({record.offset for record in part.records if record.offset >= cut})
    report = land_partition(landing, below, fmt, now_ms) + land_partition(landing, above, fmt, now_ms)
    part.take_lives([below, above])
    return report


def size_cut(records: Sequence[KafkaRecord]) -> int | None:
    """Where to cut a batch of one partition whose values carry more than ``LANDING_MAX_BYTES``: the offset that
    starts its second half by bytes. None for a batch within it, or of one record."""
    total = sum(len(record.value or b"") for record in records)  # every batch: the sort is only for large ones
    if total <= LANDING_MAX_BYTES or len(records) < 2:
        return None
    sizes = sorted((record.offset, len(record.value or b"")) for record in records)
    running = 0
    for (_, size), (next_offset, _) in pairwise(sizes):
        running += size
        if 2 * running >= total:
            return next_offset
    return sizes[-1][0]


def files_cut(part: PartitionBatch) -> int | None:
    """Where to cut a batch of one partition whose landing would write more than ``LANDING_MAX_FILES`` files: the
    offset that starts its second half by records. None for a batch within it (each record is in one file at most)."""
    if len(part.records) <= LANDING_MAX_FILES or _files_at_most(part) <= LANDING_MAX_FILES:
        return None
    offsets = sorted(record.offset for record in part.records)
    return offsets[len(offsets) // 2]


def _files_at_most(part: PartitionBatch) -> int:
    """The raw and dead-letter files landing ``part`` writes at most: a file per hour of its rows' landing times, and
    one per Kafka hour of its dead letters (``shared.landing.files``)."""
    letter_files = len({hour_start_ms(letter.record.timestamp_ms or 0) for letter in part.dead_letters})
    return _row_hours(part, LANDING_MAX_FILES - letter_files) + letter_files


def _row_hours(part: PartitionBatch, within: int) -> int:
    """The hours of ``part``'s rows; when the hours from its earliest to its latest are at most ``within`` (a
    batch's rows are seconds apart), those, an upper bound that decides the same without a pass per row."""
    if part.table is not None:
        if part.table.num_rows == 0:
            return 0
        times = part.table.column("_event_time")
        earliest, latest = (scalar.value for scalar in pc.min_max(times).values())
    else:
        if not part.rows:
            return 0
        times = [row["_event_time"] for row in part.rows]
        earliest, latest = min(times), max(times)
    spanned = (hour_start_ms(latest) - hour_start_ms(earliest)) // HOUR_MS + 1
    if spanned <= within:
        return spanned
    if isinstance(times, list):
        return len({hour_start_ms(time) for time in times})
    return int(pc.count_distinct(pc.floor_temporal(times, unit="hour")).as_py())


class PartitionLander:
    """One partition's batch through its ``PartitionLanding``, a step at a time (``land_partition`` runs them)."""

    def __init__(self, landing: PartitionLanding, part: PartitionBatch, fmt: Format, now_ms: int) -> None:
        self.landing, self.part, self.fmt, self.now_ms = landing, part, fmt, now_ms
        self._admission: Admission | None = None
        self._begun: Begun | None = None
        self._written: Written | None = None
        self._unencodable: tuple[DeadLetter, ...] = ()
        self._dead_lettered_before: tuple[KafkaRecord, ...] = ()
        self._rejected_in_raw: tuple[DeadLetter, ...] = ()
        self._replanned = False  # an unfinished landing was planned again from these rows

    def admit(self) -> None:
        part = self.part
        admission = self.landing.admit(part.records, self._plan_pending)
        relabelled = self._replanned or admission.before_seen or part.earlier  # by an earlier step, or to be
        if admission.incarnation != part.incarnation or relabelled:
            earlier = {admission.incarnation - 1: admission.before_seen} if admission.before_seen else None
            part.set_incarnation(admission.incarnation, earlier)
        self._admission = admission

    def begin(self) -> None:
        """Plan the files of the fresh records, then name them in the ledger."""
        admission = self._require(self._admission, "admit")
        part, fresh = self.part, admission.fresh
        if fresh is not None and len(fresh) < len(part.records):
            landed = part.select(_landed(part, fresh))
            found = {id(record) for record in dead_lettered_before(self.landing.lake, landed)}
            self._dead_lettered_before = tuple(origin for origin in landed.origins if id(origin) in found)
            self._rejected_in_raw = tuple(letter for letter in landed.dead_letters if id(letter.record) not in found)
            part = part.select(fresh)
        plan = plan_files(part, self.fmt, now_ms=self.now_ms, incarnation=admission.incarnation)
        self._unencodable = plan.unencodable
        self._begun = self.landing.begin(admission, plan.files)

    def write(self) -> None:
        self._written = self.landing.write(self._require(self._begun, "begin"))

    def finish(self) -> LandingReport:
        written = self._require(self._written, "write")
        self.landing.finish(written)
        admission = written.begun.admission
        skipped = len(self.part.records) - admission.fresh_count(len(self.part.records))
        report = admission.repaired or LandingReport()
        where, life = self.landing.where, admission.incarnation
        ranges = tuple((low, high) for low, high in self.landing.holes(life))
        holes = LedgerHoles(where.topic, where.partition, life, ranges)
        return report + dataclasses.replace(
            written.report,
            skipped=skipped,
            unencodable=self._unencodable,
            dead_lettered_before=self._dead_lettered_before,
            rejected_in_raw=self._rejected_in_raw,
            holes=(holes,),
        )

    def _plan_pending(self, offsets: frozenset[int], incarnation: int) -> list[PlannedFile]:
        """An unfinished landing's files planned again from this batch's records at ``offsets``."""
        inside = self.part.select(offsets)
        self._replanned = True
        if incarnation != inside.incarnation:
            inside.set_incarnation(incarnation)
        return list(plan_files(inside, self.fmt, now_ms=self.now_ms, incarnation=incarnation).files)

    @staticmethod
    def _require(step: T | None, before: str) -> T:
        if step is None:
            raise RuntimeError(f"a landing step ran before {before}()")
        return step


def dead_lettered_before(lake: LakeStore, landed: PartitionBatch) -> tuple[KafkaRecord, ...]:
    """The records of ``landed`` (a redelivered batch's records whose offsets landed before: its rows and its dead
    letters) that an earlier delivery landed as dead letters. raw/ holds the others as rows, whatever this delivery
    made of them: a setting, the model, the registry or the lake format may answer otherwise now. A row of this
    delivery that was dead-lettered then must not reach an entity (``tools.redrive`` sends it again); a record this
    delivery rejects that landed as a row then counts from raw/ (``shared.landing.raw_rows``). Found in the
    dead-letter files of their Kafka hours, named after the landing that wrote them; a file gone (retention) counts
    as no dead letter.
    """
    records = [*landed.origins, *(letter.record for letter in landed.dead_letters)]
    if not records:
        return ()
    where = landed.topic_partition
    lives = {offset: life for life, offsets in landed.earlier.items() for offset in offsets}
    wanted = {(lives.get(record.offset, landed.incarnation), record.offset): record for record in records}
    found: list[KafkaRecord] = []
    for hour in sorted({hour_start_ms(record.timestamp_ms or 0) for record in records}):
        for path in lake.list_paths(hour_directory(DEADLETTER_AREA, landed.source.name, hour)):
            file = parse_batch_file_name(path)
            if file is None or not any(
                life == file.incarnation and file.first <= offset <= file.last for life, offset in wanted
            ):
                continue
            if path.rpartition("/")[2] != batch_file_name(
                where, OffsetSpan(file.first, file.last), file.incarnation, DEADLETTER_FORMAT.extension
            ):
                continue  # another partition's, or not a landing's (entity_rejected, reprocessed)
            found_file = lake.read_versioned(path)  # a failure to read (an outage, a 403) fails the batch
            if found_file is None:
                continue  # gone since the listing
            try:
                rows = DEADLETTER_FORMAT.decode(found_file[0])
            except Exception as error:  # damaged: its records count as landed, as if the file were not read
                log.warning("dead-letter file %s unreadable (%s); its records are taken as landed", path, error)
                continue
            for row in rows:
                offset = row.get("_offset")
                origin = wanted.pop((int(row.get("_incarnation") or 0), -1 if offset is None else int(offset)), None)
                if origin is not None:
                    found.append(origin)
    return tuple(found)


def _landed(part: PartitionBatch, fresh: frozenset[int]) -> set[int]:
    return {record.offset for record in part.records if record.offset not in fresh}
