"""One topic-partition's landing for one lake client: exactly once per offset, fenced by its ledger.

The ledger (``shared.landing.ledger``) is this object's snapshot: the offsets landed, the one
landing in flight (``pending``, with every file it writes) and fingerprints of records. The
object keeps the version (ETag) it last read or wrote, so the steady state costs one request per
batch: the conditional ledger write of ``begin``.

Per batch, in an order the types enforce (each step takes what the one before returned):

1. ``admit(records)`` -> ``Admission``: which records are not landed yet, and their incarnation.
   A pending landing found first is settled (below).
2. ``begin(admission, files)`` -> ``Begun``: the ledger names the files, written only if it is
   still at the version this object decided on. Every decision (what is fresh, what is skipped,
   a new incarnation, a settled landing, offsets this instance's consumer skipped since its last
   batch as holding no record) is committed by this write or by none: a stale snapshot loses it
   (``WriteConflict``), is dropped and read again.
3. ``write(begun)`` -> ``Written``: each file created only if absent. One already there counts as
   written and is never replaced, so two instances landing the same files cannot double a row.
4. ``finish(written)``: the range counts as landed; the next ``begin`` records it.

A pending landing whose files are all there is counted. One with files missing is repaired by
whoever owns the partition next, and only after a fencing write (the ledger taken over at its
version, the lease restarted): when this batch holds the pending landing's records and plans the
same files with the same records in each (``Pending.contents``), the missing ones are created, at
once (an instance still writing them creates identical files, and the loser's create is refused).
Otherwise the holder marks it ``removing``,
deletes its files and lands the records again; another instance does that only once the
holder's lease has run out. Every holder stops starting requests before its lease ends
(``deadline``), so nothing it sends arrives after another instance took over. The lease must
leave room for that: at least two of the lake's longest requests plus the allowed clock skew.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from shared.errors import TransientError, UnreadableLakeFile
from shared.lake.base import LakeStore
from shared.landing.files import LandingReport, PlannedFile, land, row_counts
from shared.landing.ledger import Ledger, Pending
from shared.layout import DEADLETTER_AREA, RAW_AREA, ledger_path
from shared.offset_ranges import OffsetRanges, add, overlap, runs, without
from shared.records import KafkaRecord, TopicPartition

log = logging.getLogger("streamingpoc.landing")
DEFAULT_LEASE_SECONDS = 150.0
CLOCK_SKEW_SECONDS = 2.0  # how far two instances' clocks may disagree (NTP-synchronised hosts)
KEPT_RUN_RANGES = 16  # of an instance's run (``_Admitted.run_fresh``); older ones are not adopted, only proved
PendingPlanner = Callable[[frozenset[int], int], list[PlannedFile]]  # files of these offsets of this batch, this life


class PartitionWaiting(TransientError):
    """Another instance's landing of this partition may still be in flight; retry after its lease."""


class LeaseExpired(TransientError):
    """This instance's lease on a landing ran out before its next request; the retry repairs the landing."""


def minimum_lease_seconds(lake: LakeStore) -> float:
    """The shortest lease that lets a writer send its ledger write and one file before its deadline."""
    return 2 * lake.max_request_seconds + CLOCK_SKEW_SECONDS


@dataclass(frozen=True, slots=True)
class Admission:
    """What one batch may land for one partition."""

    incarnation: int
    low: int
    high: int
    fresh: frozenset[int] | None  # offsets to land; None when every record of the batch is new
    first_fresh: KafkaRecord | None
    last_fresh: KafkaRecord | None
    repaired: LandingReport | None = None  # an unfinished landing this batch completed first
    before_seen: frozenset[int] = frozenset()  # offsets landed in the life before, before the restart was seen
    recordless: tuple[int, int] | None = None  # between this instance's last batch and this one: no record there
    timestamps_ms: tuple[int, int] | None = None  # its fresh records' oldest and newest (``Ledger.timestamps_ms``)

    def fresh_count(self, record_count: int) -> int:
        return record_count if self.fresh is None else len(self.fresh)


@dataclass(frozen=True, slots=True)
class Begun:
    """A landing the ledger has named: its files may now be written, until ``deadline``."""

    admission: Admission
    files: tuple[PlannedFile, ...]
    deadline: LeaseDeadline  # no request of this landing starts after this


@dataclass(frozen=True, slots=True)
class LeaseDeadline:
    """When a holder stops starting requests: by the wall clock the ledger records (other instances judge the
    lease by it), and by the monotonic clock too, so a wall clock stepped back mid-landing does not lend the
    holder time its lease does not have."""

    wall: float
    monotonic: float

    def passed(self, wall_now: float) -> bool:
        return wall_now > self.wall or time.monotonic() > self.monotonic


@dataclass(frozen=True, slots=True)
class Written:
    begun: Begun
    report: LandingReport


@dataclass(frozen=True, slots=True)
class _Admitted:
    """One batch this instance admitted: its first and last offset, its life, and the partition's current life
    then (``PartitionLanding._same_stream``), and what it and the batches before it that it followed in that life
    found fresh (``PartitionLanding._adopted_run``)."""

    first: int
    last: int
    life: int
    current: int
    run_fresh: OffsetRanges  # what the run of batches this instance read on from one to the next landed fresh


class PartitionLanding:
    """The landing of one (source, topic, partition) for one lake client; lives as long as the client."""

    def __init__(
        self, lake: LakeStore, source: str, where: TopicPartition, *, owner: str, lease_seconds: float
    ) -> None:
        self.lake = lake
        self.source = source
        self.where = where
        self.name = f"{source} {where.topic}/{where.partition}"
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock: Callable[[], float] = wall_clock
        self._ledger: Ledger | None = None
        self._version: str | None = None
        self._admitted: _Admitted | None = None  # this instance's last batch of the partition
        self._admitting: _Admitted | None = None  # the batch in admission, until its ledger write

    @property
    def path(self) -> str:
        return ledger_path(self.source, self.where)

    def snapshot(self) -> dict[str, Any]:
        """The ledger as this object last read or wrote it (plain JSON)."""
        return self._loaded().to_json()

    def admit(self, records: Sequence[KafkaRecord], plan_pending: PendingPlanner) -> Admission:
        """Records of this partition (in offset order) not yet in the lake, and their incarnation."""
        ledger = self._loaded()
        repaired = None if ledger.pending is None else self._settle(ledger, ledger.pending, records, plan_pending)
        first, last = records[0], records[-1]
        landed = ledger.landed
        steady = not landed or first.offset > landed[-1][1]
        if steady and not ledger.previous:  # all new, and the topic never restarted: nothing to compare
            life = ledger.incarnation
            recordless = self._recordless(first.offset, life, ledger)
            landing = [[first.offset, last.offset]] if recordless is None else [[recordless[0], last.offset]]
            self._admitting = self._admitted_now(first.offset, last.offset, life, life, landing)
            return Admission(
                ledger.incarnation,
                first.offset,
                last.offset,
                None,
                first,
                last,
                repaired,
                recordless=recordless,
                timestamps_ms=timestamp_span(records),
            )
        same_stream = self._same_stream(first.offset, ledger)
        incarnation = ledger.incarnation_of(records, same_stream)
        current = ledger.incarnation
        if incarnation > ledger.incarnation:
            log.warning("%s: offsets restarted; new incarnation %d", self.name, incarnation)
            adopted = self._adopted_run(first.offset, ledger)
            contradicted_at = ledger.first_contradiction(records)
            ledger = self._ledger = ledger.next_incarnation(contradicted_at, seen_at=first.offset)
            ledger.adopt(adopted, incarnation)
        elif incarnation < ledger.incarnation:
            log.warning("%s: a batch of incarnation %d, an earlier life of the topic", self.name, incarnation)
        ledger.pin_seen_at(incarnation)
        before_seen: frozenset[int] = frozenset()
        if incarnation > 0:
            of_this_life = ledger.evidence(records, incarnation) is True
            before_seen = ledger.landed_before_seen(records, incarnation, of_this_life=of_this_life)
        if before_seen:  # kept, so a redelivery that carries no fingerprint below it is known too (``begin``)
            ledger.adopt(runs(before_seen), incarnation)
        fresh = [
            record
            for record in records
            if not ledger.is_landed(record.offset, incarnation) and record.offset not in before_seen
        ]
        recordless = self._recordless(first.offset, incarnation, ledger)
        fresh_ranges = runs(record.offset for record in fresh)
        if recordless is not None:  # no record there: adopting them skips nothing
            fresh_ranges = add(fresh_ranges, *recordless)
        self._admitting = self._admitted_now(first.offset, last.offset, incarnation, current, fresh_ranges)
        return Admission(
            incarnation,
            first.offset,
            last.offset,
            frozenset(record.offset for record in fresh),
            fresh[0] if fresh else None,
            fresh[-1] if fresh else None,
            repaired,
            before_seen,
            recordless,
            timestamp_span(fresh),
        )

    def _same_stream(self, first_offset: int, ledger: Ledger) -> int | None:
        """The life of this instance's last batch of the partition when this one is that batch again, or the one
        its consumer read next: one consumer reads one log in order, so with no fingerprint to say otherwise it
        is the same life. (After a restart was seen elsewhere, a batch this instance read ahead would otherwise
        default to the new life: below the new life's first offset landed twice, above it hidden as landed.)
        Only the one starting right after it: a batch starting further up is left to the fingerprints, though the
        offsets between may hold no record (``_recordless``), since a re-cut redelivery can start there too.

        The memory lasts only while no other instance wrote the ledger (``forget`` drops it: a write that lost
        to another's, a settled landing of another's), so it is of this consumer's own reads. A next batch is
        trusted only while this instance's stream is the one that life follows besides: the life was already
        an earlier one when its last batch was admitted (only a consumer that read on from it, this one,
        reaches it), or nothing landed in it past that batch."""
        admitted = self._admitted
        if admitted is None:
            return None
        if first_offset == admitted.first:
            return admitted.life
        if first_offset != admitted.last + 1:
            return None
        landed = ledger.landed_in(admitted.life)
        if admitted.life < admitted.current or not landed or landed[-1][1] <= admitted.last:
            return admitted.life
        return None

    def _admitted_now(
        self, first_offset: int, last_offset: int, life: int, current: int, fresh: OffsetRanges
    ) -> _Admitted:
        """This batch as this instance's last one, once ``begin`` commits it; its run goes on from the last one's
        when it retries or follows that one in the same life."""
        admitted = self._admitted
        follows = admitted is not None and first_offset in (admitted.first, admitted.last + 1)
        run = fresh
        if admitted is not None and follows and admitted.life == life:
            for low, high in admitted.run_fresh:
                run = add(run, low, high)
        return _Admitted(first_offset, last_offset, life, current, run[-KEPT_RUN_RANGES:])

    def _adopted_run(self, first_offset: int, ledger: Ledger) -> OffsetRanges:
        """Offsets of the current life that hold the next life's records, as this instance's memory shows them when
        a batch that follows its last one shows the restart: one consumer reads one log in order, so what the
        batches it read on from up to this one landed were the new life's records, landed as the current life.
        Not what they found landed already: that may be the current life's own records (the new one's, skipped
        on a guess, then land when a rewind brings them again)."""
        admitted = self._admitted
        if admitted is None or admitted.life != ledger.incarnation or first_offset != admitted.last + 1:
            return []
        return overlap(admitted.run_fresh, ledger.landed_in(admitted.life))

    def _recordless(self, first_offset: int, incarnation: int, ledger: Ledger) -> tuple[int, int] | None:
        """The offsets between this instance's last batch of the partition and this one, when this one starts above
        the offset after the last one's last, in the same life: they hold no record; ``begin`` records them as
        landed, in the ledger write that names this batch.

        One consumer reads one log in order, so the offsets it passed over between two batches hold no record
        (a transactional producer's commit markers, log compaction). Recorded, such a partition's batches keep
        one landed range; else each added a range to the ledger for good. Only from this instance's memory
        (``_admitted``), which lasts while no other instance wrote the ledger (``forget``; ``begin``'s write is
        conditional on the version this was decided on): offsets another consumer passed over may hold records
        (the group moved forward), and a rewind to them must land them. Not across lives (not the log its
        consumer read on in), and only from an offset the life holds: never below the life's first landed
        offset, where its first records may have landed in the life before (``Ledger.landed_before_seen``).

        Nor across an offset the consumer group was moved to (``Ledger.moved_to``): a consumer put out of its
        group while its process lived on (a batch retried past ``maxPollIntervalMs``) keeps its memory across a
        move of the group, and resumes at the offset moved to. ``tools.reconcile`` writes it into the ledger
        before it moves the group, so a memory from before that write is dropped (this write loses to it); one
        formed after it, of a batch read before the move, meets the offset here."""
        admitted = self._admitted
        if admitted is None or admitted.life != incarnation or first_offset <= admitted.last + 1:
            return None
        if ledger.moved_between(admitted.last, first_offset):  # passed over by a move, not by reading on
            return None
        if not ledger.is_landed(admitted.last, incarnation):  # its last batch did not land (or landed elsewhere)
            return None
        return admitted.last + 1, first_offset - 1

    def split_at(self, records: Sequence[KafkaRecord]) -> int | None:
        """Where ``records`` cross from one life of the partition's offsets to the next (``Ledger.split_at``)."""
        return self._loaded().split_at(records)

    def begin(self, admission: Admission, files: Sequence[PlannedFile]) -> Begun:
        """Name the landing's files in the ledger: the one conditional write per batch, which commits every
        decision ``admit`` made. Written even when nothing is fresh: a skip is confirmed, never assumed."""
        ledger = self._loaded()
        started, ticking = self.clock(), time.monotonic()
        ledger.stamp(admission.timestamps_ms, admission.incarnation)
        if admission.first_fresh is not None and admission.last_fresh is not None:
            incarnation = admission.incarnation
            ledger.remember(admission.first_fresh, admission.last_fresh, incarnation=incarnation)
            paths = [file.path for file in files]
            contents = {file.path: file.offsets for file in files}
            low, high = admission.first_fresh.offset, admission.last_fresh.offset
            ledger.pending = Pending(
                low, high, paths, self.owner, int(started * 1000), incarnation=incarnation, contents=contents
            )
        elif files:
            raise ValueError("files planned for a batch with no fresh records")
        if admission.recordless is not None:  # committed by this write, on the version it was decided on
            ledger.pass_over(*admission.recordless, admission.incarnation)
        self._commit(ledger)
        self._admitted = self._admitting  # decided on the ledger the write was conditional on
        return Begun(admission, tuple(files), self._deadline(started, ticking))

    def write(self, begun: Begun) -> Written:
        """Create the landing's files; each request starts only before the deadline."""
        report = land(self.lake, begun.files, before_each=lambda: self._check(begun.deadline))
        return Written(begun, report)

    def finish(self, written: Written) -> None:
        """The batch's range counts as landed (recorded by the next ``begin``), bar what the life before holds."""
        ledger = self._loaded()
        ledger.pending = None
        admission = written.begun.admission
        for low, high in without([[admission.low, admission.high]], runs(admission.before_seen)):
            ledger.mark_landed(low, high, admission.incarnation)

    def holes(self, incarnation: int) -> OffsetRanges:
        """The ledger's holes in ``incarnation`` as this object last read or wrote it (``Ledger.holes``)."""
        return self._loaded().holes(incarnation)

    def forget(self) -> None:
        """Drop the snapshot: the next step reads the ledger again. The memory of this instance's last batch goes
        too: another instance may have written the ledger since, so this instance may have lost the partition
        in between, and its next batch need not follow its last one (``_same_stream``)."""
        self._ledger, self._version, self._admitted = None, None, None

    def _loaded(self) -> Ledger:
        if self._ledger is None:
            found = self.lake.read_versioned(self.path)
            if found is None:
                self._ledger, self._version = Ledger.first(), None
            else:
                data, version = found
                try:
                    self._ledger = Ledger.from_json(orjson.loads(data))
                except (ValueError, KeyError, TypeError, AttributeError) as error:  # orjson's errors are ValueErrors
                    # No retry heals it: every write of the ledger is conditional on a version read from it. The
                    # partition waits, loudly (an infrastructure failure), until someone repairs it.
                    raise UnreadableLakeFile(
                        self.path, f"not a landing ledger this version reads ({type(error).__name__}: {error})"
                    ) from error
                self._version = version
        return self._ledger

    def _commit(self, ledger: Ledger) -> None:
        """Write the ledger only if it is still at the version this snapshot came from; on any failure, forget."""
        try:
            self._version = self.lake.write_if(self.path, orjson.dumps(ledger.to_json()), self._version)
        except BaseException:
            self.forget()
            raise

    def _deadline(self, started: float, ticking: float) -> LeaseDeadline:
        budget = self.lease_seconds - self.lake.max_request_seconds - CLOCK_SKEW_SECONDS
        return LeaseDeadline(started + budget, ticking + budget)

    def _check(self, deadline: LeaseDeadline) -> None:
        if deadline.passed(self.clock()):
            raise LeaseExpired(f"{self.name}: the landing's lease ran out; retrying")

    def _settle(
        self, ledger: Ledger, pending: Pending, records: Sequence[KafkaRecord], plan_pending: PendingPlanner
    ) -> LandingReport | None:
        """Decide what became of the ledger's pending landing before admitting anything; what it landed, if any."""
        # Before looking at the files: once a lease has run out by this clock, every request of its holder has
        # arrived, so a file it sent is seen. Read after, a file arriving in between could look missing, and a
        # landing its holder finished (its batch done) would be removed.
        started, ticking = self.clock(), time.monotonic()
        missing = [path for path in pending.files if not self.lake.exists(path)]
        if not missing or (not pending.removing and _written_then_expired(pending.files, missing)):
            report = None
            own_attempt = not missing and not pending.removing and pending.owner == self.owner
            # Its own earlier attempt wrote every file, then raised (the last answer lost): it reported none.
            if own_attempt and (planned := self._same_landing(ledger, pending, records, plan_pending)) is not None:
                rows, dead_letters = row_counts(planned)
                report = LandingReport(row_count=rows, dead_letter_count=dead_letters)
            ledger.pending = None
            ledger.mark_landed(pending.low, pending.high, pending.incarnation)
            return report
        planned = None if pending.removing else self._same_landing(ledger, pending, records, plan_pending)
        age = started - pending.started_ms / 1000
        holder_writing = pending.owner != self.owner and age < self.lease_seconds
        others_writing = started * 1000 < pending.others_until_ms  # an instance it was taken from, within its lease
        if planned is None and (holder_writing or others_writing):
            self.forget()  # the holder will move the ledger on: read it again next time
            raise PartitionWaiting(
                f"{self.name}: offsets {pending.low}-{pending.high} are being landed "
                f"by another instance ({age:.0f}s ago, lease {self.lease_seconds:.0f}s); waiting"
            )
        own_attempt = pending.owner == self.owner  # an earlier attempt of this instance, which raised
        if not own_attempt:  # taken over: its holder may still send requests until its deadline
            holder_until = pending.started_ms + int(self.lease_seconds * 1000)
            pending.others_until_ms = max(pending.others_until_ms, holder_until)
        pending.owner, pending.started_ms, pending.removing = self.owner, int(started * 1000), planned is None
        self._commit(ledger)  # the fence: nothing is created or deleted for a landing this instance does not hold
        deadline = self._deadline(started, ticking)
        if planned is not None:
            absent = [file for file in planned if file.path in missing]
            report = land(self.lake, absent, before_each=lambda: self._check(deadline))
            if own_attempt:  # it wrote the rest and reported none of it; a holder still writing reports its own
                rows, dead_letters = row_counts(planned)
                report = replace(report, row_count=rows, dead_letter_count=dead_letters)
            ledger.pending = None
            ledger.mark_landed(pending.low, pending.high, pending.incarnation)
            log.warning("%s: completed an unfinished landing of %d-%d", self.name, pending.low, pending.high)
            return report
        for path in pending.files:
            self._check(deadline)
            self.lake.delete(path)
        ledger.forget(pending)
        ledger.pending = None  # only once every file of it is gone: a failed delete is retried
        log.warning("%s: removed an unfinished landing of %d-%d", self.name, pending.low, pending.high)
        return None

    @staticmethod
    def _same_landing(
        ledger: Ledger, pending: Pending, records: Sequence[KafkaRecord], plan_pending: PendingPlanner
    ) -> list[PlannedFile] | None:
        """The pending landing's files planned again from this batch, when it holds the same records and plans
        the same files with the same records in each; else None (the landing is removed and landed again).

        Only the range's offsets not landed before are planned, as ``begin`` planned them: a batch that
        straddled an earlier landing must not put those records into the repaired files a second time.
        """
        if not records or records[0].offset > pending.low or records[-1].offset < pending.high:
            return None
        inside = [record for record in records if pending.low <= record.offset <= pending.high]
        incarnation = ledger.incarnation if pending.incarnation is None else pending.incarnation
        if ledger.incarnation_of(inside) != incarnation:
            return None
        fresh = frozenset(record.offset for record in inside if not ledger.is_landed(record.offset, incarnation))
        planned = plan_pending(fresh, incarnation)
        if sorted(file.path for file in planned) != sorted(pending.files):
            return None
        if pending.contents and any(pending.contents.get(file.path) != file.offsets for file in planned):
            return None  # a record classified otherwise this time (raw or dead letter): the files would disagree
        return planned


def _written_then_expired(files: Sequence[str], missing: Sequence[str]) -> bool:
    """Whether a landing's missing files are raw files the lake's lifecycle deleted after it was written whole.

    ``finish`` leaves the last landing before an idle spell pending, and raw files are deleted after
    ``raw_retention_days``. Files are written in plan order, raw files first: when every dead-letter
    file of the landing is there, every raw file was written before it. (Removing such a landing would
    delete its dead letters, whose records will not come again.) Not for a landing being removed: its
    remover deletes raw files first."""
    letters = [path for path in files if path.startswith(f"{DEADLETTER_AREA}/")]
    return bool(letters) and not set(letters) & set(missing) and all(p.startswith(f"{RAW_AREA}/") for p in missing)


def new_owner() -> str:
    return uuid.uuid4().hex


def wall_clock() -> float:
    return time.time()


def timestamp_span(records: Sequence[KafkaRecord]) -> tuple[int, int] | None:
    """The oldest and newest Kafka timestamps of ``records`` (None when none has one)."""
    stamps = [stamp for record in records if (stamp := record.timestamp_ms) is not None]
    return (min(stamps), max(stamps)) if stamps else None
