"""Reconcile the broker with the lake, and reposition a consumer group by time. Pure decisions.

Reconcile: every offset a partition retains on the broker must be in ``raw/`` or ``deadletter/``
exactly once, for the partition's current incarnation (older incarnations' offsets are gone from
the broker). What is missing is a *gap*; what is there twice, a *double* (a record both landed
and dead-lettered counts as a double, except ``entity_rejected`` and the dead letters of
``tools.reprocess``, which are in both by design, and so are no proof of a raw row: an offset only
they name is missing from raw/).

Which rows are the broker's records is checked against the broker, as the landing checks a batch
(``shared.landing.ledger``): the records at the offsets the landing ledger fingerprinted. When they
differ, the topic was recreated and the lake holds none of its new records there (:class:`Life`).

Reposition: the first offset whose record timestamp is at or after a time, per partition. The
broker's time index is asked first and its answer checked against the records around it; an
answer that does not hold (Tansu answers the earliest offset for any time) is replaced by a
binary search over the records' timestamps, which needs only fetches.
"""

from __future__ import annotations

import dataclasses
import functools
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shared import formats
from shared.bounded_reads import json_lines
from shared.compaction.hours import parse_raw_path
from shared.errors import LakeRefused, TransientError, UnreadableLakeFile, WriteConflict
from shared.lake.base import LakeStore
from shared.landing.ledger import FORMAT as LEDGER_FORMAT
from shared.landing.ledger import Ledger
from shared.layout import DEADLETTER_AREA, LEDGER_AREA, RAW_AREA, is_reprocessed, ledger_path, safe_segment
from shared.offset_ranges import without
from shared.records import TopicPartition
from shared.source_model import INT64_MAX
from shared.state.bucket_counts import RECORD_PATH as BUCKETS_RECORD_PATH
from shared.state.registry import ENTITY_KINDS

IDENTITY = ["_topic", "_partition", "_incarnation", "_offset"]
BOTH_BY_DESIGN = "entity_rejected"  # landed in raw and dead-lettered: its entity refused the update


@dataclass(frozen=True, slots=True)
class Landed:
    """One row's identity in the lake: where it is and, for a dead letter, why."""

    topic: str
    partition: int
    incarnation: int
    offset: int
    path: str
    reason: str | None = None  # None: a raw row

    @property
    def also_in_raw_by_design(self) -> bool:
        """Dead letters of records that landed too: an entity refused their update, or a reprocess removed them."""
        return self.reason == BOTH_BY_DESIGN or is_reprocessed(self.path)


def landed_offsets(
    lake: LakeStore,
    source: str,
    unreadable: list[str] | None = None,
    areas: Sequence[str] = (RAW_AREA, DEADLETTER_AREA),
) -> list[Landed]:
    """Every raw row and dead letter of ``source`` (of ``areas``, listed in that order), by identity (Parquet reads
    only those columns).

    A file that cannot be read as its name says, or that is gone when read (the lifecycle rule or an operator
    deleted it after the listing), raises :class:`UnreadableLakeFile` naming it; given ``unreadable``, it is
    left out (its offsets then count as missing) and ``"<path>: <why>"`` appended. An outage
    (``TransientError``) is not the file's: it stops the run."""
    found: list[Landed] = []
    for area in areas:
        for path in lake.list_paths(f"{area}/{source}"):
            raw = parse_raw_path(source, path.replace(f"{DEADLETTER_AREA}/", f"{RAW_AREA}/", 1))
            if raw is None:
                continue
            try:
                found.extend(_identities(raw.format, lake.read(path), path, area == DEADLETTER_AREA))
            except (TransientError, LakeRefused):
                raise  # the lake's outage or refusal, not the file's: the run stops
            except Exception as error:  # any decoder's error, or the file deleted since it was listed (retention)
                if unreadable is None:
                    raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
                unreadable.append(f"{path}: {type(error).__name__}: {error}")
    return found


def _identities(fmt: str, data: bytes, path: str, dead: bool) -> list[Landed]:
    if fmt == "parquet":
        file = pq.ParquetFile(pa.BufferReader(data))
        names = [name for name in IDENTITY if name in file.schema_arrow.names]
        rows = file.read(columns=names).to_pylist()  # only those columns are decoded
    elif fmt == "jsonl":
        rows = [orjson.loads(line) for line in json_lines(data)]
    else:
        rows = formats.decode("avro", data)
    return [
        Landed(
            str(row["_topic"]),
            int(row["_partition"]),
            int(row.get("_incarnation") or 0),
            int(row["_offset"]),
            path,
            str(row.get("reason")) if dead else None,
        )
        for row in rows
    ]


# The landing's fingerprint (``shared.landing.ledger.fingerprint``) of the broker's record at each of a partition's
# offsets asked; an offset that holds no record a consumer is given is left out.
FingerprintsAt = Callable[[TopicPartition, list[int]], Mapping[int, str]]


@dataclass(frozen=True, slots=True)
class Life:
    """Which of the lake's rows hold the records a partition's broker retains now (the current life of its offsets).

    ``incarnation``: that life's ``_incarnation``; its rows count. ``recreated_from``: from this offset on, the
    broker's records are not those the lake landed (the topic was recreated, and its new records there have not
    landed yet): no row there counts. When they differ from the retained log's first fingerprinted offset on,
    ``incarnation`` is the next one, which nothing landed in yet. ``adopted_below``: rows of the life before,
    at offsets below it, count too: this life's first records, landed as the earlier life before the restart
    showed (``Ledger.landed_before_seen``); so do those at the offsets the ledger recorded this life ``adopted``.
    ``recreated_below``: below this offset the broker's records are not those the lake landed, although the life's
    rows above match: the topic was recreated under a consumer that resumed at its old position, so the new
    records below it were never read. No row of the life there counts."""

    incarnation: int
    recreated_from: int | None = None
    adopted_below: int | None = None
    verified: bool = True  # False: no offset the ledger fingerprinted is retained, so the life was not compared
    adopted: tuple[tuple[int, int], ...] = ()
    recreated_below: int | None = None
    skipped: tuple[tuple[int, int], ...] = ()  # the ledger's holes in the life, passed over included (Ledger.holes)
    # The highest offset of the life the ledger counts landed or names in its landing (below ``recreated_from``): a
    # redelivery skips what it holds as landed, so with no file there those offsets are missing, not pending.
    landed_high: int | None = None

    def counts(self, row: Landed) -> bool:
        if row.incarnation == self.incarnation:
            if self.recreated_below is not None and row.offset < self.recreated_below:
                return False
            return self.recreated_from is None or row.offset < self.recreated_from
        if row.incarnation != self.incarnation - 1:
            return False
        if self.adopted_below is not None and row.offset < self.adopted_below:
            return True
        return any(low <= row.offset <= high for low, high in self.adopted)


def current_lives(
    lake: LakeStore,
    source: str,
    retained: Mapping[TopicPartition, tuple[int, int]],
    landed: list[Landed],
    fingerprints_at: FingerprintsAt | None = None,
    unreadable: list[str] | None = None,
) -> dict[TopicPartition, Life]:
    """Each partition's current life: its landing ledger's incarnation (else the highest its files carry), checked
    against the broker's records at the offsets the ledger fingerprinted (:func:`life_of`; not without
    ``fingerprints_at``).

    A ledger this version cannot read (damaged, or a newer version's) is not trusted: its partition's files decide
    the incarnation, the life is not ``verified``, and ``"<path>: <why>"`` is appended to ``unreadable``
    (without it, :class:`UnreadableLakeFile`). Outages and refusals propagate."""
    highest: dict[TopicPartition, int] = {}
    lowest: dict[tuple[TopicPartition, int], int] = {}
    for row in landed:
        key = TopicPartition(row.topic, row.partition)
        highest[key] = max(highest.get(key, 0), row.incarnation)
        lowest[key, row.incarnation] = min(lowest.get((key, row.incarnation), row.offset), row.offset)
    lives = {}
    for position, (low, end) in retained.items():
        position = TopicPartition(*position)
        path = ledger_path(source, position)
        found = None
        try:
            found = lake.read_versioned(path)
            ledger = None if found is None else _ledger_at(path, found[0])
        except (TransientError, LakeRefused):  # not "no ledger": the lake's outage or refusal
            raise
        except Exception as error:  # one this version cannot read: it proves nothing, so nothing is reconciled
            why = _unreadable_ledger(path, None if found is None else found[0], error)
            if unreadable is None:
                raise UnreadableLakeFile(path, why) from error
            unreadable.append(f"{path}: {why}")
            lives[position] = Life(highest.get(position, 0), verified=False)
            continue
        if ledger is None:  # no ledger yet: the files decide
            lives[position] = Life(highest.get(position, 0))
            continue
        first = lowest.get((position, ledger.incarnation))
        ask = None if fingerprints_at is None else functools.partial(fingerprints_at, position)
        life = life_of(ledger, low, end, first, ask)
        if life.incarnation == ledger.incarnation:
            high = _landed_high(ledger)
            if high is not None and life.recreated_from is not None:
                high = min(high, life.recreated_from - 1)
            holes = tuple((a, b) for a, b in ledger.holes(life.incarnation))
            life = dataclasses.replace(life, skipped=holes, landed_high=high)
        lives[position] = life
    return lives


def _landed_high(ledger: Ledger) -> int | None:
    """The highest offset of the ledger's current life it counts landed or names in its landing (one not being
    removed: that one's records land again)."""
    highs = [high for _, high in ledger.landed]
    pending = ledger.pending
    if pending is not None and not pending.removing and pending.incarnation in (None, ledger.incarnation):
        highs.append(pending.high)
    return max(highs, default=None)


def _unreadable_ledger(path: str, data: bytes | None, error: Exception) -> str:
    """Why the ledger at ``path`` (``data``, when it was read) cannot be read, as an operator acts on it."""
    try:
        written_as = orjson.loads(data).get("format") if data is not None else None
    except (ValueError, AttributeError):
        written_as = None
    if isinstance(written_as, int) and written_as > LEDGER_FORMAT:
        return (
            f"written by a newer version (ledger format {written_as}; this version reads {LEDGER_FORMAT}): "
            "run the newer version's tools.reconcile"
        )
    if isinstance(error, UnreadableLakeFile):
        return str(error).removeprefix(f"{path}: ")
    return f"{type(error).__name__}: {error}"


def life_of(
    ledger: Ledger, low: int, end: int, first_row: int | None, ask: Callable[[list[int]], Mapping[int, str]] | None
) -> Life:
    """The life of the broker's records ``[low, end)``, told as the landing tells a batch's by fingerprints
    (``Ledger.incarnation_of``, ``split_at``, ``landed_before_seen``), from the broker's records at the offsets
    ``ledger`` fingerprinted; not by the timestamps each life landed (``Ledger.newer_than_landed``), which would need
    every record's timestamp read back from the broker.

    The current life's fingerprints: none matching and one differing, the topic was recreated and none of its new
    records landed; one matching and a later one differing, those from that one on have not landed (the new life's
    first records landed as the old one, which held the offsets above them); one differing below the lowest match,
    the new life's records up to it were never read (``recreated_below``). The life before's fingerprints below
    the current life's first landed offset (the ledger's, or ``first_row``, its files' lowest): one matching, the
    earlier life's rows below that offset are this life's. A log that ends at or below an offset the ledger counts
    landed was recreated (offsets never go back in one life): told so when nothing fingerprinted is in ``[low, end)``;
    otherwise, with nothing there, the ledger's incarnation as it is, not ``verified``; with no ``ask``, as it is."""
    current = ledger.incarnation
    adopted = tuple((first, last) for first, last in ledger.adopted)
    if ask is None or low >= end:
        return Life(current, adopted=adopted)
    known = {offset: digest for offset, digest in ledger.fingerprints.items() if low <= offset < end}
    firsts = [first_row] if first_row is not None else []
    if ledger.landed:
        firsts.append(ledger.landed[0][0])
    pending = ledger.pending
    if pending is not None and pending.incarnation in (None, current):
        firsts.append(pending.low)
    if ledger.seen_at is not None:  # stored where the restart was seen: below it, not inferred from what landed
        firsts = [ledger.seen_at]
    earlier = next((e for e in ledger.previous if int(e["incarnation"]) == current - 1), None)
    below: dict[int, str] = {}
    if earlier is not None and firsts:
        top = min(min(firsts), end)
        below = {int(o): str(d) for o, d in earlier.get("fingerprints", {}).items() if low <= int(o) < top}
    if not known and not below:
        if ledger.landed and ledger.landed[-1][1] >= end:  # nothing to compare, but the log went back
            return Life(current + 1, recreated_from=low)
        return Life(current, verified=not ledger.fingerprints, adopted=adopted)
    found = ask(sorted(set(known) | set(below)))
    if not found.keys() & (known.keys() | below.keys()):  # none holds a record now (markers, compacted): not compared
        return Life(current, verified=False, adopted=adopted)
    matched = sorted(offset for offset, digest in known.items() if found.get(offset) == digest)
    differ = sorted(offset for offset, digest in known.items() if offset in found and found[offset] != digest)
    if differ and not matched:
        return Life(current + 1, recreated_from=low)
    recreated_from = next((offset for offset in differ if offset > matched[0]), None) if matched else None
    differ_below = [offset for offset in differ if matched and offset < matched[0]]
    recreated_below = differ_below[-1] + 1 if differ_below else None
    proven = any(found.get(offset) == digest for offset, digest in below.items())
    return Life(
        current, recreated_from, min(firsts) if proven else None, adopted=adopted, recreated_below=recreated_below
    )


# The offsets among a partition's sorted inclusive ranges that hold a record a consumer is given.
RecordsIn = Callable[[TopicPartition, list[tuple[int, int]]], Collection[int]]


@dataclass
class PartitionReport:
    topic: str
    partition: int
    incarnation: int
    low: int  # first offset the broker retains
    end: int  # one past the last
    landed: int = 0
    dead_lettered: int = 0
    pending: int = 0  # in neither area, at or past the consumer group's committed offset: not processed yet
    no_record: int = 0  # in neither area, holding no record a consumer reads (transaction markers, aborted, compacted)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # inclusive offset ranges in neither area
    doubles: dict[int, list[str]] = field(default_factory=dict)  # offset -> the files holding it
    recreated_from: int | None = None  # the broker's records from here on are not those the lake landed (Life)
    recreated_below: int | None = None  # the broker's records below here are not those the lake landed (Life)
    verified: bool = True  # False: no fingerprinted offset retained, the lake's rows were not compared (Life)
    raw_gone: list[tuple[int, int]] = field(default_factory=list)  # gaps only letters in raw/ by design name
    # Offsets from the group's committed one up to the first the broker retains that the lake does not hold: the
    # broker deleted them (retention) before the processor reached them, so they can never land.
    expired: list[tuple[int, int]] = field(default_factory=list)
    # Offsets the landing ledger never landed below ones it did (passed over by a consumer, or a group moved past them)
    # that the broker no longer retains and the lake does not hold: lost to retention, unless they held no record.
    skipped_gone: list[tuple[int, int]] = field(default_factory=list)
    # Those of one offset each: most likely a transactional producer's commit markers, so they are named, and the
    # partition is not taken for unreconciled for them (a marker after every transaction would make it so for good).
    skipped_one_gone: list[int] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(last - first + 1 for first, last in self.gaps)

    @property
    def clean(self) -> bool:
        return not self.gaps and not self.doubles and not self.expired and not self.skipped_gone


def reconcile(
    retained: Mapping[TopicPartition, tuple[int, int]],
    landed: list[Landed],
    incarnations: Mapping[TopicPartition, int | Life],
    committed: Mapping[TopicPartition, int | None] | None = None,
    records_in: RecordsIn | None = None,
) -> list[PartitionReport]:
    """Gaps and doubles per partition between the broker's retained ``[low, end)`` and the lake's rows of each
    partition's current life (``incarnations``: a :class:`Life`, or only its incarnation).

    An offset whose only copies are dead letters in raw/ too by design (``entity_rejected``, reprocess) is a gap:
    its raw row is gone. It is one whatever ``committed`` and ``records_in`` say (the record was processed).

    ``committed``: the processor's consumer group's committed offsets (None for a partition it never
    committed, or whose offset expired). An offset in neither area at or past it is *pending* (the processor has
    not reached it, or has not committed since), not a gap; with none committed, one past the partition's last
    offset the lake holds, or the ledger landed (``Life.landed_high``), is; without ``committed`` every such offset
    is a gap.
    ``records_in``: which of a partition's offsets in neither area hold a record a consumer is given. The
    others (a transactional producer's commit markers, records aborted or compacted away) are counted
    under ``no_record``; without it every offset is taken to hold one."""
    lives = {TopicPartition(*p): life if isinstance(life, Life) else Life(life) for p, life in incarnations.items()}
    by_offset: dict[TopicPartition, dict[int, list[Landed]]] = defaultdict(lambda: defaultdict(list))
    for row in landed:
        position = TopicPartition(row.topic, row.partition)
        if position in retained and lives.get(position, Life(0)).counts(row):
            by_offset[position][row.offset].append(row)
    reports = []
    for position in sorted(retained):
        low, end = retained[position]
        life = lives.get(TopicPartition(*position), Life(0))
        report = PartitionReport(
            *position,
            life.incarnation,
            low,
            end,
            recreated_from=life.recreated_from,
            recreated_below=life.recreated_below,
            verified=life.verified,
        )
        rows = by_offset.get(position, {})
        missing: list[int] = []
        raw_gone: list[int] = []
        for offset in range(low, end):
            copies = rows.get(offset, [])
            if not copies:
                missing.append(offset)
                continue
            counted = [c for c in copies if not c.also_in_raw_by_design]
            if not counted:  # a letter that is in raw/ too by design, without its raw row
                raw_gone.append(offset)
                continue
            report.landed += any(c.reason is None for c in copies)
            report.dead_lettered += any(c.reason is not None for c in copies)
            if len(counted) > 1:
                report.doubles[offset] = sorted(c.path for c in copies)
        first_pending = None if committed is None else committed.get(position)
        if first_pending is not None and first_pending < low:
            report.expired = _not_held(first_pending, low - 1, sorted(o for o in rows if first_pending <= o < low))
        gone = _skipped_gone(life.skipped, low, rows, report.expired)
        report.skipped_gone = [(first, last) for first, last in gone if first < last]
        report.skipped_one_gone = [first for first, last in gone if first == last]
        if committed is not None and first_pending is None:
            # No committed offset (never committed, or expired: Kafka drops an empty group's after 7 days): what
            # the lake holds shows how far the processor got. An offset below a row of it is a gap, not pending.
            # Nor is one up to the highest the ledger landed (or names landing): a redelivery skips those as landed.
            landed_high = low - 1 if life.landed_high is None else life.landed_high
            first_pending = max(low, max(rows, default=low - 1) + 1, landed_high + 1)
        if records_in is not None and missing and (first_pending is None or missing[0] < first_pending):
            held = records_in(position, ranges(missing))  # else all pending: nothing to read
            report.no_record = len(missing)
            missing = [offset for offset in missing if offset in held]
            report.no_record -= len(missing)
        if first_pending is not None:
            report.pending = sum(1 for offset in missing if offset >= first_pending)
            missing = [offset for offset in missing if offset < first_pending]
        report.raw_gone = ranges(raw_gone)
        report.gaps = ranges(missing + raw_gone)
        reports.append(report)
    return reports


def _skipped_gone(
    skipped: Sequence[tuple[int, int]], low: int, rows: Mapping[int, object], expired: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The runs of the ledger's ``skipped`` ranges below the broker's first retained offset ``low`` that the lake does
    not hold (``rows``' offsets) and ``expired`` does not name already."""
    gone: list[tuple[int, int]] = []
    for first, last in skipped:
        if first < low:
            last = min(last, low - 1)
            gone += _not_held(first, last, sorted(o for o in rows if first <= o <= last))
    named = [[first, last] for first, last in expired]
    return [(first, last) for first, last in without([[first, last] for first, last in gone], named)]


def _not_held(first: int, last: int, held: list[int]) -> list[tuple[int, int]]:
    """The inclusive runs of ``[first, last]`` outside ``held`` (sorted offsets within it)."""
    runs: list[tuple[int, int]] = []
    for offset in [*held, last + 1]:
        if offset > first:
            runs.append((first, offset - 1))
        first = offset + 1
    return runs


def in_ranges(gaps: list[tuple[int, int]], offset: int) -> bool:
    """Whether ``offset`` is in one of ``gaps`` (sorted, disjoint, inclusive ranges)."""
    index = bisect_right(gaps, (offset, INT64_MAX)) - 1
    return index >= 0 and gaps[index][0] <= offset <= gaps[index][1]


def ranges(offsets: list[int]) -> list[tuple[int, int]]:
    """Sorted offsets as inclusive runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if runs and runs[-1][1] + 1 == offset:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


# --- offsets for a time -----------------------------------------------------------------------------

# offset -> the timestamp (epoch ms) of the first record a consumer is given at or after it, or None when there is none.
# An offset that holds no record (a transactional producer's commit marker, a record aborted or compacted away)
# answers for the next record: a marker tail answers None, as the end does.
FetchTimestamp = Callable[[int], int | None]


def offset_for_time(
    fetch: FetchTimestamp, low: int, end: int, at_ms: int, broker_answer: int | None
) -> tuple[int, str]:
    """The first offset in ``[low, end)`` whose record's timestamp is ``>= at_ms`` (``end`` when none), and how
    it was found: ``broker`` (its time index, checked against the records around it) or ``search``.

    An offset that holds no record counts as the record after it (``FetchTimestamp``): none after it counts as
    not earlier, so offsets past the last record (a marker tail) are the end, and the answer is ``end``."""
    if low >= end:
        return end, "empty"
    if broker_answer is not None and broker_answer < 0:  # Kafka's "no record at or after it": the end
        broker_answer = end
    if broker_answer is not None:
        held = _holds(fetch, low, end, at_ms, broker_answer)
        if held is not None:
            return held, "broker"
    # invariant: records before `first` are earlier than at_ms; the first record at or after `last` is not
    # (or there is none: from `none_from` on no offset holds a record)
    first, last, none_from = low, end, end
    while first < last:
        middle = (first + last) // 2
        found = fetch(middle)
        if found is not None and found < at_ms:
            first = middle + 1
        else:
            last = middle
            if found is None:
                none_from = min(none_from, middle)
    return (end if first >= none_from else first), "search"


def _holds(fetch: FetchTimestamp, low: int, end: int, at_ms: int, answer: int) -> int | None:
    """``answer`` if it is the first offset whose record is not earlier than ``at_ms`` (``end`` for one with no
    record from it on); None when it is not, or when the record before it cannot be told from the one after (an
    offset before it holding no record answers for the next): the search decides then."""
    if not low <= answer <= end:
        return None
    held = answer
    if answer < end:
        found = fetch(answer)
        if found is None:  # no record from the answer on: the end
            held = end
        elif found < at_ms:
            return None
    if answer == low:
        return held
    before = fetch(answer - 1)
    return held if before is not None and before < at_ms else None


@dataclass(frozen=True, slots=True)
class Move:
    topic: str
    partition: int
    committed: int | None  # None: the group has no offset there
    target: int
    how: str

    @property
    def shift(self) -> int | None:
        """Records skipped (positive) or read again (negative) by the move."""
        return None if self.committed is None else self.target - self.committed


def group_is_idle(state: str) -> bool:
    """A group may be moved only without members: EMPTY, or DEAD (no such group yet)."""
    return state.upper().rsplit(".", 1)[-1] in ("EMPTY", "DEAD")


MARK_ATTEMPTS = 5  # ledger writes lost to a landing instance before the move is given up (nothing moved)


def mark_moves(lake: LakeStore, source: str, moves: Sequence[Move]) -> list[TopicPartition]:
    """Write into each moved partition's landing ledger the offset its group is moved to (``Ledger.moved_to``),
    before the group is moved; the partitions written. Run it first: offsets a consumer passes over across a
    move may hold records, and a processor put out of its group while it lived on (a batch retried past
    ``maxPollIntervalMs``) is no member, so the group is idle while it keeps its memory of its last batch
    (``PartitionLanding._recordless``). The write is conditional on the ledger's version, as every ledger write:
    such an instance's next write loses to it, and it reads the ledger again, marker included.

    A partition with no ledger (nothing of it landed) gets one holding only the marker: an instance retrying its
    first batch may land it after this. Not for a keyed source nothing of which was ever processed (no ledger of
    it, and the lake's record of bucket counts does not name it: N is recorded before a keyed source's first
    landing): no instance holds a memory of it, and a ledger would make its state start in the buckets of the
    versions before that record (``shared.state.bucket_counts``).

    ``UnreadableLakeFile`` for a ledger this version cannot read (the landing waits on it too); ``WriteConflict``
    after ``MARK_ATTEMPTS`` lost writes; lake outages propagate. Either way the group must not be moved."""
    create = _ledgers_may_be_created(lake, source)
    written = []
    for move in moves:
        position = TopicPartition(move.topic, move.partition)
        if _mark_move(lake, ledger_path(source, position), move.target, create=create):
            written.append(position)
    return written


def _mark_move(lake: LakeStore, path: str, target: int, *, create: bool) -> bool:
    for _ in range(MARK_ATTEMPTS):
        found = lake.read_versioned(path)
        if found is None and not create:
            return False
        ledger, version = (Ledger.first(), None) if found is None else (_ledger_at(path, found[0]), found[1])
        ledger.moved(target)
        try:
            lake.write_if(path, orjson.dumps(ledger.to_json()), version)
        except WriteConflict:
            continue  # a landing wrote it since it was read: read it again
        return True
    raise WriteConflict(f"{path} kept changing under {MARK_ATTEMPTS} attempts to mark the move in it")


def _ledger_at(path: str, data: bytes) -> Ledger:
    try:
        return Ledger.from_json(orjson.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # as PartitionLanding reads it
        raise UnreadableLakeFile(
            path, f"not a landing ledger this version reads ({type(error).__name__}: {error})"
        ) from error


def _ledgers_may_be_created(lake: LakeStore, source: str) -> bool:
    """Whether a ledger may be created for a partition of ``source`` without changing its state's N: not a keyed
    source, one with a ledger already, or one the record of bucket counts names (an unreadable record names none:
    no keyed batch is processed while it cannot be read)."""
    if source not in ENTITY_KINDS or lake.list_paths(f"{LEDGER_AREA}/{safe_segment(source)}"):
        return True
    found = lake.read_versioned(BUCKETS_RECORD_PATH)
    if found is None:
        return False
    try:
        named = orjson.loads(found[0])["buckets"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    return isinstance(named, dict) and source in named
