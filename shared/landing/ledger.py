"""What has landed, per topic-partition: the lake's own record of its position (pure, no I/O, but for
``names_pending``, which reads one ledger for the tools that must leave an unfinished landing's files alone).

The consumer group's committed offset is not trusted: commits are asynchronous and lost to
rebalances, so a batch can come again, cut differently. The ledger keeps the offset ranges
already landed for the partition's current *incarnation* and the one batch in flight
(``pending``: its range and the files it writes), so a crash between the files and the next
ledger write is recognised from the files themselves.

An incarnation is one life of a topic-partition's offsets. When a topic is recreated (a new
embedded broker, an event hub replaced) offsets restart; a record at an offset the ledger has
fingerprinted, whose key, value or timestamp differ, proves it. The ledger then starts a new
incarnation: nothing landed before is skipped for, hidden by, or overwritten with the new
records (file names and the ``_incarnation`` column carry it). Where it was seen (``seen_at``) and
which of the life before's offsets hold the new life's first records (``adopted``) are stored with
the new life when it starts, never inferred later from what landed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from shared.errors import LakeError, LakeRefused, UnsafePath
from shared.layout import DEADLETTER_AREA, RAW_AREA, batch_file_ledger_path, ledger_path, parse_batch_file_name
from shared.offset_ranges import OffsetRanges, add, contains, without
from shared.records import KafkaRecord, TopicPartition

if TYPE_CHECKING:
    from shared.lake.base import LakeStore

T = TypeVar("T")
KEPT_FINGERPRINTS = 64
KEPT_INCARNATIONS = 8
KEPT_PREVIOUS_FINGERPRINTS = 16
KEPT_MOVES = 8  # the newest offsets a consumer group was moved to (``Ledger.moved_to``)
KEPT_HOLES = 8  # the newest gaps between a life's landed ranges that signals carry (``Ledger.holes``)
KEPT_PASSED_OVER = 8  # the newest ranges a consumer jumped over (``Ledger.passed_over``)
FORMAT = 1  # a ledger of a higher ``format`` is a newer version's: refused, never read as this one's
_FIELDS = frozenset(
    {
        "format",
        "incarnation",
        "landed",
        "fingerprints",
        "pending",
        "previous",
        "moved_to",
        "seen_at",
        "adopted",
        "timestamps_ms",
        "passed_over",
    }
)  # a ledger's fields; any other top-level field is a newer version's, kept as it is (``Ledger.others``)


def fingerprint(record: KafkaRecord) -> str:
    """A short digest of what makes a record itself: key, value and timestamp."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (record.key or "", record.value or b"", str(record.timestamp_ms)):
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@dataclass
class Pending:
    """A landing that started: the offsets it covers, every file it writes, who holds it and since when.

    ``removing``: its holder found it unfinished and is deleting its files to land the records
    again; nobody else touches it until the holder's lease has run out. ``others_until_ms``: when
    it was taken over from another instance, that instance may still write its files until then,
    so nobody removes them before (completing them needs no wait: the files would be the same).
    ``incarnation``: the life its records belong to (None in ledgers written before it was
    recorded: the ledger's current one). ``contents``: each file's offsets digest
    (``shared.landing.files.offsets_digest``), so a repair completes only files planned with the
    same records (empty in ledgers written before it was recorded: the paths alone decide).
    """

    low: int
    high: int
    files: list[str]
    owner: str
    started_ms: int
    removing: bool = False
    incarnation: int | None = None
    others_until_ms: int = 0  # an instance it was taken over from may send requests until then (its lease)
    contents: dict[str, str] = field(default_factory=dict)


@dataclass
class Ledger:
    """One topic-partition's landing record, stored as JSON in the lake.

    The current incarnation's ranges and fingerprints are top-level fields; earlier ones are kept
    in ``previous`` (at most ``KEPT_INCARNATIONS``), so a batch of an earlier life, still held by
    another instance or redelivered, is recognised and admitted against what landed in that life.

    ``moved_to``: the offsets ``tools.reconcile --move-group-to-time`` moved the partition's consumer group to,
    the newest last (at most ``KEPT_MOVES``), written before it moved the group: offsets a consumer passed over
    across a move may hold records, so the landing never takes a gap that reaches one for recordless
    (``PartitionLanding._recordless``). One list for the partition, not per life: a move is of the broker's log,
    whose life the tool does not tell, and a marker of another life only leaves a gap open (one range more).
    Absent in ledgers written before it was recorded, and in those of partitions never moved (not written).

    ``seen_at``: in a life after the first, the first offset of the batch in which the restart was seen. This
    life's records below it that are in the lake landed as the life before, before the restart showed, at the
    offsets ``adopted`` names (those the same consumer read on from, or that a batch proved by a fingerprint,
    ``landed_before_seen``). Earlier lives keep theirs in ``previous`` (keys ``seen_at``, ``adopted``). None in
    the first life, and in ledgers written before it was recorded (the life's first landed offset stands in).

    ``timestamps_ms``: the oldest and newest Kafka timestamps of the records this life's landings named (the
    fresh records of each batch ``begin`` committed); ``[]`` before any: kept from a life's start (``first``,
    ``next_incarnation``). A record at an offset the life landed whose timestamp is outside them is not the
    record landed there (``incarnation_of``). None where they are not known for every landing: in ledgers
    written before they were kept, and after a version that does not keep them wrote one; then they stay
    unknown for the life, never started part-way.

    ``passed_over``: offsets of the current life that one consumer jumped over between two batches (at most
    ``KEPT_PASSED_OVER`` ranges, one-offset ranges dropped first: a commit marker's; written only when there are
    some). They count as landed for the ledger's shape and
    for what a batch that reads on may take as recordless (``PartitionLanding._recordless``: usually they hold no
    record, a commit marker), but not for a batch that brings records there: an offset reset by the consumer
    (retention deleted what it had not read) or a group moved by a tool other than ``tools.reconcile`` passes over
    records too, and a rewind must land them. They are holes for the entities (``holes``), and ``tools.reconcile``
    names those the broker no longer retains.

    Peers of other versions share the ledger during a rolling deploy. ``format`` (``FORMAT``) is written with it: a
    ledger of a higher format is refused (``from_json``), so its partition waits, loudly, for a newer instance.
    Top-level fields this version does not know are kept as they are (``others``) and written back. A version
    that does not know ``seen_at`` drops it when it writes the ledger, but keeps ``previous`` as stored: so the
    life before keeps a copy (``next_life``: the incarnation, ``seen_at`` and ``adopted``) that ``from_json``
    restores them from, rather than inferring ``seen_at`` from what landed since.
    """

    incarnation: int = 0
    landed: OffsetRanges = field(default_factory=list)
    fingerprints: dict[int, str] = field(default_factory=dict)
    pending: Pending | None = None
    previous: list[dict[str, Any]] = field(default_factory=list)
    moved_to: list[int] = field(default_factory=list)
    seen_at: int | None = None
    adopted: OffsetRanges = field(default_factory=list)
    timestamps_ms: list[int] | None = None
    others: dict[str, Any] = field(default_factory=dict)
    passed_over: OffsetRanges = field(default_factory=list)

    @classmethod
    def first(cls) -> Ledger:
        """The ledger of a partition that has none: nothing landed, its timestamps kept from the start."""
        return cls(timestamps_ms=[])

    def incarnation_of(self, records: Sequence[KafkaRecord], same_stream: int | None = None) -> int:
        """The life ``records`` (one batch, one life) belong to: the current or an earlier one whose fingerprint a
        record matches, and none above that match contradicts (else the batch left that life there: a later
        one's); else the next one when a record contradicts the current life's records (``known``: the offsets
        restarted); else, with no record at a fingerprinted offset, ``same_stream`` (the life of the batch this
        one continues or retries, read by the same consumer) unless a record contradicts that life; else the
        current one, unless its timestamps prove it is none of the lives kept (``newer_than_landed``): then the
        next one."""
        digests: dict[int, str] = {}

        def compare(known: dict[int, str]) -> bool | None:
            """True if a record matches ``known`` and none above the first match differs; False if one differs;
            None if none is at a known offset."""
            matched = differs = False
            for record in records:
                if record.offset in known:
                    digest = digests.get(record.offset) or digests.setdefault(record.offset, fingerprint(record))
                    if known[record.offset] != digest:
                        if matched:
                            return False
                        differs = True
                    else:
                        matched = True
            return True if matched else (False if differs else None)

        if _verdict(records, self.fingerprints, digests):
            return self.incarnation
        verdicts = {}
        for earlier in reversed(self.previous):
            life = int(earlier["incarnation"])
            verdict = verdicts[life] = compare(_fingerprints(earlier))
            if verdict:
                return life
        if _verdict(records, self.known(self.incarnation), digests) is False:
            return self.incarnation + 1
        if same_stream is not None and same_stream != self.incarnation and verdicts.get(same_stream) is None:
            return same_stream
        return self.incarnation + 1 if self.newer_than_landed(records) else self.incarnation

    def timestamps_of(self, incarnation: int) -> list[int] | None:
        """Life ``incarnation``'s ``timestamps_ms``. An earlier life's (kept in its entry by ``next_incarnation`` and
        ``stamp``) are trusted only while the current life's are known: a version that does not keep them drops
        the current life's when it writes the ledger, but carries an earlier life's entry as it found it, stale
        once it landed there."""
        if incarnation == self.incarnation:
            return self.timestamps_ms
        entry = self._entry(incarnation)
        if self.timestamps_ms is None or entry is None:
            return None
        return _timestamps(entry.get("timestamps_ms"))

    def newer_than_landed(self, records: Sequence[KafkaRecord]) -> bool:
        """Whether ``records`` are of a life after the current one by their Kafka timestamps: one with a timestamp
        sits at an offset where the current life landed a record (not one its consumer passed over) and every one is
        newer than every record that life landed (``timestamps_ms``), and
        for every earlier life kept, one sits at an offset it landed with a timestamp outside its (``_not_of``).

        A record at a landed offset with a timestamp outside those the life landed is not the record landed there
        (a redelivery carries its records' timestamps), and a batch is one life's records: so the batch is none
        of the lives kept, a new one. A new life whose consumer group starts inside the old life's landed offsets
        (retention took its log's first records, or the group was moved), touching none of its kept fingerprints,
        was taken for the old life and skipped as landed there. Anything less leaves the batch to the current
        life, as before: three reviews proved that readings of the timestamps short of this proof (an older batch
        for the life before; a newer one for the next life while an earlier life could hold it, its clock gone
        back or its unlanded records newer) lost records or started lives that do not exist."""
        # offsets whose records landed: one the consumer passed over (a jump) holds no record to compare
        span, landed = self.timestamps_ms, self.records_landed_in(self.incarnation)
        if not span or not landed:
            return False
        stamps = [stamp for record in records if (stamp := record.timestamp_ms) is not None]
        if not stamps or min(stamps) <= span[1]:
            return False
        if not any(record.timestamp_ms is not None and contains(landed, record.offset) for record in records):
            return False
        return all(self._not_of(int(entry["incarnation"]), records) for entry in self.previous)

    def _not_of(self, incarnation: int, records: Sequence[KafkaRecord]) -> bool:
        """Whether a record sits at an offset earlier life ``incarnation`` landed with a timestamp outside those of
        every record it landed: then ``records`` are not of it. Not when its timestamps are not known."""
        stamps, ranges = self.timestamps_of(incarnation), self.landed_in(incarnation)
        if not stamps:
            return False
        oldest, newest = stamps
        return any(
            (stamp := record.timestamp_ms) is not None
            and not oldest <= stamp <= newest
            and contains(ranges, record.offset)
            for record in records
        )

    def stamp(self, span_ms: tuple[int, int] | None, incarnation: int) -> None:
        """Take ``span_ms``, the oldest and newest Kafka timestamps of records about to land in ``incarnation``,
        into that life's ``timestamps_ms`` (``timestamps_of``)."""
        held = self.timestamps_of(incarnation)
        if held is None or span_ms is None:
            return
        low, high = span_ms
        widened = [min(low, held[0]), max(high, held[1])] if held else [low, high]
        if incarnation == self.incarnation:
            self.timestamps_ms = widened
        elif (entry := self._entry(incarnation)) is not None:
            entry["timestamps_ms"] = widened

    def known(self, incarnation: int) -> dict[int, str]:
        """The fingerprints of life ``incarnation``'s records: its own, and the life before's at the offsets it
        adopted (its records there, landed as that life). A batch matching one of those is admitted as the life
        before, which holds them (``incarnation_of``); one contradicting one is not of this life."""
        own, adopted = self._own(incarnation), self._adopted_fingerprints(incarnation)
        return adopted | own if adopted else own

    def evidence(self, records: Sequence[KafkaRecord], incarnation: int) -> bool | None:
        """Whether ``records`` are of life ``incarnation`` by its records' fingerprints (``known``): False if one
        differs; True if one matches a fingerprint that is certainly of the life: its own at or above ``seen_at``,
        or the life before's where it adopted (below ``seen_at``, its own may be a later life's records, taken
        for it with nothing to tell them apart); None if none is at such an offset."""
        own, adopted = self._own(incarnation), self._adopted_fingerprints(incarnation)
        seen_at = self.seen_at_of(incarnation)
        verdict = None
        for record in records:
            offset = record.offset
            mine, theirs = own.get(offset), adopted.get(offset)
            if mine is None and theirs is None:
                continue
            digest = fingerprint(record)
            if digest not in (mine, theirs) or (mine is not None and theirs is not None and mine != theirs):
                return False
            if theirs is not None or seen_at is None or offset >= seen_at:
                verdict = True
        return verdict

    def _own(self, incarnation: int) -> dict[int, str]:
        if incarnation == self.incarnation:
            return self.fingerprints
        return _fingerprints(self._entry(incarnation) or {})

    def _adopted_fingerprints(self, incarnation: int) -> dict[int, str]:
        """The life before's fingerprints at the offsets life ``incarnation`` adopted."""
        adopted = self.adopted_in(incarnation)
        before = self._entry(incarnation - 1) if adopted else None
        if before is None:
            return {}
        return {offset: digest for offset, digest in _fingerprints(before).items() if contains(adopted, offset)}

    def first_contradiction(self, records: Sequence[KafkaRecord]) -> int | None:
        """The lowest offset of ``records`` whose record differs from this life's fingerprint there."""
        fingerprints = self.known(self.incarnation)
        for record in records:
            known = fingerprints.get(record.offset)
            if known is not None and known != fingerprint(record):
                return record.offset
        return None

    def split_at(self, records: Sequence[KafkaRecord]) -> int | None:
        """The offset from which ``records`` (one partition, in offset order) are another life than below it.

        A new life's first batches land as the old life while they touch no fingerprint (its log
        started above 0), so the current life can hold records of both. A batch that matches the
        current fingerprints and then contradicts one further up crosses the restart: the records
        from the first contradiction on are the next life. ``None`` when the batch does not cross it.
        """
        if not records:
            return None
        low, high = records[0].offset, records[-1].offset
        known = self.known(self.incarnation)
        inside = sorted(offset for offset in known if low <= offset <= high)
        if len(inside) < 2:  # a match and a contradiction need two (the steady state has none)
            return None
        by_offset = {record.offset: record for record in records}
        matched = False
        for offset in inside:
            record = by_offset.get(offset)
            if record is None:
                continue
            if known[offset] == fingerprint(record):
                matched = True
            elif matched:
                return offset
        return None

    def landed_before_seen(
        self, records: Sequence[KafkaRecord], incarnation: int, *, of_this_life: bool = False
    ) -> frozenset[int]:
        """Offsets of ``records`` (of life ``incarnation``) that landed in the life before it, before the
        restart was seen.

        A new life's first batches touch no fingerprint while they stay below the old life's first
        landed offset (its log started above 0: retention, or the ledger came later), so they land as
        the old life; the restart is seen where the new life meets an old fingerprint, and the life's own
        landings start at the batch that saw it (``seen_at``). A batch redelivered across that point must not
        land its records below it again. When a record below that point matches the earlier life's fingerprint
        at its offset, every record below it that the earlier life holds landed there (the consumer read this
        life from its first offset up to the restart seen). ``of_this_life``: the batch is shown to be of this
        life (``evidence``); then those the life ``adopted`` landed too. Without it, a batch that touches no
        fingerprint may be of a life not seen yet: it lands (a record twice at worst), never skipped on a guess
        (a record lost)."""
        earlier = self._entry(incarnation - 1)
        seen_at = self.seen_at_of(incarnation)
        if earlier is None or seen_at is None:
            return frozenset()
        below = [record for record in records if record.offset < seen_at]
        held = self.adopted_in(incarnation) if of_this_life else []
        known = _fingerprints(earlier)
        if any(known.get(record.offset) == fingerprint(record) for record in below if record.offset in known):
            held = [[int(low), int(high)] for low, high in earlier["landed"]]
        return frozenset(record.offset for record in below if contains(held, record.offset))

    def seen_at_of(self, incarnation: int) -> int | None:
        """Where the restart that began life ``incarnation`` was seen (``seen_at``); for a ledger written before
        that was recorded, the life's first landed offset."""
        if incarnation == self.incarnation:
            stored: Any = self.seen_at
        else:
            entry = self._entry(incarnation)
            stored = None if entry is None else entry.get("seen_at")
        if stored is not None:
            return int(stored)
        ranges = self.landed_in(incarnation)
        return ranges[0][0] if ranges else None

    def pin_seen_at(self, incarnation: int) -> None:
        """Store where life ``incarnation``'s restart showed when a ledger written before it was stored infers it
        (its first landed offset), before this version lands the life's records below that point."""
        seen_at = None if incarnation == 0 else self.seen_at_of(incarnation)
        if seen_at is None:
            return
        if incarnation == self.incarnation:
            self.seen_at = seen_at
        elif (entry := self._entry(incarnation)) is not None:
            entry["seen_at"] = seen_at

    def adopted_in(self, incarnation: int) -> OffsetRanges:
        """The offsets of the life before ``incarnation`` that hold its records (``adopted``)."""
        if incarnation == self.incarnation:
            return self.adopted
        entry = self._entry(incarnation)
        return [] if entry is None else [[int(low), int(high)] for low, high in entry.get("adopted", [])]

    def adopt(self, ranges: OffsetRanges, incarnation: int) -> None:
        """Record that the life before ``incarnation`` holds that life's records in ``ranges`` (they landed there
        before the restart showed)."""
        adopted = self.adopted_in(incarnation)
        for low, high in ranges:
            adopted = add(adopted, low, high)
        if incarnation == self.incarnation:
            self.adopted = adopted
        elif (entry := self._entry(incarnation)) is not None:
            entry["adopted"] = adopted

    def _entry(self, incarnation: int) -> dict[str, Any] | None:
        return next((entry for entry in self.previous if int(entry["incarnation"]) == incarnation), None)

    def next_incarnation(self, contradicted_at: int | None = None, *, seen_at: int | None = None) -> Ledger:
        """A fresh ledger for the topic-partition's next life; this one's ranges and fingerprints kept as history.

        ``contradicted_at``: the offset whose record showed the restart. This life's fingerprints below it are kept
        whole: they may be the next life's first records, landed here before the restart showed, and a redelivery
        from one of them must prove it (``landed_before_seen``). ``seen_at``: the first offset of the batch that
        showed it, from which the next life lands as itself.
        """
        kept = _kept(self.fingerprints, self.landed, KEPT_PREVIOUS_FINGERPRINTS)
        if contradicted_at is not None:
            kept = {o: d for o, d in self.fingerprints.items() if o in kept or o < contradicted_at}
        entry = {"incarnation": self.incarnation, "landed": self.landed, "fingerprints": _encoded(kept)}
        if self.seen_at is not None:
            entry |= {"seen_at": self.seen_at, "adopted": self.adopted}
        history = [*self.previous, entry]
        if self.timestamps_ms is None:  # earlier lives' may be stale (``timestamps_of``): not carried on
            history = [
                {name: value for name, value in earlier.items() if name != "timestamps_ms"} for earlier in history
            ]
        else:
            entry["timestamps_ms"] = self.timestamps_ms
        return Ledger(
            incarnation=self.incarnation + 1,
            pending=self.pending,
            previous=history[-KEPT_INCARNATIONS:],
            moved_to=list(self.moved_to),
            seen_at=seen_at,
            timestamps_ms=[],
            others=dict(self.others),
        )

    def landed_in(self, incarnation: int) -> OffsetRanges:
        if incarnation == self.incarnation:
            return self.landed
        for earlier in self.previous:
            if int(earlier["incarnation"]) == incarnation:
                return [[int(low), int(high)] for low, high in earlier["landed"]]
        return []

    def holes(self, incarnation: int) -> OffsetRanges:
        """The newest ``KEPT_HOLES`` gaps between the ranges landed in ``incarnation``: offsets below landed ones
        that never landed (a consumer group moved over them), which a rewind may land yet. A pending landing counts
        as landed here: a stored ledger names its last batch so until the partition's next ``begin``."""
        landed = self.landed_in(incarnation)
        pending = self.pending
        life = None if pending is None else self.incarnation if pending.incarnation is None else pending.incarnation
        if pending is not None and life == incarnation:
            landed = add(landed, pending.low, pending.high)
        for low, high in self.adopted_in(incarnation):  # its records there landed in the life before
            landed = add(landed, low, high)
        holes = [[below[1] + 1, above[0] - 1] for below, above in pairwise(landed)][-KEPT_HOLES:]
        if incarnation == self.incarnation and self.passed_over:  # their own budget: markers never crowd gaps out
            holes = sorted([*holes, *self.passed_over])
        return holes

    def is_landed(self, offset: int, incarnation: int | None = None) -> bool:
        """Whether a record at ``offset`` of ``incarnation`` landed (not at an offset a consumer passed over)."""
        if incarnation is None or incarnation == self.incarnation:
            return contains(self.landed, offset) and not contains(self.passed_over, offset)
        return contains(self.landed_in(incarnation), offset)

    def records_landed_in(self, incarnation: int) -> OffsetRanges:
        """The offsets of ``incarnation`` whose records landed: ``landed_in`` without what its consumer passed over."""
        landed = self.landed_in(incarnation)
        return without(landed, self.passed_over) if incarnation == self.incarnation else landed

    def pass_over(self, low: int, high: int, incarnation: int) -> None:
        """Record ``[low, high]`` as passed over by the consumer of ``incarnation``, so landed (``passed_over``: kept
        for the current life only)."""
        held = self.landed_in(incarnation)
        for first, last in self.adopted_in(incarnation):
            held = add(held, first, last)
        unheld = without([[low, high]], held) if incarnation == self.incarnation else []
        self.mark_landed(low, high, incarnation)
        for first, last in unheld:  # what landed there before (a batch re-cut further down) stays landed
            self.passed_over = add(self.passed_over, first, last)
        while len(self.passed_over) > KEPT_PASSED_OVER:  # a one-offset jump (a commit marker, most likely) goes first
            singles = [index for index, (first, last) in enumerate(self.passed_over) if first == last]
            del self.passed_over[singles[0] if singles else 0]

    def mark_landed(self, low: int, high: int, incarnation: int | None = None) -> None:
        """Record ``[low, high]`` as landed in ``incarnation`` (the current one by default)."""
        if incarnation is None or incarnation == self.incarnation:
            self.landed = add(self.landed, low, high)
            self.passed_over = without(self.passed_over, [[low, high]])
            return
        for earlier in self.previous:
            if int(earlier["incarnation"]) == incarnation:
                earlier["landed"] = add(self.landed_in(incarnation), low, high)

    def remember(self, *records: KafkaRecord, incarnation: int | None = None) -> None:
        """Fingerprint records about to land, so a different record at their offset is recognised."""
        if incarnation is not None and incarnation != self.incarnation:
            for earlier in self.previous:
                if int(earlier["incarnation"]) == incarnation:
                    known = _fingerprints(earlier)
                    for record in records:
                        _taken(known, record)
                    ranges = [[int(low), int(high)] for low, high in earlier["landed"]]
                    earlier["fingerprints"] = _encoded(_kept(known, ranges, KEPT_PREVIOUS_FINGERPRINTS))
            return
        for record in records:
            _taken(self.fingerprints, record)
        self.fingerprints = _kept(self.fingerprints, self.landed, KEPT_FINGERPRINTS)

    def moved(self, offset: int) -> None:
        """Record that the partition's consumer group is moved to ``offset`` (the newest of ``moved_to``)."""
        self.moved_to = [*(kept for kept in self.moved_to if kept != offset), offset][-KEPT_MOVES:]

    def moved_between(self, last: int, first: int) -> bool:
        """Whether the group was moved to an offset above ``last`` and up to ``first``: a consumer whose batch ended
        at ``last`` and whose next starts at ``first`` may have been moved over the offsets between."""
        return any(last < offset <= first for offset in self.moved_to)

    def forget(self, pending: Pending) -> None:
        """A pending landing that was removed: its records never landed, so its fingerprints say nothing."""
        incarnation = self.incarnation if pending.incarnation is None else pending.incarnation
        if incarnation == self.incarnation:
            self.fingerprints = {o: d for o, d in self.fingerprints.items() if o not in (pending.low, pending.high)}
            return
        for earlier in self.previous:
            if int(earlier["incarnation"]) == incarnation:
                known = _fingerprints(earlier)
                earlier["fingerprints"] = _encoded(
                    {o: d for o, d in known.items() if o not in (pending.low, pending.high)}
                )

    def to_json(self) -> dict[str, Any]:
        pending = self.pending
        moves = {"moved_to": self.moved_to} if self.moved_to else {}  # a ledger never moved reads as before
        restart = {} if self.seen_at is None else {"seen_at": self.seen_at, "adopted": self.adopted}
        stamps = {} if self.timestamps_ms is None else {"timestamps_ms": self.timestamps_ms}
        passed = {"passed_over": self.passed_over} if self.passed_over else {}
        return {
            **self.others,
            "format": FORMAT,
            "incarnation": self.incarnation,
            "landed": self.landed,
            "fingerprints": _encoded(self.fingerprints),
            "pending": None
            if pending is None
            else {
                "low": pending.low,
                "high": pending.high,
                "files": pending.files,
                "owner": pending.owner,
                "started_ms": pending.started_ms,
                "removing": pending.removing,
                "incarnation": pending.incarnation,
                "others_until_ms": pending.others_until_ms,
                "contents": pending.contents,
            },
            "previous": self._previous_with_next_life(),
            **moves,
            **restart,
            **stamps,
            **passed,
        }

    def _previous_with_next_life(self) -> list[dict[str, Any]]:
        """``previous``, the life before this one holding a copy of where this life's restart showed (``next_life``)."""
        before = self.previous[-1] if self.previous else None
        if self.seen_at is None or before is None or int(before["incarnation"]) != self.incarnation - 1:
            return self.previous
        copy = {"incarnation": self.incarnation, "seen_at": self.seen_at, "adopted": self.adopted}
        return [*self.previous[:-1], before | {"next_life": copy}]

    @classmethod
    def from_json(cls, document: Any) -> Ledger:
        """The ledger ``document`` (parsed JSON) holds. ``ValueError`` naming what is wrong when it is not a ledger
        this version reads (damaged, a newer version's ``format`` or ``pending``): never taken for one with other
        content."""
        if not isinstance(document, dict):
            raise ValueError(f"not a JSON object but {type(document).__name__}")
        written_as = _integer(document.get("format", FORMAT), "format")
        if written_as > FORMAT:
            raise ValueError(f"written by a newer version (format {written_as}; this version reads {FORMAT})")
        pending = document.get("pending")
        incarnation = _integer(document["incarnation"], "incarnation")
        previous = [_earlier(entry) for entry in _typed(document.get("previous", []), list, "previous")]
        restored = _restored_seen_at(previous)
        own = restored.get(incarnation, {}) if "seen_at" not in document else document
        return cls(
            incarnation=incarnation,
            landed=_ranges(document.get("landed", []), "landed"),
            fingerprints=_checked_fingerprints(document),
            pending=None if pending is None else _pending(pending),
            previous=previous,
            moved_to=_offsets(document.get("moved_to", []), "moved_to"),
            seen_at=_optional_integer(own.get("seen_at"), "seen_at"),
            adopted=_ranges(own.get("adopted", []), "adopted"),
            timestamps_ms=_timestamps(document.get("timestamps_ms")),
            others={name: value for name, value in document.items() if name not in _FIELDS},
            passed_over=_ranges(document.get("passed_over", []), "passed_over"),
        )


def _restored_seen_at(previous: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each life's ``next_life`` copy (incarnation -> seen_at, adopted), put back into an earlier life's entry that a
    version not knowing ``seen_at`` wrote without it; the rest, for the current life, returned."""
    copies: dict[int, dict[str, Any]] = {}
    for entry in previous:
        copy = entry.get("next_life")
        if isinstance(copy, dict) and "seen_at" in copy:
            life = _integer(copy.get("incarnation"), "next_life's incarnation")
            copies[life] = {
                "seen_at": _integer(copy["seen_at"], "next_life's seen_at"),
                "adopted": _ranges(copy.get("adopted", []), "next_life's adopted"),
            }
    for entry in previous:
        copy = copies.get(int(entry["incarnation"]))
        if copy is not None and "seen_at" not in entry:
            entry |= copy
    return copies


def _verdict(records: Sequence[KafkaRecord], known: dict[int, str], digests: dict[int, str]) -> bool | None:
    """True if a record matches ``known``, False if one contradicts it (and none matches), None if none is at a
    known offset."""
    verdict = None
    for record in records:
        expected = known.get(record.offset)
        if expected is not None:
            digest = digests.get(record.offset) or digests.setdefault(record.offset, fingerprint(record))
            if expected == digest:
                return True
            verdict = False
    return verdict


def names_pending(lake: LakeStore, source: str, path: str, *, unless_complete: bool = False) -> bool:
    """Whether the landing ledger of the partition that landed ``path`` (a raw or dead-letter file, named as a
    landing names its files) names it in its pending landing: one that started and is not counted yet, which the
    partition's next owner completes or removes (and then lands its records again, planned anew). A ledger that
    cannot be read counts as naming it; a path not named as a landing names its files is in no ledger.

    A landing stays pending in the stored ledger after it finished, until the partition's next ``begin``.
    ``unless_complete``: such a landing does not count, one not being removed whose files are all there, or
    whose dead-letter files are all there and whose missing files are raw files (written before them, then
    expired): whoever settles it next counts it landed, as ``shared.landing.partition`` does. Read this before
    the file itself: a landing no longer pending then was counted, or removed (its files deleted) before.
    Lake errors propagate (``LakeUnavailable``: retry)."""
    file = parse_batch_file_name(path)
    if file is None:
        return False
    found = lake.read_versioned(batch_file_ledger_path(source, file))
    if found is None:
        return False
    try:
        pending = orjson.loads(found[0]).get("pending")
        if pending is None or path not in pending.get("files", []):
            return False
        if not unless_complete or pending.get("removing"):
            return True
        files = [str(name) for name in pending["files"]]
        missing = {name for name in files if not lake.exists(name)}
        letters = {name for name in files if name.startswith(f"{DEADLETTER_AREA}/")}
        expired = bool(letters) and not letters & missing and all(name.startswith(f"{RAW_AREA}/") for name in missing)
        return bool(missing) and not expired
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError, UnsafePath):
        return True


def stored_holes(lake: LakeStore, source: str, where: TopicPartition, incarnation: int) -> OffsetRanges:
    """``Ledger.holes`` of the stored ledger of ``where``, for a signal sent outside a landing (``tools.redrive``):
    none when there is no ledger or it cannot be read (its gaps may close then, as before holes were kept)."""
    try:
        found = lake.read_versioned(ledger_path(source, where))
        return [] if found is None else Ledger.from_json(orjson.loads(found[0])).holes(incarnation)
    except LakeRefused:  # the lake refuses the app: its gaps are not known to be none
        raise
    except (LakeError, ValueError, KeyError, TypeError, AttributeError):  # orjson's errors are ValueErrors
        return []


def _taken(known: dict[int, str], record: KafkaRecord) -> None:
    """Add ``record``'s fingerprint as the newest (``known`` keeps the order fingerprints were taken in)."""
    digest = fingerprint(record)
    if known.get(record.offset) != digest:
        known.pop(record.offset, None)
        known[record.offset] = digest


def _kept(known: dict[int, str], landed: OffsetRanges, limit: int) -> dict[int, str]:
    """At most ``limit`` fingerprints, in the order they were taken. Kept first: the life's first (its first
    landed record) and the first offset of each landed range, so a batch that enters a landed range from
    below meets one, whatever landed since (a new life's first batches landing below the old life's first
    offset, a rewind); then the newest taken, so a redelivery from a recent landing's first record meets
    its own."""
    if len(known) <= limit:
        return known
    protected = [offset for offset in (next(iter(known)), *(low for low, _ in landed)) if offset in known]
    protected = list(dict.fromkeys(protected))[: limit // 2]
    recent = [offset for offset in reversed(known) if offset not in protected][: limit - len(protected)]
    chosen = set(protected) | set(recent)
    return {offset: digest for offset, digest in known.items() if offset in chosen}


def _fingerprints(entry: dict[str, Any]) -> dict[int, str]:
    return {int(offset): str(value) for offset, value in entry.get("fingerprints", {}).items()}


def _checked_fingerprints(entry: dict[str, Any]) -> dict[int, str]:
    """``entry``'s fingerprints as read from the lake: each a string, at an offset."""
    known = _typed(entry.get("fingerprints", {}), dict, "fingerprints")
    return {int(offset): _typed(value, str, "a fingerprint") for offset, value in known.items()}


_PENDING_FIELDS = frozenset(field.name for field in fields(Pending))


def _pending(document: Any) -> Pending:
    """The pending landing ``document`` holds; ``ValueError`` for a damaged one, or a newer version's (a field
    this version does not know could change what completing or removing it means)."""
    _typed(document, dict, "pending")
    unknown = set(document) - _PENDING_FIELDS
    if unknown:
        raise ValueError(f"pending has fields this version does not know: {sorted(unknown)}")
    files = _typed(document["files"], list, "pending files")
    contents = _typed(document.get("contents", {}), dict, "pending contents")
    incarnation = document.get("incarnation")
    return Pending(
        low=_integer(document["low"], "pending low"),
        high=_integer(document["high"], "pending high"),
        files=[_typed(path, str, "a pending file") for path in files],
        owner=_typed(document["owner"], str, "pending owner"),
        started_ms=_integer(document["started_ms"], "pending started_ms"),
        removing=_typed(document.get("removing", False), bool, "pending removing"),
        incarnation=None if incarnation is None else _integer(incarnation, "pending incarnation"),
        others_until_ms=_integer(document.get("others_until_ms", 0), "pending others_until_ms"),
        contents={_typed(path, str, "a file"): _typed(digest, str, "a digest") for path, digest in contents.items()},
    )


def _earlier(entry: Any) -> dict[str, Any]:
    """An earlier life's entry of ``previous``, checked (kept as stored: it is read where it is used)."""
    checked: dict[str, Any] = _typed(entry, dict, "an earlier life")
    _integer(checked["incarnation"], "an earlier life's incarnation")
    _ranges(checked["landed"], "an earlier life's landed")
    _checked_fingerprints(checked)
    _optional_integer(checked.get("seen_at"), "an earlier life's seen_at")
    _ranges(checked.get("adopted", []), "an earlier life's adopted")
    _timestamps(checked.get("timestamps_ms"))
    return checked


def _timestamps(value: Any) -> list[int] | None:
    """A life's ``timestamps_ms``: None (not known), ``[]`` (none landed yet) or ``[oldest, newest]``."""
    if value is None:
        return None
    stamps = [_integer(stamp, "timestamps_ms") for stamp in _typed(value, list, "timestamps_ms")]
    if len(stamps) not in (0, 2) or (stamps and stamps[0] > stamps[1]):
        raise ValueError(f"timestamps_ms is not [] or [oldest, newest]: {stamps!r}")
    return stamps


def _offsets(value: Any, what: str) -> list[int]:
    return [_integer(offset, what) for offset in _typed(value, list, what)]


def _ranges(value: Any, what: str) -> OffsetRanges:
    """Offset ranges as stored: ``[low, high]`` pairs of offsets, in order, none overlapping the next."""
    ranges = [[_integer(low, what), _integer(high, what)] for low, high in _typed(value, list, what)]
    if any(low > high for low, high in ranges) or any(a[1] >= b[0] for a, b in pairwise(ranges)):
        raise ValueError(f"{what} are not ranges in order: {ranges}")
    return ranges


def _optional_integer(value: Any, what: str) -> int | None:
    return None if value is None else _integer(value, what)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer: {value!r}")
    return value


def _typed(value: Any, kind: type[T], what: str) -> T:
    if not isinstance(value, kind):
        raise ValueError(f"{what} is not a JSON {_JSON_NAMES.get(kind, kind.__name__)}: {value!r}"[:200])
    return value


_JSON_NAMES: dict[type, str] = {dict: "object", list: "array", str: "string", bool: "boolean"}


def _encoded(known: dict[int, str]) -> dict[str, str]:
    """The fingerprints as JSON, in the order they were taken (ledgers written before kept offset order)."""
    return {str(offset): value for offset, value in known.items()}
