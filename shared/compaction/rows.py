"""Arrow work of one hour: read raw files as tables, merge them with the hour's curated rows,
deduplicate by offset, sort by event time. Pure (bytes and tables in, tables out).

A row's identity is (``_topic``, ``_partition``, ``_incarnation``, ``_offset``). Files landed
before the landing added ``_incarnation`` get 0, the first incarnation of a topic-partition.
Among rows with the same identity the first one wins, in the order the tables are given
(the curated rows first, so a published row never changes).

``merge_hour`` does all of it on a whole hour in memory: the reference the bounded-memory job
(``shared.compaction.slices`` and ``rewrite``) must match, which tests hold it to.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import fastavro
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.bounded_reads import check_avro_container, json_lines
from shared.compaction.coverage import OffsetRange
from shared.compaction.hours import Hour, RawFormat
from shared.errors import StreamingPocError
from shared.formats import DECODE_ERRORS
from shared.layout import PARTITION_COLUMNS

IDENTITY = ("_topic", "_partition", "_incarnation", "_offset")
EVENT_TIME = "_event_time"
TIMESTAMP = pa.timestamp("us", tz="UTC")  # what Delta stores
# The columns every raw file with rows has, as ``read_raw`` types them: what compaction itself queries.
REQUIRED = pa.schema(
    [("_topic", pa.string()), ("_partition", pa.int64()), ("_incarnation", pa.int64()), ("_offset", pa.int64())]
).append(pa.field(EVENT_TIME, TIMESTAMP))


class CompactionError(StreamingPocError):
    """An hour cannot be compacted as it is (unreadable raw file, conflicting schemas); others go on."""


def read_raw(fmt: RawFormat, data: bytes, *, path: str, schema: pa.Schema | None = None) -> pa.Table:
    """One landed file as an Arrow table with the lineage columns the merge needs.

    Parquet carries its types. Avro and JSON lines are typed by ``schema`` (the source's landed
    columns) where it names a column, and by inference for columns it does not know (newer code).
    """
    try:
        if fmt == "parquet":
            table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)  # small files: threads cost more
        elif fmt == "avro":
            check_avro_container(data)
            table = _from_records(list(fastavro.reader(io.BytesIO(data))), schema, path)
        else:
            table = _from_records(_landed_rows(data, path), schema, path)
    except CompactionError:
        raise
    except DECODE_ERRORS as error:
        raise CompactionError(f"cannot read raw file {path}: {type(error).__name__}: {error}") from error
    return _with_lineage(table, path)


def _landed_rows(data: bytes, path: str) -> list[object]:
    """A JSON lines file's rows, refused at the first that is not a landed row (an object with its offset) before
    the rest are held: a file of millions of ``{}`` lines is not read whole to be refused."""
    rows: list[object] = []
    for number, line in enumerate(json_lines(data), start=1):
        row = orjson.loads(line)
        if not isinstance(row, dict):
            raise CompactionError(f"raw file {path}: row {number} is not an object ({type(row).__name__})")
        if "_offset" not in row:
            raise CompactionError(f"raw file {path}: row {number} has no _offset: not a landed row")
        rows.append(row)
    return rows


def _from_records(records: list[object], schema: pa.Schema | None, path: str) -> pa.Table:
    """Rows of an Avro or JSON lines file; each must be an object (a record), as landing writes them."""
    rows: list[dict[str, object]] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise CompactionError(f"raw file {path}: row {number} is not an object ({type(record).__name__})")
        rows.append(record)
    names = list(dict.fromkeys(name for record in rows for name in record))
    known = {} if schema is None else {field.name: field.type for field in schema}
    arrays = [column_as([record.get(name) for record in rows], known.get(name)) for name in names]
    return pa.table(dict(zip(names, arrays, strict=True)))


def column_as(values: list[object], landed: pa.DataType | None) -> pa.Array:
    """``values`` as today's landed type; as their own type when a file of other code landed another (the hour's
    fit then casts what it can and keeps the rest in ``_extra``, as for Parquet); as text when they mix types."""
    if landed is not None and pa.types.is_integer(landed) and any(_fraction(value) for value in values):
        landed = None  # Arrow would cut 2.5 to 2 silently: as their own type, so the fit keeps them in _extra
    for kind in (landed, None) if landed is not None else (None,):
        try:
            return pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            continue
    return pa.array([value if value is None or isinstance(value, str) else _text(value) for value in values])


def _fraction(value: object) -> bool:
    return isinstance(value, float) and not value.is_integer()


def _text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def scan_raw(fmt: RawFormat, data: bytes, *, path: str, schema: pa.Schema | None = None) -> tuple[pa.Table, pa.Schema]:
    """A landed file's identity and event-time columns, and the schema ``read_raw`` gives the whole file.

    Parquet is read for those columns only; Avro and JSON lines have to be decoded whole.
    """
    if fmt != "parquet":
        table = read_raw(fmt, data, path=path, schema=schema)
        return table.select(_scanned(table.schema)), table.schema
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        full = _with_lineage(parquet.schema_arrow.empty_table(), path)
        table = parquet.read(columns=_scanned(parquet.schema_arrow), use_threads=False)
    except CompactionError:
        raise
    except DECODE_ERRORS as error:
        raise CompactionError(f"cannot read raw file {path}: {type(error).__name__}: {error}") from error
    return _with_lineage(table, path), full.schema


def landed_as_read(landed: pa.Schema) -> pa.Schema:
    """The columns ``read_raw`` gives a file holding ``landed``'s columns (the lineage typed for the merge)."""
    return _with_lineage(landed.empty_table(), "the landed schema").schema


def _scanned(schema: pa.Schema) -> list[str]:
    return [name for name in (*IDENTITY, EVENT_TIME) if name in schema.names]


def _with_lineage(table: pa.Table, path: str) -> pa.Table:
    names = table.column_names
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise CompactionError(f"raw file {path} has columns {repeated} more than once")
    plain = _plain_schema(table.schema)
    if plain is not None:  # view types (a newer writer's): Arrow cannot filter or sort them
        try:
            table = table.cast(plain)
        except pa.ArrowException as error:
            raise CompactionError(f"raw file {path}: cannot read its view or large columns: {error}") from error
    missing = [name for name in (*IDENTITY, EVENT_TIME) if name not in table.column_names and name != "_incarnation"]
    if missing and table.num_rows == 0:
        return table  # nothing to identify: an empty file
    if missing:
        raise CompactionError(f"raw file {path} lacks lineage columns {missing}")
    if "_incarnation" not in table.column_names:
        table = table.append_column("_incarnation", pa.array([0] * table.num_rows, pa.int64()))
    for name in ("_partition", "_incarnation", "_offset"):
        table = _cast(table, name, pa.int64(), path)
    table = _cast(table, "_topic", pa.string(), path)
    for name in IDENTITY:  # a row's identity: deduplication and coverage need every part of it
        nulls = table.column(name).null_count
        if nulls:
            raise CompactionError(f"raw file {path}: {nulls} rows have no {name}")
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) or field.name in (EVENT_TIME, "_kafka_timestamp"):
            table = table.set_column(index, field.name, _as_timestamp(table.column(index), path, field.name))
    return table


@functools.lru_cache(maxsize=64)
def _plain_schema(schema: pa.Schema) -> pa.Schema | None:
    """``schema`` with plain types (``_plain_type``), or None when it has them (files of a source share a few)."""
    plain = pa.schema([field.with_type(_plain_type(field.type)) for field in schema])
    return None if plain == schema else plain


def _cast(table: pa.Table, name: str, target: pa.DataType, path: str) -> pa.Table:
    index = table.schema.get_field_index(name)
    column = table.column(index)
    if column.type == target:
        return table
    try:
        return table.set_column(index, name, column.cast(target))
    except pa.ArrowException as error:
        raise CompactionError(f"raw file {path}: column {name} is {column.type}, not {target}") from error


def _as_timestamp(column: pa.ChunkedArray, path: str, name: str) -> pa.ChunkedArray:
    """Timestamps as Delta stores them; epoch milliseconds (Avro without logical type, JSON lines) included.
    Nanoseconds (pandas' unit) are floored to microseconds, Delta's precision (raw keeps them): no value overflows,
    and a time before 1970 stays in its hour (a plain cast cuts toward zero: -1 ns would be 1970-01-01)."""
    try:
        if pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
            nanos = column.cast(pa.int64())
            micros = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False).cast(pa.int64())
            floored = pc.if_else(pc.greater(pc.multiply(micros, 1000), nanos), pc.subtract(micros, 1), micros)
            column = floored.cast(pa.timestamp("us", tz=column.type.tz))
        return column.cast(TIMESTAMP)
    except pa.ArrowException as error:
        what = "holds a time Delta's microseconds cannot" if pa.types.is_timestamp(column.type) else "is not a time"
        raise CompactionError(f"raw file {path}: column {name} ({column.type}) {what}: {error}") from error


def merge_hour(hour: Hour, tables: Sequence[pa.Table]) -> pa.Table:
    """The hour's rows once each, sorted by event time (then identity), with its partition columns.

    ``tables`` are the curated rows of the hour (partition columns removed) and then the raw files.
    """
    parts = [table for table in tables if table.num_rows]
    clashing = sorted({name for table in parts for name in PARTITION_COLUMNS if name in table.column_names})
    if clashing:
        raise CompactionError(f"hour {hour}: rows carry columns {clashing}, which are the table's partition columns")
    if not parts:
        raise CompactionError(f"hour {hour} has no rows")
    try:
        combined = pa.concat_tables(parts, promote_options="default")
    except pa.ArrowException as error:
        raise CompactionError(f"hour {hour}: raw files disagree on a column type: {error}") from error
    combined = combined.combine_chunks()
    return with_partition_columns(hour, sort_by_event_time(combined, first_of_each_identity(combined)))


def sort_by_event_time(table: pa.Table, keep: pa.Array | None = None) -> pa.Table:
    """The rows at ``keep`` (all when None) ordered by event time, then identity; rows without a time last."""
    keys = table.select([EVENT_TIME, *IDENTITY])
    if keep is not None:
        keys = keys.take(keep)
    order = pc.sort_indices(keys, sort_keys=[(EVENT_TIME, "ascending"), *_ascending(IDENTITY)])
    if keep is not None:
        order = keep.take(order)
    return table if _is_identity_permutation(order, table.num_rows) else table.take(order)


def with_partition_columns(hour: Hour, table: pa.Table) -> pa.Table:
    rows = table.num_rows
    return table.append_column("date", pa.array([hour.date] * rows, pa.string())).append_column(
        "hour", pa.array([hour.hour] * rows, pa.string())
    )


def first_of_each_identity(table: pa.Table) -> pa.Array:
    """Indices of the first row of every identity (a stable sort keeps input order among equals)."""
    order = pc.sort_indices(table.select(list(IDENTITY)), sort_keys=_ascending(IDENTITY))
    if len(order) == 0:
        return order
    changed: pa.Array | None = None
    for name in IDENTITY:
        values = table.column(name).take(order)
        differs = pc.fill_null(pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)), True)
        changed = differs if changed is None else pc.or_(changed, differs)
    assert changed is not None
    keep = pa.concat_arrays([pa.array([True]), changed.combine_chunks()])
    return order.filter(keep)


def _is_identity_permutation(indices: pa.Array, length: int) -> bool:
    """True when ``indices`` is 0..length-1 in order: nothing to drop or reorder (the common case)."""
    if len(indices) != length or length == 0:
        return len(indices) == length
    signed = indices.cast(pa.int64())
    steps = pc.subtract(signed.slice(1), signed.slice(0, length - 1))
    return bool(pc.all(pc.equal(steps, 1)).as_py()) and indices[0].as_py() == 0


def offset_ranges(table: pa.Table) -> list[OffsetRange]:
    """Offset range and row count per topic, partition and incarnation of a merged hour."""
    grouped = table.group_by(list(IDENTITY[:3]), use_threads=False).aggregate(
        [("_offset", "min"), ("_offset", "max"), ("_offset", "count")]
    )
    ranges = [
        OffsetRange(
            str(row["_topic"]),
            int(row["_partition"]),
            int(row["_incarnation"]),
            int(row["_offset_min"]),
            int(row["_offset_max"]),
            int(row["_offset_count"]),
        )
        for row in grouped.to_pylist()
    ]
    return sorted(ranges, key=lambda r: (r.topic, r.partition, r.incarnation))


def check_fits(hour: Hour, table_schema: pa.Schema, rows: pa.Schema) -> None:
    """Delta can add nullable columns to a table, not change a column's type: say which column would. A ``void``
    column (all null when a table of older code took it) is the exception: its type is replaced."""
    for field in rows:
        if field.name not in table_schema.names:
            continue
        expected = _plain_type(table_schema.field(field.name).type)
        if _plain_type(field.type) != expected and not pa.types.is_null(expected):
            raise CompactionError(
                f"hour {hour}: column {field.name} is {field.type} in the raw files but {expected} in the curated "
                "table; Delta adds new nullable columns but cannot change a column's type"
            )


def all_nullable(table: pa.Table) -> pa.Table:
    """Every column nullable in the table's schema, so older files that lack a newer column still fit."""
    relaxed = pa.schema([field.with_nullable(True) for field in table.schema])
    return table if relaxed == table.schema else table.cast(relaxed)


def curated_as_landed(table: pa.Table) -> pa.Table:
    """Curated rows as read back by the Delta engine, typed like raw files, minus the partition columns.

    The engine returns view and large types (``string_view``); raw files use the plain ones.
    """
    present = [name for name in PARTITION_COLUMNS if name in table.column_names]
    table = table.drop_columns(present) if present else table
    plain = pa.schema([field.with_type(_plain_type(field.type)) for field in table.schema])
    return table if plain == table.schema else table.cast(plain)


def _plain_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_map(kind):
        return pa.map_(_plain_type(kind.key_type), _plain_type(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        return pa.list_(kind.value_field.with_type(_plain_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_plain_type(field.type)) for field in kind])
    return kind


def _ascending(names: Sequence[str]) -> list[tuple[str, str]]:
    return [(name, "ascending") for name in names]
