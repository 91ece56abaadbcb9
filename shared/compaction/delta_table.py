"""The curated Delta table of one source: the only module that imports ``deltalake``.

Reads go through delta-rs' own query engine (``QueryBuilder``) rather than a pyarrow dataset:
the dataset path can abort the interpreter at exit (delta-io/delta-rs#2184).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, QueryBuilder, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError, TableNotFoundError

from shared.compaction.coverage import LOG_RETENTION, coverage_from_history
from shared.compaction.hours import Hour
from shared.compaction.location import DeltaLocation
from shared.compaction.rows import PARTITION_COLUMNS, CompactionError, all_nullable, check_fits, curated_as_landed
from shared.errors import LakeUnavailable

TABLE_CONFIGURATION = {"delta.logRetentionDuration": LOG_RETENTION}
CLOCK_SKEW_MS = 3_600_000


class CuratedTable:
    """``curated/<source>`` on one store. Each method is one step of a compaction run."""

    def __init__(self, location: DeltaLocation, *, target_file_bytes: int) -> None:
        self.location = location
        self.target_file_bytes = target_file_bytes
        self._table: DeltaTable | None = None

    def _open(self, *, refresh: bool = False) -> DeltaTable | None:
        """The table as of its latest version when opened or refreshed (a run is the table's only writer)."""
        try:
            if self._table is None:
                self._table = DeltaTable(self.location.uri, storage_options=self.location.storage_options)
            elif refresh:
                self._table.update_incremental()
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"cannot open {self.location.uri}: {error}") from error
        return self._table

    def coverage(self, hours: Collection[Hour], *, first_page: int = 64) -> dict[Hour, frozenset[str]]:
        """Raw files covered per hour, from the newest compaction commit of each hour. Called first in a run.

        Reads the newest commits only: pages back until every hour in ``hours`` (those with raw
        files) is found, or the commits read are older than the start of every hour still missing
        (no commit can have compacted an hour before it began; ``CLOCK_SKEW_MS`` of margin), or
        the log's start. A run thus reads a few commit files, not the whole history. Missing an
        hour's coverage would only cost work, never rows: the hour is recompacted from its
        curated rows plus all its raw files.
        """
        table = self._open(refresh=True)
        if table is None:
            return {}
        limit = max(first_page, 2 * len(hours))
        while True:
            history = table.history(limit)
            found = coverage_from_history(history)
            missing = set(hours) - found.keys()
            oldest_ms = min((int(commit.get("timestamp", 0)) for commit in history), default=0)
            if not missing or len(history) < limit or oldest_ms < min(h.start_ms for h in missing) - CLOCK_SKEW_MS:
                return found
            limit *= 4

    def schema(self) -> pa.Schema | None:
        """The table's Arrow schema as of its latest version, or ``None`` before its first commit."""
        table = self._open(refresh=True)
        return None if table is None else pa.schema(table.schema().to_arrow())

    def read_hour(self, hour: Hour) -> pa.Table:
        """The hour's curated rows without partition columns (empty when the hour was never compacted)."""
        table = self._open()
        if table is None:
            return pa.table({})
        reader = QueryBuilder().register("curated", table).execute(f"SELECT * FROM curated WHERE {hour.predicate}")
        return curated_as_landed(pa.table(reader))

    def _created(self, rows: pa.Table, options: dict[str, Any]) -> bool:
        """Create the table with ``rows``; False when another compaction created it first (it is never appended to)."""
        try:
            write_deltalake(self.location.uri, rows, mode="error", configuration=TABLE_CONFIGURATION, **options)
        except DeltaError as error:
            if "already exists" not in str(error):
                raise
            return False
        return True

    def replace_hour(self, hour: Hour, rows: pa.Table, metadata: dict[str, str]) -> int:
        """Replace the hour in one commit (readers see the old hour or the new one); returns files written."""
        options: dict[str, Any] = {
            "partition_by": list(PARTITION_COLUMNS),
            "storage_options": self.location.storage_options,
            "target_file_size": self.target_file_bytes,
            "writer_properties": WriterProperties(compression="ZSTD"),
            "commit_properties": CommitProperties(custom_metadata=metadata),
            "schema_mode": "merge",
        }
        existing = self._open()
        try:
            if existing is None and self._created(all_nullable(rows), options):
                return self._files_added()
            existing = existing or self._open(refresh=True)
            assert existing is not None
            check_fits(hour, pa.schema(existing.schema().to_arrow()), rows.schema)
            write_deltalake(existing, all_nullable(rows), mode="overwrite", predicate=hour.predicate, **options)
        except SchemaMismatchError as error:
            raise CompactionError(f"hour {hour}: rows do not fit the table's schema: {error}") from error
        except CommitFailedError as error:
            raise LakeUnavailable(f"hour {hour}: another writer committed first: {error}") from error
        except (DeltaError, OSError) as error:
            raise LakeUnavailable(f"hour {hour}: cannot write {self.location.uri}: {error}") from error
        return self._files_added()

    def _files_added(self) -> int:
        latest = self._open(refresh=True)
        assert latest is not None
        metrics = latest.history(1)[0].get("operationMetrics", {})
        return int(metrics.get("num_added_files", 0))
