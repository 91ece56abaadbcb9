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
