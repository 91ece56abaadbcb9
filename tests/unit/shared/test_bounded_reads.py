"""Compressed lake files read only as far as a file this app lands can go (a review's decompression bombs)."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from typing import Any

import fastavro
import pytest

from shared import formats
from shared.bounded_reads import TooLargeToRead, check_avro_container, gunzip, json_lines
from shared.lineage import LINEAGE_COLUMNS
from shared.source_model import Column


def _gzip_of_zeros(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    return squeeze.compress(b"\n" * size) + squeeze.flush()


def test_gunzip_reads_what_gzip_reads_across_members() -> None:
    data = gzip.compress(b'{"a": 1}\n') + gzip.compress(b'{"a": 2}\n')
    assert gunzip(data) == gzip.decompress(data) == b'{"a": 1}\n{"a": 2}\n'


def test_gunzip_refuses_output_past_its_limit_before_holding_it() -> None:
    bomb = _gzip_of_zeros(1 << 20)  # about 1 KiB of gzip
    assert len(bomb) < 2048
    assert len(gunzip(bomb, limit=1 << 20)) == 1 << 20
    with pytest.raises(TooLargeToRead, match="decompresses to more than 1,048,575 bytes"):
        gunzip(bomb, limit=(1 << 20) - 1)


@pytest.mark.parametrize(
    ("data", "error"),
    [(gzip.compress(b"x" * 100)[:-12], EOFError), (b"not gzip", gzip.BadGzipFile)],
    ids=["cut short", "not gzip"],
)
def test_gunzip_keeps_gzips_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        gunzip(data)


def test_json_lines_yields_the_lines_with_text_and_never_a_list_of_blank_ones() -> None:
    data = gzip.compress(b'{"a": 1}\n\n  \r\n{"a": 2}\n' + b"\n" * 100_000)
    assert [json.loads(line) for line in json_lines(data)] == [{"a": 1}, {"a": 2}]


def _landed_avro() -> bytes:
    columns = (Column("value", "double"), Column("tags", "map"), *LINEAGE_COLUMNS)
    sample = {"string": "t", "long": 1, "double": 1.0, "boolean": True, "timestamp": 0, "map": {"k": "v"}}
    row = {column.name: sample[column.type] for column in columns}
    return formats.encode("avro", columns, [row, row], record_name="t")


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _container(schema: Any, records: int, block: bytes, codec: bytes = b"null") -> bytes:
    """An Avro object container of one block, written byte by byte (fastavro writes no such file)."""
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": codec}
    header = b"Obj\x01" + _long(len(meta)) + b"".join(_long(len(k)) + k + _long(len(v)) + v for k, v in meta.items())
    sync = b"S" * 16
    return header + b"\x00" + sync + _long(records) + _long(len(block)) + block + sync


ARRAY_OF_NULLS = {"type": "record", "name": "r", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}
EMPTY = {"type": "record", "name": "e", "namespace": "ns", "fields": [{"name": "n", "type": "null"}]}


def test_a_file_this_app_lands_passes_and_reads_as_before() -> None:
    data = _landed_avro()
    check_avro_container(data)
    assert [row["value"] for row in formats.decode("avro", data)] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_container(ARRAY_OF_NULLS, 1, _long(2**40) + b"\x00"), "values that take no bytes"),  # the review's 179 bytes
        (
            _container(
                {
                    "type": "record",
                    "name": "r",
                    "fields": [
                        {"name": "e", "type": EMPTY},
                        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "ns.e"}}},
                    ],
                },
                1,
                b"\x02\x02k" + _long(2**40) + b"\x00\x00",
            ),
            "values that take no bytes",
        ),
        (
            _container({"type": "record", "name": "r", "fields": [{"name": "n", "type": "null"}]}, 2**40, b""),
            "no bytes",
        ),
        (
            _container({"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]}, 10**9, b"\x00"),
            "records",
        ),
        (_container("string", 1, zlib.compress(b"\x00" * (1 << 21))[2:-4], codec=b"deflate"), "decompresses to more"),
    ],
    ids=[
        "array of nulls",
        "named empty record in a map's array",
        "records of nulls",
        "more records than bytes",
        "deflate",
    ],
)
def test_a_container_that_would_take_memory_out_of_proportion_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(TooLargeToRead, match=why):
        check_avro_container(data, limit=1 << 20)


def test_the_lakes_avro_reader_checks_first() -> None:
    """``formats.decode`` (redrive, reconcile, the ledgers' checks) built the review's 2**40 nulls before."""
    with pytest.raises(TooLargeToRead):
        formats.decode("avro", _container(ARRAY_OF_NULLS, 1, _long(2**40) + b"\x00"))


def test_what_is_not_a_container_is_left_to_the_reader() -> None:
    check_avro_container(b"PAR1 not avro")
    with pytest.raises(ValueError):
        list(fastavro.reader(io.BytesIO(b"PAR1 not avro")))
