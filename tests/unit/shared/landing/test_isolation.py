"""Encoding isolation: the rows no lake format can encode are found; clean files are encoded once."""

from __future__ import annotations

from shared import formats
from shared.formats import format_named
from shared.landing.isolation import encode_isolating
from shared.source_model import Column


def test_encoding_isolation_finds_the_offending_rows_in_every_format() -> None:
    columns = (Column("n", "long"), Column("s", "string"))
    rows = [{"n": i, "s": "ok"} for i in range(100)]
    rows[3]["n"] = 2**63
    rows[70]["s"] = "\ud800"
    for fmt in ("parquet", "avro", "jsonl"):
        data, bad = encode_isolating(format_named(fmt), columns, rows, record_name="t")
        expected = [70] if fmt == "jsonl" else [3, 70]  # JSON lines carry any integer
        assert [item.index for item in bad] == expected
        assert len(formats.decode(fmt, data)) == 100 - len(expected)  # type: ignore[arg-type]


def test_clean_files_are_encoded_once_and_unchanged() -> None:
    columns = (Column("n", "long"),)
    rows = [{"n": i} for i in range(10)]
    data, bad = encode_isolating(format_named("jsonl"), columns, rows, record_name="t")
    assert bad == [] and data == formats.encode("jsonl", columns, rows, record_name="t")
