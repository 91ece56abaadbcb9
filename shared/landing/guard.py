"""Exactly once per offset in the raw lake: each batch lands only what the partition's ledger lacks.

One guard per lake client (so per worker process). It caches every partition's ledger and the
version it read or wrote, so a batch costs one small conditional write and no reads; a write
that loses to another instance (a rebalance moved the partition) reloads and tries again.

The runtime's order, per batch: ``admit`` (which records are new, which incarnation), then the
caller plans its files, ``begin`` (the ledger names the files before any is written), writes
the files, and ``finish``. A crash anywhere leaves a ledger whose ``pending`` files tell the next
owner what happened: all there means landed; a partial set is removed and landed again once
the writer's lease has run out, so a batch still in flight elsewhere is never raced.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa

from shared import formats
from shared.batch import ProcessedBatch
from shared.errors import TransientError, WriteConflict
from shared.lake.base import LakeStore
from shared.landing.files import LandingReport, land, landed_columns, plan_files
from shared.landing.isolation import encode_isolating
from shared.landing.ledger import Ledger, Pending
from shared.layout import LEDGER_AREA, safe_segment
from shared.records import KafkaRecord
from shared.settings import LakeFormat

log = logging.getLogger("streamingpoc.landing")
DEFAULT_LEASE_SECONDS = 30.0
PartitionKey = tuple[str, str, int]  # source, topic, partition


class PartitionWaiting(TransientError):
    """Another instance's landing of this partition may still be in flight; retry after its lease."""


@dataclass
class _Entry:
    ledger: Ledger
    version: str | None


@dataclass(frozen=True, slots=True)
class Admission:
    """What one batch may land for one partition."""

    key: PartitionKey
    incarnation: int
    low: int
    high: int
    fresh: frozenset[int]  # offsets to land; ``_ALL`` when every record of the batch is new
    first_fresh: KafkaRecord | None
    last_fresh: KafkaRecord | None


_ALL: frozenset[int] = frozenset([-1])  # a sentinel object: "every record is new" (an empty set would be shared)


def ledger_path(source: str, topic: str, partition: int) -> str:
    return f"{LEDGER_AREA}/{safe_segment(source)}/{safe_segment(topic)}+{partition}.json"


class LandingGuard:
    """Keeps each partition's ledger for one lake client; called by the processing path per batch."""

    def __init__(
        self,
        lake: LakeStore,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lake = lake
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._entries: dict[PartitionKey, _Entry] = {}

    def admit(self, source: str, records: Sequence[KafkaRecord]) -> Admission:
        """Records of one partition (in offset order) not yet in the lake, and their incarnation."""
        first, last = records[0], records[-1]
        key = (source, first.topic, first.partition)
        entry = self._entries.get(key) or self._load(key)
        if entry.ledger.pending is not None:
            self._settle(key, entry.ledger)
        landed = entry.ledger.landed
        if not landed or first.offset > landed[-1][1]:  # the steady state: all new, nothing to compare
            return Admission(key, entry.ledger.incarnation, first.offset, last.offset, _ALL, first, last)
        if entry.ledger.contradicted_by(records):
            log.warning("%s %s/%d: offsets restarted; new incarnation", source, first.topic, first.partition)
            entry.ledger = entry.ledger.next_incarnation()
        ledger = entry.ledger
        fresh = [record for record in records if not ledger.is_landed(record.offset)]
        return Admission(
            key,
            ledger.incarnation,
            first.offset,
            last.offset,
            frozenset(record.offset for record in fresh),
            fresh[0] if fresh else None,
            fresh[-1] if fresh else None,
        )

    def begin(self, admission: Admission, files: list[str]) -> None:
        """Record the landing about to happen (the one ledger write per batch). Conflicts reload."""
        entry = self._entries[admission.key]
        if admission.first_fresh is None or admission.last_fresh is None:
            return
        entry.ledger.remember(admission.first_fresh, admission.last_fresh)
        entry.ledger.pending = Pending(
            admission.first_fresh.offset,
            admission.last_fresh.offset,
            files,
            self.owner,
            int(self.clock() * 1000),
        )
        try:
            entry.version = self.lake.write_if(ledger_path(*admission.key), _encode(entry.ledger), entry.version)
        except WriteConflict:
            self._entries.pop(admission.key, None)
            raise

    def finish(self, admission: Admission) -> None:
        """Called once the batch's files are written: its whole offset range counts as landed."""
        ledger = self._entries[admission.key].ledger
        ledger.pending = None
        ledger.mark_landed(admission.low, admission.high)

    def _load(self, key: PartitionKey) -> _Entry:
        found = self.lake.read_versioned(ledger_path(*key))
        if found is None:
            entry = _Entry(Ledger(), None)
        else:
            data, version = found
            try:
                entry = _Entry(Ledger.from_json(orjson.loads(data)), version)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise TransientError(f"landing ledger {ledger_path(*key)} is unreadable: {error}") from error
        self._entries[key] = entry
        return entry

    def _settle(self, key: PartitionKey, ledger: Ledger) -> None:
        """Decide what became of the ledger's pending landing before admitting anything."""
        pending = ledger.pending
        assert pending is not None
        missing = [path for path in pending.files if not self.lake.exists(path)]
        age = self.clock() - pending.started_ms / 1000
        if missing and pending.owner != self.owner and age < self.lease_seconds:
            raise PartitionWaiting(
                f"{key[0]} {key[1]}/{key[2]}: offsets {pending.low}-{pending.high} are being landed by another "
                f"instance ({age:.0f}s ago, lease {self.lease_seconds:.0f}s); waiting"
            )
        if not missing:
            ledger.pending = None
            ledger.mark_landed(pending.low, pending.high)
            return
        for path in pending.files:
            self.lake.delete(path)
        ledger.pending = None  # only once every file of it is gone: a failed delete is retried
        log.warning("%s %s/%d: removed an unfinished landing of %d-%d", *key, pending.low, pending.high)


def _encode(ledger: Ledger) -> bytes:
    return orjson.dumps(ledger.to_json())


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
    """Land what of ``batch`` the lake does not hold yet; one retry when another instance moved a ledger."""
    try:
        return _land_once(guard_for(lake, lease_seconds), batch, records, fmt, now_ms)
    except WriteConflict:
        return _land_once(guard_for(lake, lease_seconds), batch, records, fmt, now_ms)


def _land_once(
    guard: LandingGuard, batch: ProcessedBatch, records: Sequence[KafkaRecord], fmt: LakeFormat, now_ms: int
) -> LandingReport:
    source = batch.source.name
    partitions = _by_partition(records)
    admissions = {position: guard.admit(source, part) for position, part in partitions.items()}
    incarnations = {position: a.incarnation for position, a in admissions.items() if a.incarnation}
    if incarnations:
        batch.set_incarnations(incarnations)
    planned_by_partition = {}
    for position, admission in admissions.items():
        part = batch if len(admissions) == 1 else _only(batch, position)
        if admission.fresh is not _ALL and len(admission.fresh) < len(partitions[position]):
            part = _fresh_only(part, admission.fresh)
        planning = _Planning(part)
        planned_by_partition[position] = plan_files(part, fmt, now_ms=now_ms, incarnations=incarnations)
        if part is not batch:
            planning.move_unencodable(batch)
        if admission.fresh is not _ALL:
            _drop_unencodable_landed(batch, position, admission.fresh, fmt)
    for position, admission in admissions.items():
        guard.begin(admission, [file.path for file in planned_by_partition[position]])
    report = land(guard.lake, [file for planned in planned_by_partition.values() for file in planned])
    for admission in admissions.values():
        guard.finish(admission)
    skipped = sum(len(partitions[p]) - len(a.fresh) for p, a in admissions.items() if a.fresh is not _ALL)
    return dataclasses.replace(report, skipped=skipped)


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
