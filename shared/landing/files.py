"""Turn a processed batch into lake files and write them: one file per partition and event hour.

``plan_files`` is pure (what to write, where); ``land`` is the one place that does I/O.
A file's name comes from its topic, partition and the batch's offset range, so a
redelivered batch rewrites the same files instead of adding new ones.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared import formats
from shared.batch import ProcessedBatch
from shared.dead_letters import DeadLetter
from shared.lake.base import LakeStore
from shared.landing.isolation import encode_isolating
from shared.layout import DEADLETTER_AREA, RAW_AREA, batch_file_name, hour_directory, hour_start_ms
from shared.lineage import LINEAGE_COLUMNS
from shared.settings import LakeFormat
from shared.sources.base import Column, Row

DEADLETTER_COLUMNS: tuple[Column, ...] = (
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_incarnation", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("_key", "string"),
    Column("_kafka_timestamp", "timestamp"),
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

    rows_by_file: dict[tuple[str, int, int], list[Row]] = defaultdict(list)
    for row in batch.rows:
        rows_by_file[(row["_topic"], row["_partition"], hour_start_ms(row["_event_time"]))].append(row)
    columns = landed_columns(batch)
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


def land(lake: LakeStore, planned: Sequence[PlannedFile]) -> LandingReport:
    """Encode and write every planned file. Lake errors propagate (transient ones are retried)."""
    written = 0
    write_ms = []
    for file in planned:
        data = file.encoded()
        started = time.perf_counter()
        lake.write_atomic(file.path, data)
        write_ms.append((time.perf_counter() - started) * 1000)
        written += len(data)
    rows = sum(len(f.rows) for f in planned if not f.path.startswith(DEADLETTER_AREA))
    letters = sum(len(f.rows) for f in planned if f.path.startswith(DEADLETTER_AREA))
    return LandingReport(tuple(f.path for f in planned), written, rows, letters, tuple(write_ms))


def _offset_ranges(batch: ProcessedBatch) -> dict[tuple[str, int], tuple[int, int]]:
    offsets: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in batch.rows:
        offsets[(row["_topic"], row["_partition"])].append(row["_offset"])
    for letter in batch.dead_letters:
        offsets[(letter.record.topic, letter.record.partition)].append(letter.record.offset)
    return {position: (min(values), max(values)) for position, values in offsets.items()}
