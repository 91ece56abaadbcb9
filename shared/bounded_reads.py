"""Reading a compressed lake file only as far as a file this app lands can go.

A raw or dead-letter file is read whole into memory, then decompressed. A file written by someone else (a foreign
file, or a hostile one) may decompress to any size: 127 KiB of gzip held 128 MiB, and an Avro file of 179 bytes
declared 2**40 items of an array of nulls (items that take no bytes). Both took the worker's memory on every
compaction run, so the hour never compacted and the file was never quarantined. Here such a file is a
``TooLargeToRead`` (a ``ValueError``, one of ``shared.formats.DECODE_ERRORS``): unreadable, named, quarantined.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

# What one landed file can decompress to: a landing's values carry at most 32 MiB (LANDING_MAX_BYTES), and a row
# holds its value's fields and lineage (a dead letter its value in base64); four times that is past any file this
# app writes.
MAX_DECOMPRESSED_BYTES = 128 << 20
_AVRO_MAGIC = b"Obj\x01"
_SYNC_BYTES = 16
_READ_BYTES = 1 << 20


class TooLargeToRead(ValueError):
    """A file that decompresses (or declares values) past what a file this app lands can hold."""


def gunzip(data: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """``gzip.decompress(data)``, with its errors, refusing output past ``limit`` before holding more of it."""
    parts: list[bytes] = []
    held = 0
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while part := stream.read(_READ_BYTES):  # read(limit + 1) would allocate the whole limit for any file
            held += len(part)
            if held > limit:
                raise TooLargeToRead(f"decompresses to more than {limit:,} bytes: not a file this app lands")
            parts.append(part)
    return b"".join(parts)


def json_lines(data: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> Iterator[bytes]:
    """The non-blank lines of gzipped JSON lines (:func:`gunzip`), one at a time: a file of blank lines is never
    held as a list of them (256 MiB of newlines took 1.4 GB split at once)."""
    for line in io.BytesIO(gunzip(data, limit)):
        if not line.isspace():
            yield line


def check_avro_container(data: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> None:
    """Refuse an Avro object container file whose reading could take memory out of proportion to its bytes: blocks
    that decompress past ``limit`` in all, more records in a block than its bytes, or a schema with a value that
    takes no bytes (a null, an empty record) where a count decides how many there are (records, array items, map
    values). Every other value takes at least a byte, so what is read stays within ``limit`` values. A file that is
    not a container is left to the reader to refuse."""
    stream = io.BytesIO(data)
    if stream.read(4) != _AVRO_MAGIC:
        return
    metadata = _read_metadata(stream)
    schema = orjson.loads(metadata.get("avro.schema", b"null"))
    codec = metadata.get("avro.codec", b"null").decode("ascii", "replace")
    if _takes_no_bytes(schema, {}) or _counts_free_values(schema, {}):
        raise TooLargeToRead("its schema has values that take no bytes, counted by the file: not a file this app lands")
    stream.read(_SYNC_BYTES)
    total = 0
    while stream.tell() < len(data):
        records, size = _read_long(stream), _read_long(stream)
        if records < 0 or size < 0 or size > len(data):
            raise TooLargeToRead(f"a block of {records} records in {size} bytes: not a file this app lands")
        block = _decompressed(codec, stream.read(size), limit - total)
        total += len(block)
        if records > len(block):
            raise TooLargeToRead(f"a block of {records:,} records in {len(block):,} bytes: not a file this app lands")
        stream.read(_SYNC_BYTES)


def _decompressed(codec: str, block: bytes, room: int) -> bytes:
    if codec != "deflate":  # null: as stored; any other codec is the reader's to take or refuse
        if len(block) > room:
            raise TooLargeToRead(f"blocks of more than {MAX_DECOMPRESSED_BYTES:,} bytes: not a file this app lands")
        return block
    inflater = zlib.decompressobj(-15)
    out = inflater.decompress(block, room + 1)
    if len(out) > room or inflater.unconsumed_tail:
        raise TooLargeToRead(f"decompresses to more than {MAX_DECOMPRESSED_BYTES:,} bytes: not a file this app lands")
    return out


def _read_long(stream: io.BytesIO) -> int:
    """Avro's zig-zag varint."""
    value = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise EOFError("an Avro long cut short")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7
        if shift > 63:
            raise TooLargeToRead("an Avro long of more than 64 bits")


def _read_metadata(stream: io.BytesIO) -> dict[str, bytes]:
    metadata: dict[str, bytes] = {}
    while (count := _read_long(stream)) != 0:
        if count < 0:
            count = -count
            _read_long(stream)  # the block's size in bytes
        for _ in range(count):
            key = _read_bytes(stream).decode("utf-8", "replace")
            metadata[key] = _read_bytes(stream)
    return metadata


def _read_bytes(stream: io.BytesIO) -> bytes:
    length = _read_long(stream)
    if length < 0:
        raise ValueError(f"an Avro byte string of length {length}")
    return stream.read(length)


def _named(schema: Any, names: dict[str, Any]) -> Any:
    """``schema`` with a reference to a named type replaced by the type, recording named types as they are defined
    (by their full and their short name: a reference may use either)."""
    if isinstance(schema, str):
        return names.get(schema, names.get(schema.rsplit(".", 1)[-1], schema))
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        name, namespace = schema["name"], schema.get("namespace")
        names.setdefault(name.rsplit(".", 1)[-1], schema)
        names.setdefault(f"{namespace}.{name}" if isinstance(namespace, str) and "." not in name else name, schema)
    return schema


def _takes_no_bytes(schema: Any, names: dict[str, Any], seen: frozenset[int] = frozenset()) -> bool:
    """Whether a value of ``schema`` can be encoded in no bytes: null, a fixed of size 0, a record of such fields."""
    schema = _named(schema, names)
    if schema == "null":
        return True
    if not isinstance(schema, dict) or id(schema) in seen:
        return False
    kind = schema.get("type")
    if isinstance(kind, (dict, list)) or kind in names:
        return _takes_no_bytes(kind, names, seen | {id(schema)})
    if kind == "fixed":
        return schema.get("size") == 0
    if kind == "record":
        fields = schema.get("fields") or []
        inner = seen | {id(schema)}
        return all(isinstance(f, dict) and _takes_no_bytes(f.get("type"), names, inner) for f in fields)
    return kind == "null"


def _counts_free_values(schema: Any, names: dict[str, Any], seen: frozenset[int] = frozenset()) -> bool:
    """Whether an array or map anywhere in ``schema`` holds values that can take no bytes."""
    schema = _named(schema, names)
    if isinstance(schema, list):
        return any(_counts_free_values(branch, names, seen) for branch in schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return False
    inner = seen | {id(schema)}
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return _takes_no_bytes(items, names) or _counts_free_values(items, names, inner)
    if kind == "map":
        values = schema.get("values")
        return _counts_free_values(values, names, inner)  # each entry's key takes a byte at least
    if kind == "record":
        fields = schema.get("fields") or []
        return any(isinstance(f, dict) and _counts_free_values(f.get("type"), names, inner) for f in fields)
    return isinstance(kind, (dict, list)) and _counts_free_values(kind, names, inner)
