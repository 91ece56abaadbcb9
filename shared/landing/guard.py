"""Exactly once per offset in the raw lake: each batch lands only what its partitions' ledgers lack.

One guard per lake client (so per worker process) keeps a ``PartitionLanding`` per partition
(``shared.landing.partition``: the protocol, its fencing and its lease). ``land_once`` runs a
batch through them: admit every partition, plan its files, begin (the one conditional ledger
write per partition), write, finish. A ledger write that loses to another instance (a rebalance
moved the partition, or a stale snapshot) drops the snapshot and the batch is admitted again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import pyarrow as pa

from shared import formats
from shared.batch import ProcessedBatch
from shared.errors import ConfigurationError, WriteConflict
from shared.lake.base import LakeStore
from shared.landing.files import LandingReport, PlannedFile, landed_columns, plan_files
from shared.landing.isolation import encode_isolating
from shared.landing.ledger import Pending
from shared.landing.partition import (
    DEFAULT_LEASE_SECONDS,
    Admission,
    Begun,
    PartitionKey,
    PartitionLanding,
    PartitionWaiting,
    Written,
    minimum_lease_seconds,
    new_owner,
    wall_clock,
)
from shared.records import KafkaRecord
from shared.settings import LakeFormat

__all__ = ["DEFAULT_LEASE_SECONDS", "LandingGuard", "PartitionWaiting", "guard_for", "land_once"]
ATTEMPTS = 3  # a batch admitted again after a lost ledger write; more conflicts fail it and the trigger retries


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
        self._partitions: dict[PartitionKey, PartitionLanding] = {}

    def partition(self, source: str, topic: str, partition: int) -> PartitionLanding:
        key = (source, topic, partition)
        landing = self._partitions.get(key)
        if landing is None:
            landing = self._partitions[key] = PartitionLanding(
                self.lake, key, owner=self.owner, lease_seconds=self.lease_seconds, clock=lambda: self.clock()
            )
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
    records: Sequence[KafkaRecord],
    fmt: LakeFormat,
    *,
    now_ms: int,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> LandingReport:
    """Land what of ``batch`` the lake does not hold yet; admitted again when another instance moved a ledger."""
    guard = guard_for(lake, lease_seconds)
    for attempt in range(ATTEMPTS):
        try:
            return _land_once(guard, batch, records, fmt, now_ms)
        except WriteConflict:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _land_once(
    guard: LandingGuard, batch: ProcessedBatch, records: Sequence[KafkaRecord], fmt: LakeFormat, now_ms: int
) -> LandingReport:
    landing = BatchLanding(guard, batch, records, fmt, now_ms)
    landing.admit()
    landing.begin()
    landing.write()
    return landing.finish()


class BatchLanding:
    """One batch through its partitions' landings, a step at a time (``land_once`` runs them in order)."""

    def __init__(
        self, guard: LandingGuard, batch: ProcessedBatch, records: Sequence[KafkaRecord], fmt: LakeFormat, now_ms: int
    ) -> None:
        self.batch, self.fmt, self.now_ms = batch, fmt, now_ms
        self.partitions = _by_partition(records)
        self.landings = {position: guard.partition(batch.source.name, *position) for position in self.partitions}
        many = len(self.partitions) > 1
        self.parts = {position: _only(batch, position) if many else batch for position in self.partitions}
        self.admissions: dict[tuple[str, int], Admission] = {}
        self.begun: dict[tuple[str, int], Begun] = {}
        self.written: dict[tuple[str, int], Written] = {}

    def admit(self) -> None:
        for position, landing in self.landings.items():
            planner = _pending_planner(self.parts[position], position, self.fmt, self.now_ms)
            self.admissions[position] = landing.admit(self.partitions[position], planner)
        incarnations = {position: a.incarnation for position, a in self.admissions.items() if a.incarnation}
        if incarnations:
            self.batch.set_incarnations(incarnations)

    def begin(self) -> None:
        """Plan each partition's files from its fresh records, then name them in its ledger."""
        batch, fmt = self.batch, self.fmt
        incarnations = {position: a.incarnation for position, a in self.admissions.items() if a.incarnation}
        planned = {}
        for position, admission in self.admissions.items():
            part = self.parts[position]
            if admission.fresh is not None and len(admission.fresh) < len(self.partitions[position]):
                part = _fresh_only(part, admission.fresh)
            planning = _Planning(part)
            planned[position] = plan_files(part, fmt, now_ms=self.now_ms, incarnations=incarnations)
            if part is not batch:
                planning.move_unencodable(batch)
            if admission.fresh is not None:
                _drop_unencodable_landed(batch, position, admission.fresh, fmt)
        for position, admission in self.admissions.items():
            self.begun[position] = self.landings[position].begin(admission, planned[position])

    def write(self) -> None:
        for position, begun in self.begun.items():
            self.written[position] = self.landings[position].write(begun)

    def finish(self) -> LandingReport:
        for position, written in self.written.items():
            self.landings[position].finish(written)
        partitions = self.partitions
        skipped = sum(len(partitions[p]) - a.fresh_count(len(partitions[p])) for p, a in self.admissions.items())
        repaired = [a.repaired for a in self.admissions.values() if a.repaired is not None]
        return _combined([*repaired, *(written.report for written in self.written.values())], skipped)


def _combined(reports: list[LandingReport], skipped: int) -> LandingReport:
    return LandingReport(
        tuple(path for report in reports for path in report.files),
        sum(report.bytes_written for report in reports),
        sum(report.rows for report in reports),
        sum(report.dead_letters for report in reports),
        tuple(ms for report in reports for ms in report.write_ms),
        skipped,
    )


def _pending_planner(
    part: ProcessedBatch, position: tuple[str, int], fmt: LakeFormat, now_ms: int
) -> Callable[[Pending, int], list[PlannedFile]]:
    """How an unfinished landing's files are planned again from this batch (``PartitionLanding.admit``)."""

    def plan(pending: Pending, incarnation: int) -> list[PlannedFile]:
        inside = _in_range(part, pending.low, pending.high)
        incarnations = {position: incarnation} if incarnation else {}
        if incarnations:
            inside.set_incarnations(incarnations)
        return plan_files(inside, fmt, now_ms=now_ms, incarnations=incarnations)

    return plan


def _by_partition(records: Sequence[KafkaRecord]) -> dict[tuple[str, int], list[KafkaRecord]]:
    groups: dict[tuple[str, int], list[KafkaRecord]] = {}
    for record in records:
        groups.setdefault((record.topic, record.partition), []).append(record)
    for group in groups.values():
        group.sort(key=lambda record: record.offset)
    return groups


def _only(batch: ProcessedBatch, position: tuple[str, int]) -> ProcessedBatch:
    topic, partition = position
    return batch.subset(
        lambda record: record.partition == partition and record.topic == topic,
        [d for d in batch.dead_letters if d.record.partition == partition and d.record.topic == topic],
    )


def _in_range(batch: ProcessedBatch, low: int, high: int) -> ProcessedBatch:
    return batch.subset(
        lambda record: low <= record.offset <= high, [d for d in batch.dead_letters if low <= d.record.offset <= high]
    )


def _fresh_only(batch: ProcessedBatch, fresh: frozenset[int]) -> ProcessedBatch:
    return batch.subset(
        lambda record: record.offset in fresh, [d for d in batch.dead_letters if d.record.offset in fresh]
    )


class _Planning:
    """Remembers how many dead letters a partial batch had before planning, to move the rows planning
    found unencodable to the whole batch too."""

    def __init__(self, part: ProcessedBatch) -> None:
        self.part = part
        self.letters = len(part.dead_letters)

    def move_unencodable(self, whole: ProcessedBatch) -> None:
        found = {_position(letter.record): letter.detail for letter in self.part.dead_letters[self.letters :]}
        if found:
            moved = [row for row, origin in zip(whole.rows, whole.origins, strict=True) if _position(origin) in found]
            details = [found[_position(origin)] for origin in whole.origins if _position(origin) in found]
            whole.dead_letter_rows(moved, "unencodable", details)


def _position(record: KafkaRecord) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _drop_unencodable_landed(
    batch: ProcessedBatch, position: tuple[str, int], fresh: frozenset[int], fmt: LakeFormat
) -> None:
    """Rows of a redelivered batch that already landed are not encoded again, so a row that was
    dead-lettered as ``unencodable`` would reach the entities; find such rows and leave them out."""
    topic, partition = position
    if batch.table is not None and fmt == "parquet":
        mask = [o.offset not in fresh and o.partition == partition and o.topic == topic for o in batch.origins]
        try:
            formats.encode_parquet_table(batch.table.filter(pa.array(mask, pa.bool_())))
            return  # they all encode: the table stays
        except Exception:  # find them among rows
            pass
    landed = [
        row
        for row in batch.rows
        if row["_offset"] not in fresh and row["_partition"] == partition and row["_topic"] == topic
    ]
    if not landed:
        return
    _, bad = encode_isolating(fmt, landed_columns(batch), landed, record_name=batch.source.name)
    if bad:
        batch.dead_letter_rows([landed[item.index] for item in bad], "unencodable", [item.error for item in bad])
