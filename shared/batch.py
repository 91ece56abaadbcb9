"""What processing makes of one batch for one source: landed rows and dead letters.

:func:`process_batch` is the pure core an invocation calls first: validate
(``shared.validation``), then transform (``shared.transform``). A source with a columnar
transform, processed for Parquet without keyed state, keeps its landed rows as one Arrow
table (``ProcessedBatch.table``): no dict per row. Anything that reads ``rows`` gets them
built from the table on first use, and from then on the rows are what lands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pyarrow as pa

from shared.dead_letters import DeadLetter
from shared.records import KafkaRecord
from shared.schema_registry.decoder import AvroDecoder, decoder_for
from shared.settings import current_settings
from shared.sources.base import Row, Source
from shared.transform import landed_table, transform_into
from shared.validation import validate_batch


class ProcessedBatch:
    """Landed rows (dicts, or one Arrow table) and dead letters of one invocation for one source.

    ``origins`` holds the record each row came from, row by row.
    """

    __slots__ = ("_rows", "dead_letters", "origins", "records", "source", "table")

    def __init__(
        self,
        source: Source,
        rows: list[Row] | None = None,
        dead_letters: list[DeadLetter] | None = None,
        records: int = 0,
        origins: list[KafkaRecord] | None = None,
        table: pa.Table | None = None,
    ) -> None:
        self.source = source
        self._rows = rows if rows is not None or table is not None else []
        self.dead_letters = dead_letters if dead_letters is not None else []
        self.records = records
        self.origins = origins if origins is not None else []
        self.table = table

    @property
    def rows(self) -> list[Row]:
        if self._rows is None:
            self._rows = rows_of(self.table) if self.table is not None else []
            self.table = None  # the rows may change from here on: they are what lands
        return self._rows

    @rows.setter
    def rows(self, rows: list[Row]) -> None:
        self._rows, self.table = rows, None

    @property
    def row_count(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.rows)

    def subset(self, keep: Callable[[KafkaRecord], bool], letters: list[DeadLetter]) -> ProcessedBatch:
        """The rows whose record ``keep`` accepts (in either form), with ``letters`` as dead letters."""
        mask = [keep(origin) for origin in self.origins]
        origins = [origin for origin, kept in zip(self.origins, mask, strict=True) if kept]
        if self.table is not None:
            table = self.table if all(mask) else self.table.filter(pa.array(mask, pa.bool_()))
            return ProcessedBatch(self.source, None, letters, self.records, origins, table)
        rows = [row for row, kept in zip(self.rows, mask, strict=True) if kept]
        return ProcessedBatch(self.source, rows, letters, self.records, origins)

    def set_incarnations(self, incarnations: Mapping[tuple[str, int], int]) -> None:
        """Set ``_incarnation`` of each row from its (topic, partition); 0 where ``incarnations`` has none."""
        if self.table is not None:
            values = pa.array([incarnations.get((o.topic, o.partition), 0) for o in self.origins], pa.int64())
            index = self.table.schema.get_field_index("_incarnation")
            self.table = self.table.set_column(index, self.table.schema.field(index), values)
            return
        for row in self.rows:
            row["_incarnation"] = incarnations.get((row["_topic"], row["_partition"]), 0)

    def event_times_ms(self, indexes: Iterable[int]) -> list[int]:
        """The landing times (``_event_time``, epoch ms) of the rows at ``indexes``."""
        if self.table is not None:
            column = self.table.column("_event_time")
            return [column[index].value for index in indexes]
        return [self.rows[index]["_event_time"] for index in indexes]

    def dead_letter_rows(self, rows: list[Row], reason: str, details: list[str]) -> None:
        """Move ``rows`` (objects of ``self.rows``) to the dead letters with ``reason``; called by landing."""
        detail_of = {id(row): detail for row, detail in zip(rows, details, strict=True)}
        kept_rows, kept_origins = [], []
        for row, origin in zip(self.rows, self.origins, strict=True):
            detail = detail_of.get(id(row))
            if detail is None:
                kept_rows.append(row)
                kept_origins.append(origin)
            else:
                self.dead_letters.append(DeadLetter(origin, reason, detail))
        self.rows, self.origins = kept_rows, kept_origins


def rows_of(table: pa.Table) -> list[Row]:
    """The table's rows as dicts, timestamps as epoch ms and maps as dicts, as the row path has them."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        values = column.to_pylist()
        if pa.types.is_map(field.type):
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
    """Validate and transform ``records``; each bad one becomes a :class:`DeadLetter` with its reason.

    Called once per invocation. With ``columnar`` (the batch lands as Parquet) and a source that
    has a columnar transform, the rows stay one Arrow table unless ``keyed``: keyed state reads rows.
    An Avro source's values are decoded by ``decoder``, by default the worker's for the source's
    registry (the only I/O here: a schema id not seen before; a registry that does not answer raises).
    Never raises for anything a record carries.
    """
    if decoder is None and source.value_format == "avro":
        decoder = decoder_for(source, current_settings())
    validated = validate_batch(source, records, max_record_bytes=max_record_bytes, decoder=decoder)
    if columnar and not keyed and source.transform_columns is not None:
        table = landed_table(source, validated)
        if table is not None:
            return ProcessedBatch(source, None, validated.dead_letters, validated.records, validated.origins, table)
    batch = ProcessedBatch(source, dead_letters=validated.dead_letters, records=validated.records)
    transform_into(batch, validated, keyed=keyed)
    return batch
