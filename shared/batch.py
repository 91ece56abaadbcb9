"""What processing makes of one invocation's records for one source: a batch per topic-partition.

:func:`process_batch` is the pure core an invocation calls first: validate the whole batch in
one call (``shared.validation``), transform it (``shared.transform``), then split it by
topic-partition, as the records came. Each :class:`PartitionBatch` owns its data: the landed rows
in one form, an Arrow table (a source with a columnar transform, landing Parquet, without keyed
state) or dicts (everything else), their records and the partition's dead letters. Landing works
one partition at a time (``shared.landing``) and nothing is merged back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, lt
from typing import TypeVar

import pyarrow as pa

from shared.dead_letters import DeadLetter
from shared.errors import ConfigurationError
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.schema_registry.decoder import AvroDecoder
from shared.source_model import Row, Source
from shared.transform import transform_rows, transform_table
from shared.validation import validate_batch

T = TypeVar("T")


@dataclass(slots=True)
class PartitionBatch:
    """One topic-partition's share of a batch: its records, their landed rows and its dead letters.

    The rows are held in one form: ``table`` (Arrow) or ``rows`` (dicts). ``origins`` holds the
    record of each row, in offset order; ``records`` every record of the partition, landed or not.
    """

    source: Source
    topic_partition: TopicPartition
    records: list[KafkaRecord]
    origins: list[KafkaRecord]
    dead_letters: list[DeadLetter]
    table: pa.Table | None = None
    rows: list[Row] | None = None
    incarnation: int = 0  # what the rows' ``_incarnation`` holds (set by the landing), bar ``earlier``
    earlier: dict[int, frozenset[int]] = field(default_factory=dict)  # offsets of earlier lives, by life

    @property
    def row_count(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.rows or ())

    @property
    def span(self) -> OffsetSpan:
        """The lowest and highest offset of the partition's records."""
        offsets = [record.offset for record in self.records]
        return OffsetSpan(min(offsets), max(offsets))

    def to_rows(self) -> list[Row]:
        """The landed rows as dicts: the rows themselves, or new dicts built from the table."""
        if self.rows is not None:
            return self.rows
        return rows_of(self.table) if self.table is not None else []

    def event_times_ms(self, indexes: Iterable[int]) -> list[int]:
        """The landing times (``_event_time``, epoch ms) of the rows at ``indexes``."""
        if self.table is not None:
            column = self.table.column("_event_time")
            return [column[index].value for index in indexes]
        rows = self.rows or []
        return [rows[index]["_event_time"] for index in indexes]

    def select(self, offsets: Collection[int]) -> PartitionBatch:
        """The part of this batch at ``offsets``: its records, rows and dead letters."""
        keep = [origin.offset in offsets for origin in self.origins]
        origins = [origin for origin, kept in zip(self.origins, keep, strict=True) if kept]
        records = [record for record in self.records if record.offset in offsets]
        letters = [letter for letter in self.dead_letters if letter.record.offset in offsets]
        where, life = self.topic_partition, self.incarnation
        earlier = {past: kept for past, held in self.earlier.items() if (kept := held & frozenset(offsets))}
        if self.table is not None:
            table = self.table if all(keep) else self.table.filter(pa.array(keep, pa.bool_()))
            return PartitionBatch(
                self.source, where, records, origins, letters, table=table, incarnation=life, earlier=earlier
            )
        rows = [row for row, kept in zip(self.rows or (), keep, strict=True) if kept]
        return PartitionBatch(
            self.source, where, records, origins, letters, rows=rows, incarnation=life, earlier=earlier
        )

    def set_incarnation(self, incarnation: int, earlier: dict[int, frozenset[int]] | None = None) -> None:
        """Every row's ``_incarnation``: the life of the partition's offsets its landing found (in place).

        ``earlier``: offsets that belong to earlier lives, by life (a batch that crosses the point
        where the partition's offsets restarted); every other row is of ``incarnation``.
        """
        self.incarnation, self.earlier = incarnation, dict(earlier or {})
        if self.earlier:
            lives = [self.life_of(origin.offset) for origin in self.origins]
        else:
            lives = [incarnation] * len(self.origins)
        if self.table is not None:
            index = self.table.schema.get_field_index("_incarnation")
            values = pa.array(lives, pa.int64())
            self.table = self.table.set_column(index, self.table.schema.field(index), values)
            return
        for row, life in zip(self.rows or (), lives, strict=True):
            row["_incarnation"] = life

    def take_lives(self, parts: Sequence[PartitionBatch]) -> None:
        """Label this batch as its two parts (below and above an offset, landed one after the other) were."""
        below, above = parts
        earlier = dict(below.earlier)
        if below.incarnation != above.incarnation:
            earlier[below.incarnation] = frozenset(record.offset for record in below.records)
        for life, offsets in above.earlier.items():
            earlier[life] = earlier.get(life, frozenset()) | offsets
        self.set_incarnation(above.incarnation, earlier)

    def life_spans(self) -> dict[int, OffsetSpan]:
        """The span of this batch's records (landed or not) in each life they belong to."""
        by_life: dict[int, list[int]] = {}
        for record in self.records:
            by_life.setdefault(self.life_of(record.offset), []).append(record.offset)
        return {life: OffsetSpan(min(offsets), max(offsets)) for life, offsets in by_life.items()}

    def life_of(self, offset: int) -> int:
        """The life (incarnation) the record at ``offset`` belongs to."""
        for life, offsets in self.earlier.items():
            if offset in offsets:
                return life
        return self.incarnation


@dataclass(slots=True)
class ProcessedBatch:
    """One invocation's records for one source, split by topic-partition in the order they came."""

    source: Source
    record_count: int
    partitions: dict[TopicPartition, PartitionBatch] = field(default_factory=dict)

    def __iter__(self) -> Iterator[PartitionBatch]:
        return iter(self.partitions.values())

    @property
    def row_count(self) -> int:
        return sum(part.row_count for part in self)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [letter for part in self for letter in part.dead_letters]

    def rows(self) -> list[Row]:
        """Every partition's rows as dicts, partition by partition (what keyed state reads and enriches)."""
        return [row for part in self for row in part.to_rows()]


def rows_of(table: pa.Table) -> list[Row]:
    """The table's rows as dicts, timestamps as epoch ms and maps as dicts, as the row path has them."""
    columns = []
    for column_field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(column_field.type):
            column = column.cast(pa.int64())
        values = column.to_pylist()
        if pa.types.is_map(column_field.type):
            values = [None if value is None else dict(value) for value in values]
        columns.append(values)
    names = table.column_names
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def process_batch(
    source: Source,
    records: Iterable[KafkaRecord],
    *,
    max_record_bytes: int,
    keyed: bool = False,
    columnar: bool = False,
    decoder: AvroDecoder | None = None,
) -> ProcessedBatch:
    """Validate and transform ``records``, then split them by topic-partition; each bad record becomes a
    :class:`DeadLetter` with its reason.

    Called once per invocation. With ``columnar`` (the batch lands as Parquet) and a source that
    has a columnar transform, the rows stay Arrow unless ``keyed``: keyed state reads rows.
    An Avro source's values are decoded by ``decoder`` (``shared.schema_registry.decoder.decoder_for``:
    its only I/O is fetching a schema id not seen before; a registry that does not answer raises).
    Never raises for anything a record carries.
    """
    records = _first_copies(list(records))
    if decoder is None and source.value_format == "avro":
        raise ConfigurationError(f"{source.name} is an Avro source: its records need the registry's decoder")
    validated = validate_batch(source, records, max_record_bytes=max_record_bytes, decoder=decoder)
    if columnar and not keyed and source.transform_columns is not None:
        table = transform_table(source, validated)
        if table is not None:
            return _split(source, records, validated.origins, validated.dead_letters, table=table)
    transformed = transform_rows(source, validated, keyed=keyed)
    return _split(source, records, transformed.origins, transformed.dead_letters, rows=transformed.rows)


def _first_copies(records: list[KafkaRecord]) -> list[KafkaRecord]:
    """``records`` with each (topic, partition, offset) once, its first copy: a consumer that lost and regained a
    partition while gathering a batch can fetch a record again. Before validation, as a copy's outcome may differ
    from the first's (an Avro batch's repeat budget spent between them: one row and one dead letter of an offset).
    Offsets increasing through the batch (one partition, the usual batch) hold no copy: checked in C."""
    offsets = list(map(_OFFSET, records))
    if all(map(lt, offsets, offsets[1:])):
        return records
    seen: set[tuple[str, int, int]] = set()
    first = []
    for record in records:
        position = (record.topic, record.partition, record.offset)
        if position not in seen:
            seen.add(position)
            first.append(record)
    return first


_OFFSET = attrgetter("offset")


def _split(
    source: Source,
    records: list[KafkaRecord],
    origins: list[KafkaRecord],
    letters: list[DeadLetter],
    *,
    table: pa.Table | None = None,
    rows: list[Row] | None = None,
) -> ProcessedBatch:
    """The batch's rows, origins and dead letters by topic-partition. A batch holds runs of records of
    one partition, so everything is cut by runs (a table by slices, no copy while a partition is one run)."""
    batch = ProcessedBatch(source, len(records))
    parts = batch.partitions
    for where, start, end in _runs(records):
        part = parts.get(where)
        if part is None:
            part = parts[where] = PartitionBatch(source, where, [], [], [], rows=None if table is not None else [])
        part.records.extend(records[start:end])
    for letter in letters:
        parts[letter.record.topic_partition].dead_letters.append(letter)
    slices: dict[TopicPartition, list[tuple[int, int]]] = {}
    for where, start, end in _runs(origins):
        part = parts[where]
        part.origins.extend(origins[start:end])
        if rows is not None and part.rows is not None:
            part.rows.extend(rows[start:end])
        slices.setdefault(where, []).append((start, end))
    if table is not None:
        for where, part in parts.items():
            pieces = [table.slice(start, end - start) for start, end in slices.get(where, ())]
            part.table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces) if pieces else table.slice(0, 0)
    for part in batch:
        if not _in_order(part.records):
            _sort(part)
    return batch


def _runs(records: list[KafkaRecord]) -> Iterator[tuple[TopicPartition, int, int]]:
    """Each run of consecutive records from one topic-partition: where, first index, end index."""
    start, count = 0, len(records)
    if count and _one_partition(records):  # the common case, checked in C loops
        yield records[0].topic_partition, 0, count
        return
    while start < count:
        first = records[start]
        topic, partition = first.topic, first.partition
        end = start + 1
        while end < count and records[end].partition == partition and records[end].topic == topic:
            end += 1
        yield TopicPartition(topic, partition), start, end
        start = end


def _one_partition(records: list[KafkaRecord]) -> bool:
    first = records[0]
    partitions = list(map(attrgetter("partition"), records))
    if partitions.count(first.partition) != len(records):
        return False
    return list(map(attrgetter("topic"), records)).count(first.topic) == len(records)


def _in_order(records: list[KafkaRecord]) -> bool:
    """True when offsets strictly increase (a partition's records, each once, as delivered)."""
    offsets = list(map(attrgetter("offset"), records))
    if len(offsets) < 2:
        return True
    if offsets == list(range(offsets[0], offsets[0] + len(offsets))):  # consecutive: the common case, in C
        return True
    return all(map(int.__lt__, offsets, offsets[1:]))


def _sort(part: PartitionBatch) -> None:
    """Put a partition delivered out of offset order in order (records, rows and dead letters alike), each
    offset once: a consumer that lost and regained the partition while gathering a batch can fetch a record
    again, and the first delivery is the one that counts."""
    part.records = sorted(_first_per_offset(part.records, lambda record: record.offset), key=lambda r: r.offset)
    letters = _first_per_offset(part.dead_letters, lambda letter: letter.record.offset)
    part.dead_letters = sorted(letters, key=lambda letter: letter.record.offset)
    kept = _first_per_offset(range(len(part.origins)), lambda index: part.origins[index].offset)
    order = sorted(kept, key=lambda index: part.origins[index].offset)
    part.origins = [part.origins[index] for index in order]
    if part.table is not None:
        part.table = part.table.take(pa.array(order, pa.int64()))
    elif part.rows is not None:
        part.rows = [part.rows[index] for index in order]


def _first_per_offset(items: Iterable[T], offset_of: Callable[[T], int]) -> list[T]:
    seen: set[int] = set()
    kept = []
    for item in items:
        offset = offset_of(item)
        if offset not in seen:
            seen.add(offset)
            kept.append(item)
    return kept
