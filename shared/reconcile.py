"""Reconcile the broker with the lake, and reposition a consumer group by time. Pure decisions.

Reconcile: every offset a partition retains on the broker must be in ``raw/`` or ``deadletter/``
exactly once, for the partition's current incarnation (older incarnations' offsets are gone from
the broker). What is missing is a *gap*; what is there twice, a *double* (a record both landed
and dead-lettered counts as a double, except ``entity_rejected`` and the dead letters of
``tools.reprocess``, which are in both by design).

Reposition: the first offset whose record timestamp is at or after a time, per partition. The
broker's time index is asked first and its answer checked against the records around it; an
answer that does not hold (Tansu answers the earliest offset for any time) is replaced by a
binary search over the records' timestamps, which needs only fetches.
"""

from __future__ import annotations

import gzip
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shared import formats
from shared.compaction.hours import parse_raw_path
from shared.errors import TransientError, UnreadableLakeFile
from shared.lake.base import LakeStore
from shared.layout import DEADLETTER_AREA, RAW_AREA, ledger_path
from shared.records import TopicPartition
from shared.source_model import INT64_MAX

IDENTITY = ["_topic", "_partition", "_incarnation", "_offset"]
BOTH_BY_DESIGN = "entity_rejected"  # landed in raw and dead-lettered: its entity refused the update
REPROCESSED = ".reprocessed-"  # dead letters tools.reprocess wrote for rows it removed from curated/


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
        return self.reason == BOTH_BY_DESIGN or REPROCESSED in self.path


def landed_offsets(lake: LakeStore, source: str, unreadable: list[str] | None = None) -> list[Landed]:
    """Every raw row and dead letter of ``source``, by identity (Parquet reads only those columns).

    A file that cannot be read as its name says, or that is gone when read (the lifecycle rule or an operator
    deleted it after the listing), raises :class:`UnreadableLakeFile` naming it; given ``unreadable``, it is
    left out (its offsets then count as missing) and ``"<path>: <why>"`` appended. An outage
    (``TransientError``) is not the file's: it stops the run."""
    found: list[Landed] = []
    for area in (RAW_AREA, DEADLETTER_AREA):
        for path in lake.list_paths(f"{area}/{source}"):
            raw = parse_raw_path(source, path.replace(f"{DEADLETTER_AREA}/", f"{RAW_AREA}/", 1))
            if raw is None:
                continue
            try:
                found.extend(_identities(raw.format, lake.read(path), path, area == DEADLETTER_AREA))
            except TransientError:
                raise  # the lake's outage, not the file's: the run stops
            except Exception as error:  # any decoder's error, or the file deleted since it was listed (retention)
                if unreadable is None:
                    raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
                unreadable.append(f"{path}: {type(error).__name__}: {error}")
    return found


def _identities(fmt: str, data: bytes, path: str, dead: bool) -> list[Landed]:
    if fmt == "parquet":
        table = pq.read_table(pa.BufferReader(data), columns=None)
        names = [name for name in IDENTITY if name in table.column_names]
        rows = table.select(names).to_pylist()
    elif fmt == "jsonl":
        rows = [orjson.loads(line) for line in gzip.decompress(data).splitlines() if line]
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


def current_incarnations(
    lake: LakeStore, source: str, positions: Iterable[TopicPartition], landed: list[Landed]
) -> dict[TopicPartition, int]:
    """Each partition's current incarnation: its landing ledger's, else the highest its files carry."""
    highest: dict[TopicPartition, int] = {}
    for row in landed:
        key = TopicPartition(row.topic, row.partition)
        highest[key] = max(highest.get(key, 0), row.incarnation)
    incarnations = {}
    for position in positions:
        incarnation = highest.get(position, 0)
        try:
            document = orjson.loads(lake.read(ledger_path(source, TopicPartition(*position))))
            incarnation = int(document.get("incarnation", incarnation))
        except Exception:  # no ledger yet, or one this code cannot read: the files decide
            pass
        incarnations[position] = incarnation
    return incarnations


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

    @property
    def missing(self) -> int:
        return sum(last - first + 1 for first, last in self.gaps)

    @property
    def clean(self) -> bool:
        return not self.gaps and not self.doubles


def reconcile(
    retained: Mapping[TopicPartition, tuple[int, int]],
    landed: list[Landed],
    incarnations: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int | None] | None = None,
    records_in: RecordsIn | None = None,
) -> list[PartitionReport]:
    """Gaps and doubles per partition between the broker's retained ``[low, end)`` and the lake.

    ``committed``: the processor's consumer group's committed offsets (None for a partition it never
    committed). An offset in neither area at or past it is *pending* (the processor has not reached it,
    or has not committed since), not a gap; without ``committed`` every such offset is a gap.
    ``records_in``: which of a partition's offsets in neither area hold a record a consumer is given. The
    others (a transactional producer's commit markers, records aborted or compacted away) are counted
    under ``no_record``; without it every offset is taken to hold one."""
    by_offset: dict[TopicPartition, dict[int, list[Landed]]] = defaultdict(lambda: defaultdict(list))
    for row in landed:
        position = TopicPartition(row.topic, row.partition)
        if position in retained and row.incarnation == incarnations.get(position, 0):
            by_offset[position][row.offset].append(row)
    reports = []
    for position in sorted(retained):
        low, end = retained[position]
        report = PartitionReport(*position, incarnations.get(position, 0), low, end)
        rows = by_offset.get(position, {})
        missing: list[int] = []
        for offset in range(low, end):
            copies = rows.get(offset, [])
            if not copies:
                missing.append(offset)
                continue
            counted = [c for c in copies if not c.also_in_raw_by_design]
            report.landed += any(c.reason is None for c in copies)
            report.dead_lettered += any(c.reason is not None for c in copies)
            if len(counted) > 1:
                report.doubles[offset] = sorted(c.path for c in copies)
        never_committed = committed is not None and committed.get(position) is None
        if records_in is not None and missing and not never_committed:  # else all pending: nothing to read
            held = records_in(position, ranges(missing))
            report.no_record = len(missing)
            missing = [offset for offset in missing if offset in held]
            report.no_record -= len(missing)
        if committed is not None:
            first_pending = committed.get(position)
            first_pending = low if first_pending is None else first_pending
            report.pending = sum(1 for offset in missing if offset >= first_pending)
            missing = [offset for offset in missing if offset < first_pending]
        report.gaps = ranges(missing)
        reports.append(report)
    return reports


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

FetchTimestamp = Callable[[int], int]  # offset -> that record's timestamp (epoch ms)


def offset_for_time(
    fetch: FetchTimestamp, low: int, end: int, at_ms: int, broker_answer: int | None
) -> tuple[int, str]:
    """The first offset in ``[low, end)`` whose record's timestamp is ``>= at_ms`` (``end`` when none), and how
    it was found: ``broker`` (its time index, checked against the records around it) or ``search``."""
    if low >= end:
        return end, "empty"
    if broker_answer is not None and broker_answer < 0:  # Kafka's "no record at or after it": the end
        broker_answer = end
    if broker_answer is not None and _holds(fetch, low, end, at_ms, broker_answer):
        return broker_answer, "broker"
    first, last = low, end  # invariant: records before `first` are earlier than at_ms; `last` is not earlier
    while first < last:
        middle = (first + last) // 2
        if fetch(middle) < at_ms:
            first = middle + 1
        else:
            last = middle
    return first, "search"


def _holds(fetch: FetchTimestamp, low: int, end: int, at_ms: int, answer: int) -> bool:
    if not low <= answer <= end:
        return False
    if answer < end and fetch(answer) < at_ms:
        return False
    return answer == low or fetch(answer - 1) < at_ms


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
