"""Reading a compressed lake file only as far as a file this app lands can go.

A raw or dead-letter file is read whole into memory, then decompressed and parsed. A file written by someone else
(a foreign file, or a hostile one) may decompress to any size: 127 KiB of gzip held 128 MiB of newlines, and an
Avro file of 179 bytes declared 2**40 items of an array of nulls (items that take no bytes). Both took the worker's
memory on every compaction run, so the hour never compacted and the file was never quarantined. Here such a file
is a ``TooLargeToRead`` (a ``ValueError``, one of ``shared.formats.DECODE_ERRORS``): unreadable, named, quarantined.

The bounds sit far past any file this app lands, so that none is refused: a landing's values carry at most 32 MiB
(``LANDING_MAX_BYTES``) and one batch of one partition (``maxBatchSize`` records, 10,000 by default), but a row's
text can be many times its value (an Avro source's arrays and enums land as JSON text, its record again in
``_received``). What they bound is a file's rows and its decompressed bytes; a file within them may still take as
much memory as the largest file this app lands.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import Any

import fastavro
import orjson

from shared.schema_registry.avro_binary import zero_width_items

MAX_DECOMPRESSED_BYTES = 1 << 30
MAX_FILE_ROWS = 2_000_000
_AVRO_MAGIC = b"Obj\x01"
_SYNC_BYTES = 16
_CHECKED_CODECS = ("null", "deflate", "bzip2", "xz")  # the ones read with a bound here


class TooLargeToRead(ValueError):
    """A file that decompresses (or declares values) past what a file this app lands can hold."""


def json_lines(data: bytes, limit: int = MAX_DECOMPRESSED_BYTES, max_lines: int = MAX_FILE_ROWS) -> Iterator[bytes]:
    """The non-blank lines of gzipped JSON lines, decompressed one at a time (``gzip.decompress``'s errors): the
    text is never held whole. ``TooLargeToRead`` past ``limit`` bytes of text or ``max_lines`` lines, blank ones
    counted too (this app writes none): 256 MiB of newlines split at once took 1.4 GB, and read one by one they
    would take minutes."""
    held = lines = 0
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while line := stream.readline(limit - held + 1):
            held += len(line)
            lines += 1
            if held > limit:
                raise TooLargeToRead(f"decompresses to more than {limit:,} bytes: not a file this app lands")
            if lines > max_lines:
                raise TooLargeToRead(f"holds more than {max_lines:,} lines: not a file this app lands")
            if not line.isspace():
                yield line


def check_avro_container(data: bytes, limit: int = MAX_DECOMPRESSED_BYTES, max_rows: int = MAX_FILE_ROWS) -> None:
    """Refuse an Avro object container file whose reading could take memory out of proportion to its bytes: blocks
    that decompress past ``limit`` in all, more records than ``max_rows`` in all or than bytes in a block, a codec
    not read with a bound here, or a schema with a value that takes no bytes (a null, an empty record) where a
    count decides how many there are (records, array items). Every other value takes at least a byte, so what is
    read stays within ``limit`` values. A file that is not a container, or whose schema fastavro refuses, is left
    to the reader to refuse."""
    stream = io.BytesIO(data)
    if stream.read(4) != _AVRO_MAGIC:
        return
    metadata = _read_metadata(stream)
    codec = metadata.get("avro.codec", b"null").decode("ascii", "replace") or "null"
    if codec not in _CHECKED_CODECS:
        raise TooLargeToRead(f"Avro codec {codec!r}: this app lands deflate and reads {', '.join(_CHECKED_CODECS)}")
    try:
        parsed = fastavro.parse_schema(orjson.loads(metadata.get("avro.schema", b"null")))
    except Exception:  # the reader refuses it the same way, with its own error
        return
    named: dict[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    if zero_width_items({"type": "array", "items": parsed}, named):  # a block counts its records as an array does
        raise TooLargeToRead("its schema has values that take no bytes, counted by the file: not a file this app lands")
    stream.read(_SYNC_BYTES)
    total = rows = 0
    while stream.tell() < len(data):
        records, size = _read_long(stream), _read_long(stream)
        if records < 0 or size < 0 or size > len(data):
            raise TooLargeToRead(f"a block of {records} records in {size} bytes: not a file this app lands")
        block = _decompressed(codec, stream.read(size), limit - total)
        total, rows = total + len(block), rows + records
        if records > len(block):
            raise TooLargeToRead(f"a block of {records:,} records in {len(block):,} bytes: not a file this app lands")
        if rows > max_rows:
            raise TooLargeToRead(f"holds more than {max_rows:,} records: not a file this app lands")
        stream.read(_SYNC_BYTES)


def _decompressed(codec: str, block: bytes, room: int) -> bytes:
    """A block's bytes as decompressed, refused past ``room`` bytes before more is held."""
    if codec == "null":
        out = block
    elif codec == "deflate":
        out = zlib.decompressobj(-15).decompress(block, room + 1)
    else:
        decompressor: Any = bz2.BZ2Decompressor() if codec == "bzip2" else lzma.LZMADecompressor()
        out = decompressor.decompress(block, max_length=room + 1)
    if len(out) > room:
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
