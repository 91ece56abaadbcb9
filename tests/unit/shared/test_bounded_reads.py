"""Compressed lake files read only as far as a file this app lands can go (two reviews' decompression bombs), and
every file this app lands read as before."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tracemalloc
import zlib
from typing import Any

import fastavro
import pytest

from shared import formats
from shared.bounded_reads import MAX_DECOMPRESSED_BYTES, TooLargeToRead, check_avro_container, json_lines
from shared.landing.guard import LANDING_MAX_BYTES
from shared.lineage import LINEAGE_COLUMNS
from shared.source_model import Column


def _gzip_of_newlines(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(squeeze.compress(b"\n" * (1 << 20)) for _ in range(size >> 20)) + squeeze.flush()


def test_json_lines_reads_what_gzip_reads_across_members_without_blank_lines() -> None:
    data = gzip.compress(b'{"a": 1}\n\n  \r\n') + gzip.compress(b'{"a": 2}\n' + b"\n" * 1000)
    assert [json.loads(line) for line in json_lines(data)] == [{"a": 1}, {"a": 2}]


def test_blank_lines_count_and_are_never_held() -> None:
    """8 MiB of newlines in 8 KiB of gzip: refused past the bound of lines, nothing of them held (256 MiB of them,
    split at once, took 1.4 GB; read one by one, they would take minutes)."""
    bomb = _gzip_of_newlines(8 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeToRead, match="holds more than 1,000,000 lines"):
            list(json_lines(bomb, max_lines=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak:,} bytes at the peak"


def test_json_lines_refuses_text_or_lines_past_its_bounds() -> None:
    data = gzip.compress(b'{"a": 1}\n' * 100)
    assert len(list(json_lines(data, limit=900, max_lines=100))) == 100
    with pytest.raises(TooLargeToRead, match="decompresses to more than 899 bytes"):
        list(json_lines(data, limit=899))
    with pytest.raises(TooLargeToRead, match="holds more than 99 lines"):
        list(json_lines(data, max_lines=99))


@pytest.mark.parametrize(
    ("data", "error"),
    [(gzip.compress(b"x" * 100)[:-12], EOFError), (b"not gzip", gzip.BadGzipFile)],
    ids=["cut short", "not gzip"],
)
def test_json_lines_keeps_gzips_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        list(json_lines(data))


def test_the_bound_is_far_past_what_a_landing_writes() -> None:
    """A landing's values carry at most LANDING_MAX_BYTES, but an Avro source's row text is several times its value
    (a 4-byte float is up to 15 characters, its record again in _received): 28 MB of such values made a 66 MB
    JSON lines file, refused at the first bound of 128 MiB (a review's reproduction)."""
    assert MAX_DECOMPRESSED_BYTES >= 32 * LANDING_MAX_BYTES


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _container(schema: Any, blocks: list[tuple[int, bytes]], codec: bytes = b"null") -> bytes:
    """An Avro object container, written byte by byte (fastavro writes none of the hostile ones)."""
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": codec}
    header = b"Obj\x01" + _long(len(meta)) + b"".join(_long(len(k)) + k + _long(len(v)) + v for k, v in meta.items())
    sync = b"S" * 16
    return header + b"\x00" + sync + b"".join(_long(n) + _long(len(body)) + body + sync for n, body in blocks)


ARRAY_OF_NULLS = {"type": "record", "name": "r", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}


@pytest.mark.parametrize("codec", ["deflate", "null", "bzip2", "xz"])
def test_a_file_this_app_lands_passes_and_reads_as_before(codec: str) -> None:
    data = formats.encode("avro", *_landed(), record_name="t")
    if codec != "deflate":
        reader = fastavro.reader(io.BytesIO(data))
        sink = io.BytesIO()
        fastavro.writer(sink, reader.writer_schema, list(reader), codec=codec, sync_interval=1000)
        data = sink.getvalue()
    check_avro_container(data)
    assert [row["value"] for row in formats.decode("avro", data)] == [1.0] * 3000


def _landed() -> tuple[tuple[Column, ...], list[dict[str, Any]]]:
    columns = (Column("value", "double"), Column("tags", "map"), *LINEAGE_COLUMNS)
    sample = {"string": "t", "long": 1, "double": 1.0, "boolean": True, "timestamp": 0, "map": {"": ""}}
    return columns, [{column.name: sample[column.type] for column in columns}] * 3000


def test_relative_names_as_java_writes_them_resolve_by_their_namespace() -> None:
    """A name inherits its enclosing namespace: ``E`` inside ``a.R`` is ``a.E``, not the earlier ``b.E``. Read by
    short name, a legitimate file was refused and a bomb passed (a review's reproduction)."""
    legit = {
        "type": "record",
        "name": "R",
        "namespace": "a",
        "fields": [
            {
                "name": "old",
                "type": {"type": "record", "name": "E", "namespace": "b", "fields": [{"name": "n", "type": "null"}]},
            },
            {"name": "x", "type": {"type": "record", "name": "E", "fields": [{"name": "i", "type": "int"}]}},
            {"name": "xs", "type": {"type": "array", "items": "E"}},
        ],
    }
    data = _container(legit, [(1, _long(1) + _long(2) + _long(5) + _long(6) + _long(0))])
    check_avro_container(data)
    assert list(fastavro.reader(io.BytesIO(data))) == [{"old": {"n": None}, "x": {"i": 1}, "xs": [{"i": 5}, {"i": 6}]}]
    bomb = {
        "type": "record",
        "name": "R",
        "namespace": "a",
        "fields": [
            {
                "name": "old",
                "type": {"type": "record", "name": "E", "namespace": "b", "fields": [{"name": "i", "type": "int"}]},
            },
            {"name": "e", "type": {"type": "record", "name": "E", "fields": []}},
            {"name": "xs", "type": {"type": "array", "items": "E"}},
        ],
    }
    with pytest.raises(TooLargeToRead, match="values that take no bytes"):
        check_avro_container(_container(bomb, [(1, _long(1) + _long(3_000_000) + _long(0))]))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_container(ARRAY_OF_NULLS, [(1, _long(2**40) + b"\x00")]), "values that take no bytes"),  # 179 bytes
        (
            _container(
                {
                    "type": "record",
                    "name": "r",
                    "fields": [
                        {"name": "xs", "type": {"type": "array", "items": {"type": "error", "name": "E", "fields": []}}}
                    ],
                },
                [(1, _long(3_000_000) + b"\x00")],
            ),
            "values that take no bytes",  # fastavro reads an error as a record
        ),
        (
            _container({"type": "record", "name": "r", "fields": [{"name": "n", "type": "null"}]}, [(2**40, b"")]),
            "no bytes",
        ),
        (
            _container(
                {"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]}, [(10**9, b"\x00")]
            ),
            "records in",
        ),
        (_container("boolean", [(600, b"\x00" * 600), (600, b"\x00" * 600)]), "more than 1,000 records"),
        (
            _container("string", [(1, zlib.compress(b"\x00" * (1 << 21))[2:-4])], codec=b"deflate"),
            "decompresses to more",
        ),
        (_container("string", [(1, bz2.compress(b"\x00" * (1 << 21)))], codec=b"bzip2"), "decompresses to more"),
        (_container("string", [(1, lzma.compress(b"\x00" * (1 << 21)))], codec=b"xz"), "decompresses to more"),
        (_container("string", [(1, b"\x02a")], codec=b"snappy"), "codec 'snappy'"),
    ],
    ids=[
        "array of nulls",
        "array of empty errors",
        "records of nulls",
        "more records than bytes",
        "more records than a file holds",
        "deflate",
        "bzip2",
        "xz",
        "a codec not read with a bound",
    ],
)
def test_a_container_that_would_take_memory_out_of_proportion_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(TooLargeToRead, match=why):
        check_avro_container(data, limit=1 << 20, max_rows=1_000)


def test_the_lakes_avro_reader_checks_first() -> None:
    """``formats.decode`` (redrive, reconcile, the ledgers' checks) built the review's 2**40 nulls before."""
    with pytest.raises(TooLargeToRead):
        formats.decode("avro", _container(ARRAY_OF_NULLS, [(1, _long(2**40) + b"\x00")]))


def test_what_is_not_a_container_is_left_to_the_reader() -> None:
    check_avro_container(b"PAR1 not avro")
    with pytest.raises(ValueError):
        list(fastavro.reader(io.BytesIO(b"PAR1 not avro")))
