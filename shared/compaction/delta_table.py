"""The curated Delta table of one source: the only module that imports ``deltalake``.

Reads go through delta-rs' own query engine (``QueryBuilder``) rather than a pyarrow dataset:
the dataset path can abort the interpreter at exit (delta-io/delta-rs#2184).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, QueryBuilder, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError, TableNotFoundError
from deltalake.schema import Field, PrimitiveType
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from shared.compaction.coverage import (
    LOG_RETENTION,
    REPROCESS_KEY,
    HourCoverage,
    hour_coverage_from_history,
    parse_commit,
)
from shared.compaction.hours import Hour
from shared.compaction.location import DeltaLocation
from shared.compaction.parts import DataFile
from shared.compaction.rows import (
    EVENT_TIME,
    IDENTITY,
    CompactionError,
    check_fits,
    curated_as_landed,
)
from shared.compaction.slices import GroupKey, Identity, IdentityRange, TimeSlice
from shared.errors import LakeError, LakeUnavailable
from shared.layout import PARTITION_COLUMNS

# Data files a recompaction replaced are kept this long, then vacuumed: time travel reaches back this
# far. The log (and so each hour's coverage) is kept for LOG_RETENTION, longer.
FILE_RETENTION = "interval 7 days"
TABLE_CONFIGURATION = {
    "delta.logRetentionDuration": LOG_RETENTION,
    "delta.deletedFileRetentionDuration": FILE_RETENTION,
}
CLOCK_SKEW_MS = 3_600_000
# delta-rs retries a commit that lost the race for its version as the next version, checking only what the
# transaction says it read: an overwrite of an hour nobody had compacted reads nothing, and a table's
# creation nothing at all, so the retry went in beside the winner's commit (the hour's rows twice, or a
# second CREATE TABLE replacing the table's schema). Each compaction commit replaces what it read at one
# version, so it is made at the next version or not at all.
COMMIT_RETRIES = 0
VACUUM_OPERATIONS = frozenset({"VACUUM START", "VACUUM END"})  # commits that change no row
_MICROS_UTC = "'Timestamp(Microsecond, Some(\"UTC\"))'"


class CommitOutcomeUnknown(LakeUnavailable):
    """A commit that failed in a way that does not say whether the log took it (a request cut mid-way), or
    that lost its version to another writer (the log's version taken: by another writer, or by this commit
    itself when a request whose reply was lost was sent again). The table says which (``references``)."""


class HourChangedSince(LakeUnavailable):
    """Another writer committed the hour after it was read: the commit was not made."""


class VersionTaken(CommitOutcomeUnknown):
    """The commit lost its version (most often to another writer's commit; by this commit itself only when a request
    whose reply was lost was sent again)."""


class CuratedTable:
    """``curated/<source>`` on one store. Each method is one step of a compaction run."""

    def __init__(self, location: DeltaLocation, *, target_file_bytes: int) -> None:
        self.location = location
        self.target_file_bytes = target_file_bytes
        self._table: DeltaTable | None = None
        self._commits: dict[int, Mapping[str, Any]] = {}  # the log's entries read so far, by version

    def _open(self, *, refresh: bool = False) -> DeltaTable | None:
        """The table as of its latest version when opened or refreshed (a run is the table's only writer)."""
        try:
            if self._table is None:
                self._table = DeltaTable(self.location.uri, storage_options=self.location.storage_options)
                self._commits = {}
            elif refresh:
                self._table.update_incremental()
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot open {self.location.uri}: {error}") from error
        return self._table

    def coverage(self, hours: Collection[Hour], *, first_page: int = 64) -> dict[Hour, frozenset[str]]:
        """Raw files covered per hour, from the newest compaction commit of each hour (see ``hour_coverage``)."""
        return {hour: found.raw_files for hour, found in self.hour_coverage(hours, first_page=first_page).items()}

    def hour_coverage(self, hours: Collection[Hour], *, first_page: int = 64) -> dict[Hour, HourCoverage]:
        """The newest compaction commit of each hour: raw files covered, rows written. Called first in a run.

        Reads the newest commits only: pages back until every hour in ``hours`` is found, or the
        commits read are older than the earliest moment a commit still missing could have been made
        (``_earliest_commit_ms``), or the log's start. A run thus reads a few commit files, not the
        whole history. Whether an hour's commit is found depends on the hour and the table (but for the
        cases below), not on who asks or how many other hours are asked about: ``tools.reprocess`` asks
        about its window's hours, compaction about every hour with raw files; both find the same commit.

        That moment is the hour's start (no commit compacts an hour before it began), unless the
        hour was compacted ahead of its start (``plan.AHEAD_LEAD_MS``: a producer clock far ahead):
        such a commit can be any age, so paging from the hour's start missed it once newer commits
        (of other hours) filled the page, and only a caller asking about enough hours paged far
        enough. The table's files bound it: each of the hour's data files was added by a commit of
        the hour made after the file was written (its ``modification_time``), so the hour's newest
        commit is no older than its oldest file; ``CLOCK_SKEW_MS`` of margin on both. Paging to the
        log's start for every hour not found would find ahead commits too, but compaction asks every
        run (every 15 minutes) about hours no commit has yet (the open hour, those in their grace
        period): it would read the whole log's retention each time. This rule reads no further than
        the hour's start for an hour none of whose files was written before it began (the common
        case: no ahead hours), and reads the table's file list, already in memory, only when a page
        would end the lookup with hours missing.

        An hour whose newest commit is older than both is missed: one compacted ahead that holds no
        rows (raw files without rows: an empty commit), or whose files a writer other than compaction
        and ``tools.reprocess`` replaced since. Missing it costs work only, never rows: the hour is
        recompacted from its curated rows plus all its raw files, and its new commit is found. A
        promotion (``tools.reprocess``) that leaves an hour without rows is made only once the hour
        has begun (``shared.reprocess.check_promotable``), so its commit is always found.
        """
        table = self._open(refresh=True)
        if table is None:
            return {}
        limit = max(first_page, 2 * len(hours))
        written: dict[Hour, int] | None = None  # the earliest write time of each hour's files, read once if needed
        while True:
            history = table.history(limit)
            found = hour_coverage_from_history(history)
            missing = set(hours) - found.keys()
            if not missing or len(history) < limit:
                return found
            oldest_ms = min(int(commit.get("timestamp", 0)) for commit in history)
            if oldest_ms < min(hour.start_ms for hour in missing) - CLOCK_SKEW_MS:
                written = self._first_written(table) if written is None else written
                if oldest_ms < min(_earliest_commit_ms(hour, written) for hour in missing):
                    return found
            limit *= 4

    def _first_written(self, table: DeltaTable) -> dict[Hour, int]:
        """Per hour that holds data files in the table's version, when the earliest of them was written."""
        try:
            actions = pa.table(table.get_add_actions(flatten=False))
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot read {self.location.uri}: {error}") from error
        if not {"partition", "modification_time"} <= set(actions.column_names):
            return {}
        earliest: dict[Hour, int] = {}
        partitions = actions.column("partition").to_pylist()
        for values, written_ms in zip(partitions, actions.column("modification_time").to_pylist(), strict=True):
            date, hour_of_day = ((values or {}).get(name) for name in PARTITION_COLUMNS)
            if date is None or hour_of_day is None or written_ms is None:
                continue
            hour = Hour(str(date), str(hour_of_day))
            earliest[hour] = min(int(written_ms), earliest.get(hour, int(written_ms)))
        return earliest

    def version(self) -> int:
        """The version this object reads the table at (opened, or refreshed last); -1 before its first commit.
        A writer that reads an hour through another object passes it to ``commit_hour`` or ``clear_hour``."""
        table = self._open()
        return -1 if table is None else table.version()

    def schema(self) -> pa.Schema | None:
        """The table's Arrow schema as of its latest version, or ``None`` before its first commit."""
        table = self._open(refresh=True)
        return None if table is None else pa.schema(table.schema().to_arrow())

    def read_hour(self, hour: Hour) -> pa.Table:
        """The hour's curated rows whole, without partition columns (empty when the hour was never compacted)."""
        table = self._open()
        if table is None:
            return pa.table({})
        with self._reading():
            reader = QueryBuilder().register("curated", table).execute(f"SELECT * FROM curated WHERE {hour.predicate}")
            return curated_as_landed(pa.table(reader))

    def vacuum(self) -> int:
        """Delete data files the table stopped using more than its file retention ago; returns how many.

        A full vacuum: files removed by a recompaction, and files no commit ever referenced (a run
        that failed between writing and committing), in each case only once older than
        ``delta.deletedFileRetentionDuration`` (``FILE_RETENTION``; tables made before it was set
        use Delta's default, the same 7 days). Nothing to delete writes nothing to the log.
        """
        table = self._open()
        if table is None:
            return 0
        try:
            deleted = table.vacuum(dry_run=False, full=True)
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot vacuum {self.location.uri}: {error}") from error
        return len(deleted)

    def hour_schema(self) -> pa.Schema | None:
        """The table's columns as raw files type them, without partition columns; None before the first commit."""
        table = self._open()
        if table is None:
            return None
        return curated_as_landed(pa.schema(table.schema().to_arrow()).empty_table()).schema

    def scan_hour(self, hour: Hour) -> Iterator[pa.RecordBatch]:
        """The hour's identity and event-time columns, batch by batch (nothing when never compacted)."""
        columns = ", ".join((*IDENTITY, EVENT_TIME))
        yield from self._query(f"SELECT {columns} FROM curated WHERE {hour.predicate}")

    def read_slice(self, hour: Hour, time_slice: TimeSlice) -> pa.Table:
        """The hour's curated rows in one event-time slice, typed as raw files are, without partition columns."""
        condition = f"{EVENT_TIME} IS NULL" if time_slice.nulls else f"{EVENT_TIME} IS NOT NULL"
        if time_slice.lo_us is not None and not time_slice.nulls:
            condition += f" AND {EVENT_TIME} >= arrow_cast({int(time_slice.lo_us)}, {_MICROS_UTC})"
        if time_slice.hi_us is not None and not time_slice.nulls:
            condition += f" AND {EVENT_TIME} < arrow_cast({int(time_slice.hi_us)}, {_MICROS_UTC})"
        if time_slice.identities:
            condition += " AND (" + " OR ".join(_in_range(wanted) for wanted in time_slice.identities) + ")"
        batches = list(self._query(f"SELECT * FROM curated WHERE {hour.predicate} AND {condition}"))
        return curated_as_landed(pa.Table.from_batches(batches)) if batches else pa.table({})

    def repeated_identities(self, hour: Hour) -> dict[Identity, int]:
        """The identities the hour holds more than once, with their rows (none when never compacted).

        A compaction writes each identity once; two first commits of a new hour at once both added theirs
        before compaction committed with no retry (``COMMIT_RETRIES``; tables written by older code may hold
        such an hour), and the next compaction of the hour keeps one of each. One GROUP BY over every identity
        of the hour: a compaction asks only when the hour holds more rows than its latest commit wrote
        (``rewrite``), which such a pair of commits always leaves."""
        names = ", ".join(IDENTITY)
        query = (
            f"SELECT {names}, COUNT(*) AS copies FROM curated WHERE {hour.predicate} "
            f"GROUP BY {names} HAVING COUNT(*) > 1"
        )
        found: dict[Identity, int] = {}
        for batch in self._query(query):
            for row in batch.to_pylist():
                identity = (str(row["_topic"]), int(row["_partition"]), int(row["_incarnation"]), int(row["_offset"]))
                found[identity] = int(row["copies"])
        return found

    def read_offsets(self, hour: Hour, group: GroupKey, first: int, last: int) -> pa.Array:
        """The offsets of one topic-partition-incarnation between ``first`` and ``last`` in the hour."""
        query = f"SELECT _offset FROM curated WHERE {hour.predicate} AND {_in_range(IdentityRange(group, first, last))}"
        batches = list(self._query(query))
        if not batches:
            return pa.array([], pa.int64())
        return pa.Table.from_batches(batches).column("_offset").combine_chunks().cast(pa.int64())

    def _query(self, sql: str) -> Iterator[pa.RecordBatch]:
        table = self._open()
        if table is None:
            return
        with self._reading():
            reader = pa.RecordBatchReader.from_stream(QueryBuilder().register("curated", table).execute(sql))
            yield from reader

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read's errors as the lake's: the store did not answer (may pass), or delta-rs could not read a data
        file, which it reports as pyarrow's ArrowInvalid (truncated, not Parquet, or the store failing mid-read:
        not told apart, so the hour fails, the others go on, and the next run reads it again)."""
        try:
            yield
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot read {self.location.uri}: {error}") from error
        except pa.ArrowException as error:
            raise LakeError(f"cannot read {self.location.uri}: {_reason(error)}") from error

    def commit_hour(
        self,
        hour: Hour,
        schema: pa.Schema,
        files: Sequence[DataFile],
        metadata: dict[str, str],
        *,
        read_version: int | None = None,
    ) -> None:
        """Replace the hour with ``files`` (already written under the table) in one commit.

        Readers see the old hour or the new one. ``schema`` is the files' schema (partition columns
        included); the table keeps its columns and gains any new nullable ones. The table is created
        only if absent: when another compaction created it first (after this one looked, or in the
        same moment: delta-rs' creation then loses the race for version 0), the hour takes the
        overwrite path, so nothing is ever appended twice, unless a commit after that creation may have
        changed the hour (a promotion: replacing the hour would undo it), as below. When another writer
        committed the hour after this run read it (a ``tools.reprocess --promote``, another compaction), the
        commit fails instead (``LakeUnavailable``, see ``_latest_unchanged``), and so does a commit that loses its
        version to another writer's (``COMMIT_RETRIES``, ``CommitOutcomeUnknown``): the next run redoes
        the hour. ``read_version``: the version the hour was read at (``version``), when not the one
        this object holds (``tools.reprocess`` reads every hour before it promotes any; a compaction
        run plans every hour from one read of the coverage, then refreshes after each commit).

        With no ``files`` (an hour whose raw files hold no rows) the commit adds and removes nothing
        and keeps the table's schema: it records the hour's coverage, so the hour is not planned
        again. The table is created with ``schema`` when there is none yet.
        """
        columns = delta_schema(hour, schema)  # before any I/O: columns Delta cannot take fail the hour
        existing = self._latest_unchanged(hour, read_version)
        now_ms = int(time.time() * 1000)
        adds = [AddAction(f.path, f.size, f.partition_values, now_ms, True, f.stats) for f in files]
        commit = _commit_properties(metadata)
        with self._committing(hour):
            if existing is None and not self._created(columns, adds, commit):
                existing = self._after_lost_creation(hour)
                if existing is None:  # the creation failed, yet no table: it lost to nothing
                    raise LakeUnavailable(f"hour {hour}: cannot create {self.location.uri}, nor open it")
            if existing is not None:
                self._overwrite(existing, hour, schema, adds, commit)
        self._refresh_after_commit()

    def clear_hour(self, hour: Hour, metadata: dict[str, str], *, read_version: int | None = None) -> None:
        """Remove every row of the hour in one commit that carries ``metadata`` (``tools.reprocess``, when
        every row of an hour leaves); nothing to do before the table's first commit. Fails as ``commit_hour``
        does when another writer committed the hour after it was read (at ``read_version``, as there)."""
        existing = self._latest_unchanged(hour, read_version)
        if existing is None:
            return
        with self._committing(hour):
            existing.create_write_transaction(
                [],
                mode="overwrite",
                schema=existing.schema(),
                partition_by=list(PARTITION_COLUMNS),
                partition_filters=[("date", "=", hour.date), ("hour", "=", hour.hour)],
                commit_properties=_commit_properties(metadata),
            )
        self._refresh_after_commit()

    def _latest_unchanged(self, hour: Hour, read_version: int | None = None) -> DeltaTable | None:
        """The table at its latest version, checked that no commit since the version the hour was read at
        (``read_version``, else the one this object holds; -1: no table then) may have changed the hour: the
        caller's commit replaces the hour whole, so it would undo that commit. ``LakeUnavailable`` when one
        may have, as for a commit that lost to another writer. Before the first read (no table yet) there is
        nothing to check. The commit after it is made at the next version or not at all (``COMMIT_RETRIES``),
        so no commit can come between this check and it."""
        read = read_version
        if read is None and self._table is not None:
            read = self._table.version()
        table = self._open(refresh=True)
        if table is None or read is None or table.version() == read:
            return table
        if any(_may_change(commit, hour) for commit in self._history_since(table, read)):
            raise HourChangedSince(f"hour {hour}: another writer committed the hour after it was read")
        return table

    def _after_lost_creation(self, hour: Hour) -> DeltaTable | None:
        """The table another writer created after this run read (None if there is none), checked as
        ``_latest_unchanged`` checks a table read before: ``HourChangedSince`` when a commit since may have changed
        the hour. The creation itself is no change when it is a compaction's: replacing its hour by the same raw
        files is the race's overwrite path. A promotion's (``tools.reprocess`` on a source with no table yet) is."""
        table = self._open(refresh=True)
        if table is None:
            return None
        for commit in self._history_since(table, -1):
            compaction_creation = commit.get("version") == 0 and REPROCESS_KEY not in commit
            if _may_change(commit, hour) and not (compaction_creation and parse_commit(commit) is not None):
                raise HourChangedSince(f"hour {hour}: another writer committed the hour after it was read")
        return table

    def _history_since(self, table: DeltaTable, read: int) -> list[Mapping[str, Any]]:
        """:meth:`_commits_since`, an unreadable log as ``LakeUnavailable``."""
        try:
            return self._commits_since(table, read)
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot read the history of {self.location.uri}: {error}") from error

    def _commits_since(self, table: DeltaTable, read: int) -> list[Mapping[str, Any]]:
        """The log's entries after version ``read`` up to the table's, each read once by this object: a run checks
        each hour's commit against every commit since its plan, so it reads only those made since its last check."""
        latest, have = table.version(), read
        while have < latest and have + 1 in self._commits:
            have += 1
        if have < latest:
            for commit in table.history(latest - have):
                if type(version := commit.get("version")) is int:
                    self._commits[version] = commit
        wanted = range(read + 1, latest + 1)
        if all(version in self._commits for version in wanted):
            return [self._commits[version] for version in wanted]
        return list(table.history(latest - read))  # entries without their version: read them all

    @contextmanager
    def _committing(self, hour: Hour) -> Iterator[None]:
        """A commit's errors as compaction's: the hour's own, another writer first, or an unknown outcome."""
        try:
            yield
        except SchemaMismatchError as error:
            raise CompactionError(f"hour {hour}: rows do not fit the table's schema: {error}") from error
        except CommitFailedError as error:  # with no retry, most often another writer's commit took the version
            self._table = None
            raise VersionTaken(f"hour {hour}: another writer committed first: {error}") from error
        except (DeltaError, OSError) as error:
            self._table = None  # the log may hold the commit or not: read it afresh
            raise CommitOutcomeUnknown(f"hour {hour}: cannot commit to {self.location.uri}: {error}") from error

    def _refresh_after_commit(self) -> None:
        try:
            self._open(refresh=True)
        except LakeUnavailable:
            self._table = None  # committed: the next step reads the table afresh

    def references(self, paths: Collection[str]) -> bool:
        """Whether the table's latest version holds any of ``paths`` (data files, relative to the table)."""
        self._table = None
        table = self._open()
        if table is None:
            return False
        try:
            held = set(pa.table(table.get_add_actions(flatten=False)).column("path").to_pylist())
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot read {self.location.uri}: {error}") from error
        return not held.isdisjoint(paths)

    def _overwrite(
        self, table: DeltaTable | None, hour: Hour, schema: pa.Schema, adds: list[AddAction], commit: CommitProperties
    ) -> None:
        """Replace the hour's files with ``adds`` in one transaction (a partition filter on its date and hour);
        with no ``adds``, a commit that changes no file, only to carry the hour's metadata."""
        assert table is not None
        if not adds:
            table.create_write_transaction(
                [], mode="append", schema=table.schema(), partition_by=list(PARTITION_COLUMNS), commit_properties=commit
            )
            return
        check_fits(hour, pa.schema(table.schema().to_arrow()), schema)
        table.create_write_transaction(
            list[AddAction | RemoveAction](adds),
            mode="overwrite",
            schema=_evolved(hour, table.schema(), schema),
            partition_by=list(PARTITION_COLUMNS),
            partition_filters=[("date", "=", hour.date), ("hour", "=", hour.hour)],
            commit_properties=commit,
        )

    def _created(self, schema: Schema, adds: list[AddAction], commit: CommitProperties) -> bool:
        """Create the table with the hour's files; False when another compaction created it first: found it
        there (delta-rs says it already exists) or took version 0 in the same moment (the commit fails: it is
        not retried as version 1, which would replace that table's schema and add the hour beside it)."""
        try:
            create_table_with_add_actions(
                self.location.uri,
                schema,
                adds,
                mode="error",
                partition_by=list(PARTITION_COLUMNS),
                configuration=TABLE_CONFIGURATION,
                storage_options=self.location.storage_options,
                commit_properties=commit,
            )
        except CommitFailedError:
            return False
        except DeltaError as error:
            if "already exists" not in str(error):
                raise
            return False
        return True


def _commit_properties(metadata: dict[str, str]) -> CommitProperties:
    """A compaction commit's properties: its metadata, and no retry at a later version (``COMMIT_RETRIES``)."""
    return CommitProperties(custom_metadata=metadata, max_commit_retries=COMMIT_RETRIES)


def delta_schema(hour: Hour, schema: pa.Schema) -> Schema:
    """``schema`` (an hour's columns, partition columns included) as a Delta schema; ``CompactionError``
    when Delta cannot store it (a type it lacks, names that differ only in case). Nothing is written:
    compaction checks an hour's columns with it before it writes the hour's files."""
    try:
        return Schema.from_arrow(schema)
    except Exception as error:  # delta-rs raises a bare Exception: its message, then a backtrace
        raise CompactionError(f"hour {hour}: a Delta table cannot store these columns: {_reason(error)}") from error


def _evolved(hour: Hour, current: Schema, files: pa.Schema) -> Schema:
    """The table's schema plus the files' columns it lacks (new nullable columns, never fewer columns), its
    ``void`` columns typed where the files type them.

    An overwrite commits the schema it is given as the table's: a narrower one would drop columns
    other hours still hold. A ``void`` column (all null when the table took it: tables of code that
    wrote Arrow's ``null`` type) holds no value, so delta-rs takes its new type, and reads the files
    written before it as nulls of that type.
    """
    given = {field.name: field for field in delta_schema(hour, files).fields}
    typed = {field.name for field in current.fields if _void(field) and not _void(given.get(field.name, field))}
    known = {field.name for field in current.fields}
    added = [field for name, field in given.items() if name not in known]
    if not added and not typed:
        return current
    try:
        return Schema([given[field.name] if field.name in typed else field for field in current.fields] + added)
    except Exception as error:  # as in delta_schema: a name that differs from the table's only in case
        raise CompactionError(f"hour {hour}: the table cannot take these columns: {_reason(error)}") from error


def _void(field: Field) -> bool:
    return isinstance(field.type, PrimitiveType) and field.type.type == "void"


def _earliest_commit_ms(hour: Hour, first_written: Mapping[Hour, int]) -> int:
    """The earliest moment the hour's newest commit can have been made (``CuratedTable.hour_coverage``): the
    hour's start, or before it when a data file of the hour was written earlier (the hour was compacted ahead
    of its start), less ``CLOCK_SKEW_MS``."""
    return min(hour.start_ms, first_written.get(hour, hour.start_ms)) - CLOCK_SKEW_MS


def _may_change(commit: Mapping[str, Any], hour: Hour) -> bool:
    """Whether a history entry may have changed ``hour``: a commit of that hour (compaction's and
    ``tools.reprocess``'s name it), or one that names none (a writer of another kind), a vacuum excepted."""
    document = parse_commit(commit)
    if document is None:
        return commit.get("operation") not in VACUUM_OPERATIONS
    return (document.get("date"), document.get("hour")) == (hour.date, hour.hour)


def _in_range(wanted: IdentityRange) -> str:
    """SQL: the row's identity is in ``wanted``."""
    topic, partition, incarnation = wanted.group
    quoted = topic.replace("'", "''")
    return (
        f"(_topic = '{quoted}' AND _partition = {int(partition)} AND _incarnation = {int(incarnation)} "
        f"AND _offset BETWEEN {int(wanted.first)} AND {int(wanted.last)})"
    )


def _reason(error: Exception) -> str:
    """The first line of a delta-rs error (a backtrace follows)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
