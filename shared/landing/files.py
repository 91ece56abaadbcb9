"""Turn one partition's batch into lake files and write them: one file per event hour, raw and dead letters.

``plan_files`` is pure: what to write, where, and which rows no encoder takes (returned, never
put back into the batch); ``land`` is the one place that does I/O. A file's name comes from its
topic-partition, incarnation and the landing's offset span, and files are created only if
absent: a landing repeated finds its files there and replaces nothing.
"""

from __future__ import annotations

import base64
import hashlib
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from shared.batch import PartitionBatch, ProcessedBatch
from shared.dead_letters import DeadLetter, Reason
from shared.failures import fast_path_failed
from shared.formats import Format, JsonLines
from shared.lake.base import LakeStore
from shared.landing.isolation import encode_isolating
from shared.layout import DEADLETTER_AREA, RAW_AREA, batch_file_name, hour_directory, hour_start_ms
from shared.lineage import LINEAGE_COLUMNS, RECORD_LINEAGE
from shared.records import KafkaRecord, OffsetSpan
from shared.source_model import Column, Row, Source

DEADLETTER_COLUMNS: tuple[Column, ...] = (
    *RECORD_LINEAGE,
    Column("reason", "string", nullable=False),
    Column("detail", "string", nullable=False),
    Column("raw_base64", "string"),
    Column("dead_lettered_at", "timestamp", nullable=False),
    Column("content_type", "string"),  # the record's content-type header, kept when read (it may name a schema id)
)
DEADLETTER_FORMAT: Format = JsonLines()
ENTITY_REJECTED_EXTENSION = f"entity_rejected.{DEADLETTER_FORMAT.extension}"


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    data: bytes  # encoded while planning: raw files to find the rows no encoder takes
    row_count: int
    dead_letters: bool = False
    offsets: str = ""  # which records it holds (``offsets_digest``): a landing repaired must plan the same


def offsets_digest(offsets: Iterable[int]) -> str:
    """A short digest of a file's record offsets, in any order."""
    return hashlib.blake2b(array("q", sorted(offsets)).tobytes(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Plan:
    """The files a partition's landing writes, and its rows that no encoder takes (in its dead-letter files)."""

    files: tuple[PlannedFile, ...]
    unencodable: tuple[DeadLetter, ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerHoles:
    """Offsets of one life of a partition that its landing ledger has not landed, below offsets it has
    (``Ledger.holes``): a consumer group moved over them, and a rewind may land them yet."""

    topic: str
    partition: int
    incarnation: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class LandingReport:
    files: tuple[str, ...] = ()
    bytes_written: int = 0
    row_count: int = 0
    dead_letter_count: int = 0
    write_ms: tuple[float, ...] = ()
    skipped: int = 0  # records already in the lake (redelivered), not landed again
    unencodable: tuple[DeadLetter, ...] = field(default=())  # rows dead-lettered here: no entity counts them
    # skipped records whose earlier delivery landed them as dead letters: raw/ does not hold them either
    dead_lettered_before: tuple[KafkaRecord, ...] = field(default=())
    # skipped records this delivery rejects whose earlier delivery landed them as rows: raw/ holds them, so their
    # entities owe them (each with this delivery's reason)
    rejected_in_raw: tuple[DeadLetter, ...] = field(default=())
    holes: tuple[LedgerHoles, ...] = ()  # per partition life landed: its ledger's holes once this batch landed

    def __add__(self, other: LandingReport) -> LandingReport:
        return LandingReport(
            self.files + other.files,
            self.bytes_written + other.bytes_written,
            self.row_count + other.row_count,
            self.dead_letter_count + other.dead_letter_count,
            self.write_ms + other.write_ms,
            self.skipped + other.skipped,
            self.unencodable + other.unencodable,
            self.dead_lettered_before + other.dead_lettered_before,
            self.rejected_in_raw + other.rejected_in_raw,
            self.holes + other.holes,
        )

    def holes_by_life(self) -> dict[tuple[str, int, int], list[list[int]]]:
        """Each partition life's holes (topic, partition, incarnation -> ranges), as its last landing saw them."""
        return {(h.topic, h.partition, h.incarnation): [list(r) for r in h.ranges] for h in self.holes if h.ranges}

    def not_in_raw(self) -> set[tuple[str, int, int]]:
        """(topic, partition, offset) of the batch's rows raw/ does not hold: no entity may count them."""
        records = [letter.record for letter in self.unencodable] + list(self.dead_lettered_before)
        return {(record.topic, record.partition, record.offset) for record in records}


def landed_columns(source: Source) -> tuple[Column, ...]:
    return (*source.columns, *LINEAGE_COLUMNS)


def plan_files(part: PartitionBatch, fmt: Format, *, now_ms: int, incarnation: int = 0) -> Plan:
    """The files ``part`` lands as: its rows by event hour in ``fmt``, its dead letters by Kafka hour.

    Raw files are encoded here; a row no encoder accepts is returned as an ``unencodable`` dead letter
    (``shared.landing.isolation``) and lands in the dead-letter file instead. Pure: no I/O.
    """
    if not part.records:
        return Plan(())
    span = part.span
    raw: list[PlannedFile] | None = None
    unencodable: list[DeadLetter] = []
    if part.table is not None and fmt.takes_tables:
        try:
            raw = _plan_table(part, fmt, span, incarnation)
        except Exception as error:  # an encoder edge case: the rows find the record it fails on
            fast_path_failed("Parquet from the batch's table", part.source.name, error)
    if raw is None:
        raw = _plan_rows(part, fmt, span, incarnation, unencodable)
    letters = [*part.dead_letters, *unencodable]
    letters.sort(key=lambda letter: letter.record.offset)
    return Plan((*raw, *plan_dead_letters(part.source, letters, span, incarnation, now_ms)), tuple(unencodable))


def plan_batch(batch: ProcessedBatch, fmt: Format, *, now_ms: int) -> list[PlannedFile]:
    """Every partition's files, incarnation 0, unencodable rows in the dead-letter files: a batch planned
    without a landing guard (benchmarks' baseline, tests, tools that write outside the live path)."""
    return [file for part in batch for file in plan_files(part, fmt, now_ms=now_ms).files]


def plan_dead_letters(
    source: Source, letters: Sequence[DeadLetter], span: OffsetSpan, incarnation: int, now_ms: int
) -> list[PlannedFile]:
    """One dead-letter file per Kafka-timestamp hour of ``letters`` (all of one partition), named by ``span``."""
    if not letters:
        return []
    by_hour: dict[int, list[Row]] = defaultdict(list)
    for letter in letters:
        row = dead_letter_row(letter, now_ms, incarnation)
        by_hour[hour_start_ms(row["_kafka_timestamp"] or 0)].append(row)
    name = batch_file_name(letters[0].record.topic_partition, span, incarnation, DEADLETTER_FORMAT.extension)
    return [
        PlannedFile(
            f"{hour_directory(DEADLETTER_AREA, source.name, hour)}/{name}",
            DEADLETTER_FORMAT.encode_rows(DEADLETTER_COLUMNS, rows, f"{source.name}_deadletter"),
            len(rows),
            dead_letters=True,
            offsets=offsets_digest(row["_offset"] for row in rows),
        )
        for hour, rows in sorted(by_hour.items())
    ]


def plan_entity_rejected(source: Source, letter: DeadLetter, incarnation: int, now_ms: int) -> PlannedFile:
    """A record whose entity refused its update, in a file of its own: its name never depends on how the
    batch was cut, so a redelivered batch finds it there (``...+<offset>+<offset>.entity_rejected.jsonl.gz``)."""
    record = letter.record
    row = dead_letter_row(letter, now_ms, incarnation)
    span = OffsetSpan(record.offset, record.offset)
    name = batch_file_name(record.topic_partition, span, incarnation, ENTITY_REJECTED_EXTENSION)
    return PlannedFile(
        f"{hour_directory(DEADLETTER_AREA, source.name, hour_start_ms(record.timestamp_ms or 0))}/{name}",
        DEADLETTER_FORMAT.encode_rows(DEADLETTER_COLUMNS, [row], f"{source.name}_deadletter"),
        1,
        dead_letters=True,
    )


def dead_letter_row(letter: DeadLetter, now_ms: int, incarnation: int = 0) -> Row:
    record = letter.record
    return {
        "_topic": record.topic,
        "_partition": record.partition,
        "_incarnation": incarnation,
        "_offset": record.offset,
        "_key": None if record.key is None else _storable_text(record.key),
        "_kafka_timestamp": record.timestamp_ms,
        "reason": str(letter.reason),
        "detail": _storable_text(letter.detail),
        "raw_base64": None if record.value is None else base64.b64encode(record.value).decode("ascii"),
        "dead_lettered_at": now_ms,
        "content_type": None if record.content_type is None else _storable_text(record.content_type),
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
    """Create every planned file; one already there counts as written. ``before_each`` runs before each
    request (a landing's deadline). Lake errors propagate (transient ones are retried)."""
    write_ms = []
    for file in planned:
        before_each()
        started = time.perf_counter()
        lake.create(file.path, file.data)
        write_ms.append((time.perf_counter() - started) * 1000)
    rows, dead_letters = row_counts(planned)
    paths, written = tuple(file.path for file in planned), sum(len(file.data) for file in planned)
    return LandingReport(paths, written, rows, dead_letters, tuple(write_ms))


def row_counts(planned: Sequence[PlannedFile]) -> tuple[int, int]:
    """The rows, then the dead letters, ``planned`` files hold."""
    rows = sum(file.row_count for file in planned if not file.dead_letters)
    return rows, sum(file.row_count for file in planned if file.dead_letters)


def _plan_rows(
    part: PartitionBatch, fmt: Format, span: OffsetSpan, incarnation: int, unencodable: list[DeadLetter]
) -> list[PlannedFile]:
    """Raw files from the partition's rows by event hour; rows no encoder takes are appended to ``unencodable``."""
    source, columns = part.source, landed_columns(part.source)
    by_hour: dict[int, list[tuple[Row, int]]] = defaultdict(list)
    for index, row in enumerate(part.to_rows()):
        by_hour[hour_start_ms(row["_event_time"])].append((row, index))
    name = batch_file_name(part.topic_partition, span, incarnation, fmt.extension)
    planned = []
    for hour, entries in sorted(by_hour.items()):
        rows = [row for row, _ in entries]
        data, bad = encode_isolating(fmt, columns, rows, record_name=source.name)
        for item in bad:
            origin = part.origins[entries[item.index][1]]
            unencodable.append(DeadLetter(origin, Reason.UNENCODABLE, f"{fmt.name}: {item.error}"))
        if len(bad) < len(rows):
            refused = {item.index for item in bad}
            kept = [row["_offset"] for index, row in enumerate(rows) if index not in refused]
            path = f"{hour_directory(RAW_AREA, source.name, hour)}/{name}"
            planned.append(PlannedFile(path, data, len(kept), offsets=offsets_digest(kept)))
    return planned


def _plan_table(part: PartitionBatch, fmt: Format, span: OffsetSpan, incarnation: int) -> list[PlannedFile]:
    """Raw files straight from the partition's Arrow table, one per event hour."""
    table = part.table
    assert table is not None
    name = batch_file_name(part.topic_partition, span, incarnation, fmt.extension)
    hours = pc.floor_temporal(table["_event_time"], unit="hour")
    distinct = pc.unique(hours).to_pylist()
    planned = []
    for hour in sorted(distinct):
        piece = table if len(distinct) == 1 else table.filter(pc.equal(hours, pa.scalar(hour, hours.type)))
        hour_ms = int(hour.timestamp() * 1000)
        path = f"{hour_directory(RAW_AREA, part.source.name, hour_ms)}/{name}"
        kept = piece.column("_offset").to_pylist()
        planned.append(PlannedFile(path, fmt.encode_table(piece), piece.num_rows, offsets=offsets_digest(kept)))
    return planned
