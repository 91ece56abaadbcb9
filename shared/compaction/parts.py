"""The curated table's data files of one hour, written in the order they are given.

Slices arrive sorted by event time; each is appended to the current Parquet file (zstd, row
groups of ``ROW_GROUP_ROWS``), and a file is closed and stored through the lake store once it
reaches the target size. So the hour's files, in name order, hold its rows in event-time order.
(The Delta writer of ``deltalake`` cannot do that: it deals the batches of one stream round-robin
to its partitions, delta-rs#2659 and polars#26912.) Each file comes with the statistics the Delta
log keeps for it. The file being written grows in a local temporary file, not in memory; memory
holds one row group while it is encoded, and the finished file while it is stored.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.compaction.hours import Hour
from shared.errors import LakeError
from shared.lake.base import LakeStore
from shared.layout import PARTITION_COLUMNS

ROW_GROUP_ROWS = 128 * 1024


@dataclass(frozen=True, slots=True)
class DataFile:
    """One written data file: its path under the table, size, partition values, rows and Delta statistics."""

    path: str
    size: int
    partition_values: dict[str, str]
    rows: int
    stats: str


class HourFiles:
    """Writes one hour's rows (schema without partition columns) into data files of about ``target_bytes``."""

    def __init__(self, lake: LakeStore, table_path: str, hour: Hour, schema: pa.Schema, target_bytes: int) -> None:
        self.lake = lake
        self.table_path = table_path
        self.hour = hour
        self.schema = schema
        self.target_bytes = target_bytes
        self.files: list[DataFile] = []
        self._scratch = tempfile.TemporaryDirectory(prefix="curated-")
        self._path = Path(self._scratch.name) / "part.parquet"
        self._writer: pq.ParquetWriter | None = None
        self._stats = _Stats(schema)

    def write(self, rows: pa.Table) -> None:
        """Append rows; a file is closed at the first row group that takes it past the target size."""
        for start in range(0, rows.num_rows, ROW_GROUP_ROWS):
            group = rows.slice(start, ROW_GROUP_ROWS)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._path, self.schema, compression="zstd")
            self._writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
            self._stats.add(group)
            if self._path.stat().st_size >= self.target_bytes:
                self._close()

    def finish(self) -> list[DataFile]:
        """Store the last file; the files written, in order."""
        try:
            self._close()
        finally:
            self.discard()
        return self.files

    def remove(self) -> None:
        """Best effort: delete the stored files, which no commit references (vacuum would delete them later)."""
        for data_file in self.files:
            try:
                self.lake.delete(f"{self.table_path}/{data_file.path}")
            except LakeError:
                continue

    def discard(self) -> None:
        """Drop the file being written (stored files stay: the caller decides about them)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._scratch.cleanup()

    def _close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        data = self._path.read_bytes()
        directory = f"date={self.hour.date}/hour={self.hour.hour}"
        name = f"part-{len(self.files):05d}-{uuid.uuid4()}-c000.zstd.parquet"
        self.lake.write_atomic(f"{self.table_path}/{directory}/{name}", data)
        values = {"date": self.hour.date, "hour": self.hour.hour}
        self.files.append(DataFile(f"{directory}/{name}", len(data), values, self._stats.rows, self._stats.json()))
        self._stats = _Stats(self.schema)


class _Stats:
    """numRecords, nullCount of every column, min and max of integer and timestamp columns (Delta's format).

    Only what delta-rs parses back: a table whose log it cannot parse cannot be opened at all. So no
    nullCount for a struct column (Delta nests it per field), min and max of signed integers only
    (``drift.storable`` widens unsigned ones), and none for a timestamp column in a file holding a
    time Python cannot write (past year 9999, before year 1): statistics are optional per column.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.rows = 0
        self.nulls = {f.name: 0 for f in schema if f.name not in PARTITION_COLUMNS and not pa.types.is_struct(f.type)}
        self.ranged = [f.name for f in schema if pa.types.is_signed_integer(f.type) or pa.types.is_timestamp(f.type)]
        self.low: dict[str, Any] = {}
        self.high: dict[str, Any] = {}
        self.unranged: set[str] = set()  # columns with a value the log cannot hold: no min and max for the file

    def add(self, rows: pa.Table) -> None:
        self.rows += rows.num_rows
        for name in self.nulls:
            self.nulls[name] += rows.column(name).null_count
        for name in self.ranged:
            if name in self.unranged:
                continue
            found = _extremes(rows.column(name))
            if found is None:
                self.unranged.add(name)
                self.low.pop(name, None)
                self.high.pop(name, None)
                continue
            low, high = found
            if low is not None:
                self.low[name] = low if name not in self.low else min(self.low[name], low)
                self.high[name] = high if name not in self.high else max(self.high[name], high)

    def json(self) -> str:
        document = {
            "numRecords": self.rows,
            "minValues": {name: _stat(value, up=False) for name, value in self.low.items()},
            "maxValues": {name: _stat(value, up=True) for name, value in self.high.items()},
            "nullCount": self.nulls,
        }
        return json.dumps(document, separators=(",", ":"))


def _extremes(column: pa.ChunkedArray) -> tuple[Any, Any] | None:
    """The column's min and max (both None when it is all null), or None when one has no form in the log
    (a time past year 9999 or before year 1: out of Python's range, which the log's format follows)."""
    extremes = pc.min_max(column)
    try:
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        _stat(low, up=False)
        _stat(high, up=True)
    except (OverflowError, ValueError):
        return None
    return low, high


def _stat(value: Any, *, up: bool) -> Any:
    """A statistic as the Delta log writes it: timestamps in UTC to the millisecond, rounded outward."""
    if not isinstance(value, datetime):
        return value
    moment = value.astimezone(UTC)
    truncated = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if up and truncated < moment:
        truncated += timedelta(milliseconds=1)  # OverflowError in the last millisecond of year 9999
    return f"{truncated.year:04d}" + truncated.strftime("-%m-%dT%H:%M:%S.") + f"{truncated.microsecond // 1000:03d}Z"
