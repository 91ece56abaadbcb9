"""Turn a processed batch into lake files and write them: one file per partition and event hour.

``plan_files`` is pure (what to write, where); ``land`` is the one place that does I/O.
A file's name comes from its topic, partition and the batch's offset range, and files are
created only if absent: a batch landed again finds its files there and replaces nothing.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

import pyarrow as pa
import pyarrow.compute as pc

from shared import formats
from shared.batch import ProcessedBatch
from shared.dead_letters import DeadLetter
from shared.failures import fast_path_failed
from shared.lake.base import LakeStore
from shared.landing.isolation import encode_isolating
from shared.layout import DEADLETTER_AREA, RAW_AREA, batch_file_name, hour_directory, hour_start_ms
from shared.lineage import LINEAGE_COLUMNS, RECORD_LINEAGE
from shared.records import PartitionRanges, partition_ranges
from shared.settings import LakeFormat
from shared.sources.base import Column, Row

DEADLETTER_COLUMNS: tuple[Column, ...] = (
    *RECORD_LINEAGE,
    Column("reason", "string", nullable=False),
    Column("detail", "string", nullable=False),
    Column("raw_base64", "string"),
    Column("dead_lettered_at", "timestamp", nullable=False),
)
DEADLETTER_FORMAT: LakeFormat = "jsonl"


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    format: LakeFormat
    columns: tuple[Column, ...]
    rows: Sequence[Row]
    record_name: str
    data: bytes | None = None  # already encoded (raw files are encoded while planning, to isolate bad rows)
    table_rows: int | None = None  # rows of a file encoded from an Arrow table (``rows`` is then empty)

    @property
    def count(self) -> int:
        return len(self.rows) if self.table_rows is None else self.table_rows

    def encoded(self) -> bytes:
        if self.data is not None:
            return self.data
        return formats.encode(self.format, self.columns, self.rows, record_name=self.record_name)


@dataclass(frozen=True, slots=True)
class LandingReport:
    files: tuple[str, ...]
    bytes_written: int
    rows: int
    dead_letters: int
    write_ms: tuple[float, ...] = ()
    skipped: int = 0  # records already in the lake (redelivered), not landed again


def landed_columns(batch: ProcessedBatch) -> tuple[Column, ...]:
    return (*batch.source.columns, *LINEAGE_COLUMNS)


def plan_files(
    batch: ProcessedBatch, fmt: LakeFormat, *, now_ms: int, incarnations: Mapping[tuple[str, int], int] | None = None
) -> list[PlannedFile]:
    """The files one batch lands as: rows by (topic, partition, event hour), dead letters likewise.

    Raw files are encoded here; a row no encoder accepts moves to the batch's dead letters as
    ``unencodable`` (``shared.landing.isolation``), so the rest lands and no signal is sent for it.
    ``incarnations`` names each partition's incarnation when it is not 0 (see ``shared.landing.guard``).
    """
    incarnations = incarnations or {}
    offsets = _offset_ranges(batch)
    source = batch.source.name
    planned: list[PlannedFile] = []
    columns = landed_columns(batch)
    if batch.table is not None and fmt == "parquet":
        try:
            planned.extend(_plan_table(batch.table, columns, source, offsets, incarnations))
        except Exception as error:  # an encoder edge case: the rows find the record it fails on
            fast_path_failed("Parquet from the batch's table", source, error)
            planned.clear()
    rows_by_file: dict[tuple[str, int, int], list[Row]] = defaultdict(list)
    for row in batch.rows if not planned else ():
        rows_by_file[(row["_topic"], row["_partition"], hour_start_ms(row["_event_time"]))].append(row)
    for (topic, partition, hour), rows in sorted(rows_by_file.items()):
        first, last = offsets[(topic, partition)]
        incarnation = incarnations.get((topic, partition), 0)
        name = batch_file_name(topic, partition, first, last, formats.EXTENSIONS[fmt], incarnation)
        path = f"{hour_directory(RAW_AREA, source, hour)}/{name}"
        data, unencodable = encode_isolating(fmt, columns, rows, record_name=source)
        if unencodable:
            bad_indexes = {item.index for item in unencodable}
            bad = [rows[index] for index in sorted(bad_indexes)]
            batch.dead_letter_rows(bad, "unencodable", [f"{fmt}: {item.error}" for item in unencodable])
            rows = [row for index, row in enumerate(rows) if index not in bad_indexes]
            if not rows:
                continue
        planned.append(PlannedFile(path, fmt, columns, rows, record_name=source, data=data))

    letters_by_file: dict[tuple[str, int, int], list[Row]] = defaultdict(list)
    for letter in batch.dead_letters:
        row = dead_letter_row(letter, now_ms, incarnations.get((letter.record.topic, letter.record.partition), 0))
        moment = row["_kafka_timestamp"] if row["_kafka_timestamp"] is not None else 0
        letters_by_file[(row["_topic"], row["_partition"], hour_start_ms(moment))].append(row)
    for (topic, partition, hour), rows in sorted(letters_by_file.items()):
        first, last = offsets[(topic, partition)]
        incarnation = incarnations.get((topic, partition), 0)
        name = batch_file_name(topic, partition, first, last, formats.EXTENSIONS[DEADLETTER_FORMAT], incarnation)
        path = f"{hour_directory(DEADLETTER_AREA, source, hour)}/{name}"
        planned.append(
            PlannedFile(path, DEADLETTER_FORMAT, DEADLETTER_COLUMNS, rows, record_name=f"{source}_deadletter")
        )
    return planned


def dead_letter_row(letter: DeadLetter, now_ms: int, incarnation: int = 0) -> Row:
    record = letter.record
    return {
        "_topic": record.topic,
        "_partition": record.partition,
        "_incarnation": incarnation,
        "_offset": record.offset,
        "_key": None if record.key is None else _storable_text(record.key),
        "_kafka_timestamp": record.timestamp_ms,
        "reason": letter.reason,
        "detail": _storable_text(letter.detail),
        "raw_base64": None if record.value is None else base64.b64encode(record.value).decode("ascii"),
        "dead_lettered_at": now_ms,
    }


def _storable_text(text: str) -> str:
    """``text`` as UTF-8 can carry it: lone surrogates become ``\\udXXX`` escapes, so a dead letter always encodes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def land(
    lake: LakeStore, planned: Sequence[PlannedFile], before_each: Callable[[], None] = lambda: None
) -> LandingReport:
    """Encode and create every planned file; one already there counts as written. ``before_each`` runs before
    each request (a landing's deadline). Lake errors propagate (transient ones are retried)."""
    written = 0
    write_ms = []
    for file in planned:
        data = file.encoded()
        before_each()
        started = time.perf_counter()
        lake.create(file.path, data)
        write_ms.append((time.perf_counter() - started) * 1000)
        written += len(data)
    rows = sum(f.count for f in planned if not f.path.startswith(DEADLETTER_AREA))
    letters = sum(f.count for f in planned if f.path.startswith(DEADLETTER_AREA))
    return LandingReport(tuple(f.path for f in planned), written, rows, letters, tuple(write_ms))


def _offset_ranges(batch: ProcessedBatch) -> PartitionRanges:
    return partition_ranges(chain(batch.origins, (letter.record for letter in batch.dead_letters)))


def _plan_table(
    table: pa.Table,
    columns: tuple[Column, ...],
    source: str,
    offsets: PartitionRanges,
    incarnations: Mapping[tuple[str, int], int],
) -> list[PlannedFile]:
    """Raw Parquet files straight from a batch's Arrow table, grouped like rows: (topic, partition, hour)."""
    hours = pc.floor_temporal(table["_event_time"], unit="hour")
    keys = pa.table({"topic": table["_topic"], "partition": table["_partition"], "hour": hours})
    groups = keys.group_by(["topic", "partition", "hour"], use_threads=False).aggregate([])
    planned = []
    for topic, partition, hour in sorted(zip(*(groups[name].to_pylist() for name in keys.column_names), strict=True)):
        hour_ms = int(hour.timestamp() * 1000)
        part = table
        if groups.num_rows > 1:
            mask = pc.and_(
                pc.and_(pc.equal(keys["topic"], topic), pc.equal(keys["partition"], partition)),
                pc.equal(keys["hour"], pa.scalar(hour, hours.type)),
            )
            part = table.filter(mask)
        first, last = offsets[(topic, partition)]
        incarnation = incarnations.get((topic, partition), 0)
        name = batch_file_name(topic, partition, first, last, formats.EXTENSIONS["parquet"], incarnation)
        path = f"{hour_directory(RAW_AREA, source, hour_ms)}/{name}"
        planned.append(
            PlannedFile(path, "parquet", columns, (), source, formats.encode_parquet_table(part), part.num_rows)
        )
    return planned
