"""``python -m tools.query --drift``: one line per hour, whatever the commit's drift document holds."""

from __future__ import annotations

from shared.compaction.drift import CUT_MARK, FIELD_NAME_CHARS, FIELDS_TRACKED, NEW_FIELDS_REPORTED
from tools.query import drift_line


def test_a_document_of_older_code_naming_every_field_prints_the_most_frequent_and_a_count() -> None:
    """Before reports were bounded a commit named every field seen, at any length."""
    fields = {f"f{n:05d}" + "x" * 300: 1 for n in range(20_000)} | {"coupon": 7}
    line = drift_line({"date": "2026-11-24", "hour": "10", "rows": 20_000, "new_fields": fields})
    assert "\n" not in line and len(line) < 16 * 1024
    assert "new fields: coupon (7), f00000" + "x" * (FIELD_NAME_CHARS - 6) + CUT_MARK + " (1), " in line
    assert f", +{20_001 - NEW_FIELDS_REPORTED} more  type changes: -" in line


def test_every_name_and_type_a_document_holds_is_printed_escaped() -> None:
    document = {
        "date": "2026-11-24\x1b[2J",
        "hour": "10",
        "rows": 2,
        "new_fields": {"a\nb": 2},
        "more_fields": 3,
        "fields_approximate": True,
        "type_changes": {"t\r": {"landed": "struct<x\x07: int64>", "curated": "string", "moved": 1}},
        "new_columns": ["c\u202e"],
        "null_rates": {"n\x1b": 0.5},
    }
    assert drift_line(document) == (
        "2026-11-24\\x1b[2JT10  rows 2  new fields: a\\nb (2), +3 more"
        f" (approximate: over {FIELDS_TRACKED} distinct names)  "
        "type changes: t\\r struct<x\\x07: int64> -> string (1 to _extra)  new columns: c\\u202e  "
        "null rates: n\\x1b 50%"
    )


def test_a_document_without_drift_prints_dashes() -> None:
    line = drift_line({"date": "2026-11-24", "hour": "10", "rows": 2, "new_fields": {}, "null_rates": {"c": 0.25}})
    assert line == "2026-11-24T10  rows 2  new fields: -  type changes: -  new columns: -  null rates: c 25%"


def test_query_results_are_printed_escaped_and_aligned() -> None:
    """Sensor ids, metrics and units are the producers' text: a bidi override or a newline is printed escaped."""
    import duckdb

    from tools.query import table_text

    relation = duckdb.sql("select * from (values ('s\u202e1', 'temp\nx', 1.5), ('s2', NULL, 2.0)) t(sensor, unit, avg)")
    lines = table_text(relation).splitlines()
    assert lines[0].split() == ["sensor", "unit", "avg"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["s\\u202e1", "temp\\nx", "1.5"] and lines[3].split() == ["s2", "NULL", "2.0"]
    assert "\u202e" not in "".join(lines) and lines[3].index("NULL") == lines[2].index("temp")  # aligned
