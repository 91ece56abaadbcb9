"""Rewriting one hour of ``curated/<source>`` from its curated rows and new raw files, in bounded memory.

The plan is ``slices``'s: scan every input's identity and event-time columns, find the rows that
repeat, then read, sort and write the hour one event-time slice at a time into its data files
(``parts``), and commit them in one Delta transaction that replaces the hour. Memory holds one
slice (about ``SLICE_ROWS`` rows: an instant holding more is cut by offset range), ``READ_AHEAD``
raw files in flight and the data file being written, whatever the hour's size. Each new raw file
is read for the scan, then for each slice its rows are in (``InputStats.spans``: a file of one minute with one
event late by fifty is read for those two times' slices, not for every slice between), and cut to the slice as
it is decoded; what the next slice reads of it is carried while it fits in a slice. The hour's curated rows are
queried slice by slice.
The result is what ``rows.merge_hour`` gives the whole hour in memory, in the same order.

Schema drift is handled as the hour passes (``drift.HourFit``): every part of every slice is
fitted to the curated table's types (misfits to ``_extra``), the hour's schema adds any new
nullable column, and the drift report, counted slice by slice, rides in the hour's commit.
The hour's schema is checked against what a Delta table can store before any file is written:
a raw file with a column no Delta table can hold fails its hour, never the table.

An hour whose raw files hold no rows is committed too, as a commit of no files: that records its
raw files as covered, so it is not planned again.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc

from shared.compaction.coverage import commit_metadata
from shared.compaction.delta_table import CommitOutcomeUnknown, CuratedTable, delta_schema
from shared.compaction.drift import HourDrift, HourFit, storable
from shared.compaction.hours import Hour, RawFile
from shared.compaction.location import curated_path
from shared.compaction.parts import HourFiles
from shared.compaction.plan import HourTask
from shared.compaction.quarantine import LeftOut, Quarantined, UnusableRawFiles
from shared.compaction.rows import (
    REQUIRED,
    CompactionError,
    curated_as_landed,
    landed_as_read,
    read_raw,
    scan_raw,
)
from shared.compaction.slices import (
    GroupKey,
    Identity,
    InputStats,
    TimeSlice,
    assemble_slice,
    conform,
    duplicate_positions,
    earlier_overlaps,
    group_mask,
    offset_ranges,
    plan_slices,
    repeating_groups,
    split_slice,
    without_positions,
    without_repeats,
)
from shared.errors import LakeError, TransientError
from shared.lake.base import LakeStore
from shared.layout import PARTITION_COLUMNS

# What a compaction holds grows with the slice (rows carry the record as received, `_received`):
# a 1M-row hour peaked at 570 MB (recompaction 709 MB) with 100,000-row slices, 324 MB (391 MB)
# with 25,000, and ran faster (bench/compact.py, bench/README.md).
SLICE_ROWS = 25_000
READ_AHEAD = 8  # raw files read concurrently: reads wait on the store, not the CPU
CURATED = 0  # the inputs' index of the hour's curated rows; raw file i is input i + 1


log = logging.getLogger("streamingpoc.compaction")


@dataclass(frozen=True, slots=True)
class HourResult:
    hour: Hour
    rows: int
    files_in: int
    files_out: int
    bytes_in: int
    drift: HourDrift | None = None
    quarantined: tuple[Quarantined, ...] = ()  # raw files of the hour moved out of raw/ (``job.compact_hour``)
    left_out: tuple[LeftOut, ...] = ()  # unusable raw files not moved yet, nor covered (``job.compact_hour``)


@dataclass
class _Scan:
    inputs: list[InputStats]
    curated: pa.Schema | None  # the table's columns before this commit (None: no table yet)
    schemas: list[pa.Schema]  # the inputs' distinct schemas, in input order
    origins: list[str]  # the first input of each schema: a raw file's path, or the curated table
    histogram: Counter[int] = field(default_factory=Counter)  # the inputs' event-time bins, merged
    bytes_in: int = 0
    drops: dict[int, pa.Array] = field(default_factory=dict)  # input -> positions of its repeated rows
    dropped: Counter[GroupKey] = field(default_factory=Counter)
    repeated: dict[Identity, int] = field(default_factory=dict)  # identities the curated rows hold more than once

    @property
    def rows(self) -> int:
        return sum(stats.rows for stats in self.inputs) - sum(self.dropped.values())


@dataclass
class HourRewrite:
    """One hour's rewrite; ``run`` does it."""

    source: str
    lake: LakeStore
    table: CuratedTable
    task: HourTask
    landed: pa.Schema | None = None  # the source's landed columns, to type Avro and JSON lines files
    slice_rows: int = SLICE_ROWS

    def run(self) -> HourResult:
        hour = self.task.hour
        with ThreadPoolExecutor(max_workers=READ_AHEAD) as pool:
            scan = self._scan(pool)
            if scan.rows == 0:
                return self._cover_empty(scan)
            self._find_duplicates(scan)
            fit = self._fit(scan)
            ranges = offset_ranges(scan.inputs, scan.dropped)
            metadata = commit_metadata(self.source, hour, self.task.covers, ranges, scan.rows)
            plan = plan_slices(hour, scan.inputs, self.slice_rows, scan.histogram)
            files = self._write(pool, scan, plan, fit)
        hour_drift = fit.report(hour)
        commit(self.table, hour, files, metadata | hour_drift.metadata(), read_version=self.task.read_version)
        return HourResult(hour, scan.rows, len(self.task.new_files), len(files.files), scan.bytes_in, hour_drift)

    def _scan(self, pool: ThreadPoolExecutor) -> _Scan:
        curated = InputStats()
        for batch in self.table.scan_hour(self.task.hour):
            curated.add(self.task.hour, batch)
        known = self.table.hour_schema()  # the table keeps its columns: every file carries them
        scan = _Scan([curated], known, [], [])
        if known is not None:
            scan.schemas.append(known)
            scan.origins.append("the curated table")
        scan.histogram.update(curated.bins)
        curated.bins.clear()
        if self._may_hold_repeats(curated.rows):
            scan.repeated = self.table.repeated_identities(self.task.hour)
            for (topic, partition, incarnation, _), copies in scan.repeated.items():
                scan.dropped[(topic, partition, incarnation)] += copies - 1
        unusable: dict[str, str] = {}
        for raw, data in zip(self.task.new_files, self._reads(pool, self.task.new_files), strict=True):
            scan.bytes_in += len(data)
            stats = InputStats()
            try:
                with _reading(raw):
                    identity, schema = scan_raw(raw.format, data, path=raw.path, schema=self.landed)
                    _check_storable(self.task.hour, raw, schema)
                    stats.add(self.task.hour, identity)
            except UnusableRawFiles as error:  # the scan goes on: every unusable file of the hour at once
                unusable.update(error.reasons)
                continue
            scan.histogram.update(stats.bins)
            stats.bins.clear()  # thousands of inputs: one histogram for the hour is enough
            scan.inputs.append(stats)
            if stats.rows and not any(schema.equals(known) for known in scan.schemas):
                scan.schemas.append(schema)  # distinct ones only: files of one source share a few
                scan.origins.append(raw.path)
        if unusable:
            raise UnusableRawFiles(unusable)
        return scan

    def _may_hold_repeats(self, curated_rows: int) -> bool:
        """Whether the hour's curated rows may hold an identity twice: two first commits of the hour at once
        both added rows (docs/reliability.md), so the hour holds more than the latest commit wrote. When that
        commit's count is unknown (older tables), the hour is checked."""
        committed = self.task.committed_rows
        return curated_rows > 0 and (committed is None or curated_rows > committed)

    def _find_duplicates(self, scan: _Scan) -> None:
        """Positions of the rows an earlier input (or an earlier row) already holds, per raw input.

        Per topic-partition-incarnation with something to check: the curated offsets are queried
        once for the range of the raw inputs checked, and each earlier raw input's offsets are read
        once; memory holds those offsets (8 bytes a row), which is only more than a little when
        many raw files repeat what is there already (an hour recompacted without its coverage).
        """
        overlaps = earlier_overlaps(scan.inputs)
        checks: dict[GroupKey, list[int]] = {}
        for index, stats in enumerate(scan.inputs):
            if index != CURATED:  # first in order: its rows always stay
                for key in set(overlaps.get(index, {})) | set(repeating_groups(stats)):
                    checks.setdefault(key, []).append(index)
        found: dict[int, list[pa.Array]] = {}
        for key, indexes in sorted(checks.items()):
            earlier = {other for index in indexes for other in overlaps.get(index, {}).get(key, [])}
            offsets = self._group_offsets(scan, key, earlier, indexes)
            for index in indexes:
                group = scan.inputs[index].groups[key]
                seen = [
                    _within(offsets[other], group.first, group.last) for other in overlaps.get(index, {}).get(key, [])
                ]
                identity = self._identity(index)
                positions = duplicate_positions(identity, key, pa.concat_arrays([pa.array([], pa.int64()), *seen]))
                scan.dropped[key] += len(positions)
                found.setdefault(index, []).append(positions)
        scan.drops = {index: pa.concat_arrays(arrays) for index, arrays in found.items()}

    def _group_offsets(self, scan: _Scan, key: GroupKey, inputs: set[int], checked: list[int]) -> dict[int, pa.Array]:
        """Each of ``inputs``'s offsets in one group; the curated ones only where ``checked`` inputs reach."""
        offsets = {}
        for index in sorted(inputs):
            if index == CURATED:
                first = min(scan.inputs[i].groups[key].first for i in checked)
                last = max(scan.inputs[i].groups[key].last for i in checked)
                offsets[index] = self.table.read_offsets(self.task.hour, key, first, last)
            else:
                identity = self._identity(index)
                offsets[index] = identity.filter(group_mask(identity, key)).column("_offset").combine_chunks()
        return offsets

    def _identity(self, index: int) -> pa.Table:
        raw = self.task.new_files[index - 1]
        data = self.lake.read(raw.path)
        with _reading(raw):
            identity, _ = scan_raw(raw.format, data, path=raw.path, schema=self.landed)
        return identity

    def _fit(self, scan: _Scan) -> HourFit:
        """The hour's fitting to the curated schema; its ``schema`` is that of the data files (partition
        columns are in the path, not the file). Columns a Delta table cannot store fail the hour here,
        before anything is written. Each raw file's own columns were checked as it was scanned; what is
        left are names that differ only in case from the table's or an earlier file's: the raw file that
        brings the second spelling is unusable."""
        fit = HourFit(scan.curated, scan.schemas, scan.origins)
        names: dict[str, str] = {}
        for name in [*PARTITION_COLUMNS, *fit.schema.names]:
            other = names.setdefault(name.lower(), name)
            if other != name:
                found = (o for s, o in zip(scan.schemas, scan.origins, strict=True) if name in s.names)
                origin = next(found, "the hour's rows")
                why = f"column {name} differs from column {other} only in case (Delta column names ignore case)"
                if origin in {raw.path for raw in self.task.new_files}:
                    raise UnusableRawFiles({origin: why})
                raise CompactionError(f"hour {self.task.hour}: {why} ({origin})")
        delta_schema(self.task.hour, pa.schema([*fit.schema, *_partition_fields()]))
        return fit

    def _cover_empty(self, scan: _Scan) -> HourResult:
        """An hour whose raw files hold no rows (and that has no curated rows): one commit of no files records
        its raw files as covered, so it is not planned again, nor counted in the compaction lag. Before the
        table's first commit, that commit creates it, with the columns the source lands (``landed``) when
        known, else with those every raw file has (``rows.REQUIRED``); the next hour with rows adds its own."""
        hour = self.task.hour
        metadata = commit_metadata(self.source, hour, self.task.covers, [], 0)
        columns = scan.curated
        if columns is None:
            landed = REQUIRED if self.landed is None else landed_as_read(self.landed)
            columns = HourFit(None, [landed], ["the source's landed columns"]).schema
        schema = pa.schema([*columns, *_partition_fields()])
        self.table.commit_hour(hour, schema, [], metadata, read_version=self.task.read_version)
        return HourResult(hour, 0, len(self.task.new_files), 0, scan.bytes_in)

    def _write(self, pool: ThreadPoolExecutor, scan: _Scan, plan: Sequence[TimeSlice], fit: HourFit) -> HourFiles:
        """The hour slice by slice, fitted and sorted, into data files; none are left if it fails or miscounts."""
        table_path = curated_path(self.source)
        files = HourFiles(self.lake, table_path, self.task.hour, fit.schema, self.table.target_file_bytes)
        written = 0
        carried: dict[int, pa.Table] = {}
        kept: set[Identity] = set()  # of the curated rows' repeated identities, those written
        try:
            for position, time_slice in enumerate(plan):
                following = set(plan[position + 1].inputs) if position + 1 < len(plan) else set()
                raw_parts, carried = self._slice_of_raw(pool, scan, time_slice, carried, following)
                parts = []
                if CURATED in time_slice.inputs:
                    curated = self.table.read_slice(self.task.hour, time_slice)
                    parts.append(fit.fit(without_repeats(curated, scan.repeated, kept)))
                for index, part in raw_parts.items():
                    with _reading(self.task.new_files[index - 1]):
                        parts.append(fit.fit(part))
                rows = assemble_slice(parts, fit.schema)
                fit.count(rows)
                written += rows.num_rows
                files.write(rows)
            if written != scan.rows:
                raise CompactionError(f"hour {self.task.hour}: {written} rows sliced, {scan.rows} planned")
            files.finish()
            return files
        except Exception:
            files.discard()
            files.remove()
            raise

    def _slice_of_raw(
        self,
        pool: ThreadPoolExecutor,
        scan: _Scan,
        time_slice: TimeSlice,
        carried: dict[int, pa.Table],
        following: set[int],
    ) -> tuple[dict[int, pa.Table], dict[int, pa.Table]]:
        """Each raw input's rows of the slice (repeated rows removed), and the rest of those the next slice reads
        too, kept while they add up to at most a slice: carried over, else read again. Each file is cut to the
        slice as it is decoded, so a file one late event spreads over the hour never stays whole in memory."""
        wanted = [index for index in time_slice.inputs if index != CURATED]
        missing = [index for index in wanted if index not in carried]
        files = [self.task.new_files[index - 1] for index in missing]
        decoded = self._decoded(pool, scan, missing, files)
        parts: dict[int, pa.Table] = {}
        kept: dict[int, pa.Table] = {}
        room = self.slice_rows
        for index in wanted:
            table = carried[index] if index in carried else next(decoded)
            with _reading(self.task.new_files[index - 1]):
                parts[index], rest = split_slice(table, time_slice)
            if index in following and rest.num_rows <= room:
                kept[index] = rest
                room -= rest.num_rows
        return parts, kept

    def _decoded(
        self, pool: ThreadPoolExecutor, scan: _Scan, indexes: Sequence[int], files: Sequence[RawFile]
    ) -> Iterator[pa.Table]:
        """The raw files (inputs ``indexes``) decoded one at a time, in order, repeated rows removed."""
        for index, raw, data in zip(indexes, files, self._reads(pool, files), strict=True):
            with _reading(raw):
                table = read_raw(raw.format, data, path=raw.path, schema=self.landed)
            yield without_positions(table, scan.drops.get(index))

    def _reads(self, pool: ThreadPoolExecutor, files: Sequence[RawFile]) -> Iterator[bytes]:
        return _read_ahead(pool, self.lake.read, [raw.path for raw in files], READ_AHEAD)


def replace_hour(
    lake: LakeStore,
    table: CuratedTable,
    table_path: str,
    hour: Hour,
    rows: pa.Table,
    metadata: dict[str, str],
    *,
    read_version: int | None = None,
) -> int:
    """Replace ``hour`` of the table at ``table_path`` with ``rows`` held whole (``tools.reprocess``: the rows
    of ``rows.merge_hour``, sorted), written and committed as a compaction's are; returns files written.
    ``read_version``: the table's version the hour was read at, as ``CuratedTable.commit_hour`` takes it.

    The rows keep their types (fit them first, as ``drift.fit_tables`` does): one the table does not
    have fails the commit with the column's name.
    """
    landed = curated_as_landed(rows)
    known = table.hour_schema()
    types = {} if known is None else {f.name: f.type for f in known}
    types.update((f.name, f.type) for f in landed.schema)  # the table's columns first, then new ones
    schema = pa.schema([pa.field(name, kind) for name, kind in types.items()])
    files = HourFiles(lake, table_path, hour, schema, table.target_file_bytes)
    try:
        files.write(conform(landed, schema))
        files.finish()
    except Exception:
        files.discard()
        files.remove()
        raise
    commit(table, hour, files, metadata, read_version=read_version)
    return len(files.files)


def commit(
    table: CuratedTable, hour: Hour, files: HourFiles, metadata: dict[str, str], *, read_version: int | None = None
) -> None:
    """The hour's one commit of its written ``files``; they are deleted only when it certainly failed.

    A commit whose outcome is unknown is looked up in the table: when its latest version holds the
    files, the commit happened and they stay (deleting them would leave that version pointing at
    nothing); when the look-up fails too, they stay as well (unreferenced files are vacuumed).
    """
    try:
        schema = pa.schema([*files.schema, *_partition_fields()])
        table.commit_hour(hour, schema, files.files, metadata, read_version=read_version)
    except CommitOutcomeUnknown:
        if table.references([file.path for file in files.files]):
            log.warning("hour %s: its commit reported an error but is in the table; kept", hour)
            return
        files.remove()
        raise
    except Exception:
        files.remove()
        raise


def _partition_fields() -> list[pa.Field]:
    return [pa.field(name, pa.string()) for name in PARTITION_COLUMNS]


@contextmanager
def _reading(raw: RawFile) -> Iterator[None]:
    """Decoding or fitting one raw file's rows (no lake request): what it raises makes the file unusable
    (``UnusableRawFiles``, which quarantines it), but the lake's errors and running out of memory, which
    are not the file's. ``rows`` turns the decoders' known errors into ``CompactionError`` itself; a
    damaged or foreign file may make them, or the fit of its values, raise anything."""
    try:
        yield
    except (UnusableRawFiles, TransientError, LakeError, MemoryError):
        raise
    except CompactionError as error:
        raise UnusableRawFiles({raw.path: str(error)}) from error
    except Exception as error:
        raise UnusableRawFiles({raw.path: f"{type(error).__name__}: {error}"}) from error


def _check_storable(hour: Hour, raw: RawFile, schema: pa.Schema) -> None:
    """``CompactionError`` when the file's columns alone cannot be in a Delta table: a partition column's
    name, a type Delta lacks, names that differ only in case."""
    clashing = sorted(name for name in schema.names if name.lower() in PARTITION_COLUMNS)
    if clashing:
        raise CompactionError(f"rows carry columns {clashing}, which are the table's partition columns")
    fields = []
    for column in schema:
        kind = storable(column.type)
        if kind is None:
            raise CompactionError(
                f"column {column.name} is {column.type} in {raw.path}, a type a Delta table cannot store"
            )
        fields.append(column.with_type(kind))
    delta_schema(hour, pa.schema([*fields, *_partition_fields()]))


def _within(offsets: pa.Array, first: int, last: int) -> pa.Array:
    inside = pc.and_(pc.greater_equal(offsets, first), pc.less_equal(offsets, last))
    return offsets.filter(inside).cast(pa.int64())


def _read_ahead(
    pool: ThreadPoolExecutor, read: Callable[[str], bytes], paths: Iterable[str], window: int
) -> Iterator[bytes]:
    """``read(path)`` for each path in order, at most ``window`` reads in flight or waiting to be taken."""
    queue = iter(paths)
    pending: deque[Future[bytes]] = deque(pool.submit(read, path) for path in islice(queue, window))
    while pending:
        data = pending.popleft().result()
        following = next(queue, None)
        if following is not None:
            pending.append(pool.submit(read, following))
        yield data
