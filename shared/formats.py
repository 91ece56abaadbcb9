"""Encode landed rows as Parquet (zstd), Avro (deflate) or gzipped JSON lines, and read them back.

Rows are dicts keyed by column name; ``timestamp`` columns hold epoch milliseconds (UTC).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from shared.bounded_reads import check_avro_container, json_lines
from shared.settings import LakeFormat
from shared.source_model import EPOCH, MILLISECOND, Column, Row

# What decoding a damaged or foreign lake file raises: the readers' own errors (pyarrow's are ``ArrowException``,
# a damaged gzip or deflate stream ``zlib.error``, a damaged Avro header a ``KeyError``, ``IndexError``,
# ``AttributeError`` or a schema error). Not a bug of this code's: every reader catches these alone.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    EOFError,
    StopIteration,
    RecursionError,
    zlib.error,
    pa.ArrowException,
    SchemaParseException,
    SchemaResolutionError,
)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "map": pa.map_(pa.string(), pa.string()),
}
_AVRO_TYPES: dict[str, Any] = {
    "string": "string",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "timestamp": {"type": "long", "logicalType": "timestamp-millis"},
    "map": {"type": "map", "values": "string"},
}


class Format:
    """A lake file format: how rows (and, for Parquet, one Arrow table) are encoded and read back."""

    name: LakeFormat
    extension: str
    takes_tables = False  # whether a batch's Arrow table can be encoded as it is (no rows built)

    def encode_rows(self, columns: Sequence[Column], rows: Sequence[Row], record_name: str) -> bytes:
        raise NotImplementedError

    def encode_table(self, table: pa.Table) -> bytes:
        raise TypeError(f"{self.name} files are encoded from rows, not tables")

    def decode(self, data: bytes) -> list[Row]:
        """A landed file read back with the format's standard reader (timestamps as epoch ms)."""
        raise NotImplementedError


class Parquet(Format):
    name, extension, takes_tables = "parquet", "parquet", True

    def encode_rows(self, columns: Sequence[Column], rows: Sequence[Row], record_name: str) -> bytes:
        return _encode_parquet(columns, rows)

    def encode_table(self, table: pa.Table) -> bytes:
        return encode_parquet_table(table)

    def decode(self, data: bytes) -> list[Row]:
        table = pq.read_table(io.BytesIO(data))
        maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
        rows = [_timestamps_to_ms(row) for row in table.to_pylist()]
        for row in rows:
            for name in maps:
                if row[name] is not None:
                    row[name] = dict(row[name])
        return rows


class Avro(Format):
    name, extension = "avro", "avro"

    def encode_rows(self, columns: Sequence[Column], rows: Sequence[Row], record_name: str) -> bytes:
        return _encode_avro(columns, rows, record_name)

    def decode(self, data: bytes) -> list[Row]:
        check_avro_container(data)
        return [_timestamps_to_ms(row) for row in fastavro.reader(io.BytesIO(data))]  # type: ignore[arg-type]


class JsonLines(Format):
    name, extension = "jsonl", "jsonl.gz"

    def encode_rows(self, columns: Sequence[Column], rows: Sequence[Row], record_name: str) -> bytes:
        return _encode_jsonl(columns, rows)

    def decode(self, data: bytes) -> list[Row]:
        if not data:  # gzip takes no bytes at all for no lines; every file written holds a gzip stream
            raise gzip.BadGzipFile("no bytes: not a gzip stream")
        return [orjson.loads(line) for line in json_lines(data)]


FORMATS: dict[str, Format] = {fmt.name: fmt for fmt in (Parquet(), Avro(), JsonLines())}
EXTENSIONS: dict[str, str] = {name: fmt.extension for name, fmt in FORMATS.items()}


def format_named(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}") from None


def format_of_path(path: str) -> Format | None:
    """The format a landed file's name says it has, or None."""
    return next((fmt for fmt in FORMATS.values() if path.endswith("." + fmt.extension)), None)


def encode(fmt: LakeFormat, columns: Sequence[Column], rows: Sequence[Row], *, record_name: str) -> bytes:
    """``rows`` as a file of the format named ``fmt``."""
    return format_named(fmt).encode_rows(columns, rows, record_name)


def decode(fmt: LakeFormat, data: bytes) -> list[Row]:
    """A landed file of the format named ``fmt`` read back (timestamps as epoch ms)."""
    return format_named(fmt).decode(data)


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in columns])


def avro_schema(columns: Sequence[Column], record_name: str) -> dict[str, Any]:
    fields = []
    for column in columns:
        avro_type = _AVRO_TYPES[column.type]
        fields.append({"name": column.name, "type": ["null", avro_type] if column.nullable else avro_type})
    return {"type": "record", "name": record_name, "namespace": "streamingpoc", "fields": fields}


def _encode_parquet(columns: Sequence[Column], rows: Sequence[Row]) -> bytes:
    schema = arrow_schema(columns)
    arrays = []
    for column, values in zip(columns, _columnar(columns, rows), strict=True):
        if column.type == "map":
            values = [None if v is None else list(v.items()) for v in values]
        arrays.append(pa.array(values, type=_ARROW_TYPES[column.type]))
    return encode_parquet_table(pa.Table.from_arrays(arrays, schema=schema))


def encode_parquet_table(table: pa.Table) -> bytes:
    """A table as one Parquet file, zstd-compressed: how every raw Parquet file is written. Column statistics
    (min/max) only for numbers, booleans and times: nothing filters raw files by a string's range, and computing
    them for strings (``_received`` above all) costs about a tenth of the write."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=_statistics_columns(table.schema))
    return sink.getvalue()


def _statistics_columns(schema: pa.Schema) -> list[str]:
    return [
        field.name
        for field in schema
        if pa.types.is_integer(field.type)
        or pa.types.is_floating(field.type)
        or pa.types.is_boolean(field.type)
        or pa.types.is_temporal(field.type)
    ]


def _columnar(columns: Sequence[Column], rows: Sequence[Row]) -> list[Sequence[Any]]:
    """Transpose rows into one value list per column (missing keys become ``None``)."""
    if not rows:
        return [[] for _ in columns]
    names = [c.name for c in columns]
    try:
        return (
            list(zip(*map(itemgetter(*names), rows), strict=True))
            if len(names) > 1
            else [[row[names[0]] for row in rows]]
        )
    except KeyError:
        return [[row.get(name) for row in rows] for name in names]


_parsed_avro_schemas: dict[tuple[str, tuple[Column, ...]], Any] = {}


def _encode_avro(columns: Sequence[Column], rows: Sequence[Row], record_name: str) -> bytes:
    cache_key = (record_name, tuple(columns))
    parsed = _parsed_avro_schemas.get(cache_key)
    if parsed is None:
        parsed = _parsed_avro_schemas[cache_key] = fastavro.parse_schema(avro_schema(columns, record_name))
    sink = io.BytesIO()
    fastavro.writer(sink, parsed, rows, codec="deflate")
    return sink.getvalue()


def _encode_jsonl(columns: Sequence[Column], rows: Sequence[Row]) -> bytes:
    names = [c.name for c in columns]
    exact = set(names)  # rows holding exactly the columns (dead letters, landed rows) are dumped as they are
    lines = b"\n".join(
        orjson.dumps(row if row.keys() == exact else {name: row.get(name) for name in names}) for row in rows
    )
    return gzip.compress(lines + b"\n" if rows else b"", compresslevel=1, mtime=0)


def _timestamps_to_ms(row: dict[str, Any]) -> Row:
    """Timestamps read back as epoch milliseconds, exactly: a float product (``timestamp() * 1000``) truncates some
    instants to the millisecond before. A naive value is taken as local time, as ``astimezone`` takes it."""
    for name, value in row.items():
        if isinstance(value, datetime):
            row[name] = (value.astimezone(UTC) - EPOCH) // MILLISECOND
    return row
